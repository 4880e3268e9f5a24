"""The core against the post's printed figures, the post's loops, finite differences and identities."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

import smjac
from smjac import maths
from smjac.maths import jacobians as jacobian_room

from .conftest import (
    BLOG_W,
    BLOG_X,
    central_diff,
    post_l_dir_shortcut,
    post_sm_dir,
    post_softmax,
    post_z_dir,
)

# ---------------------------------------------------------------- the post's printed figures

POST_H = "0.19091352 0.20353145 0.21698333 0.23132428 0.15724743"

POST_DS = """
 0.154465 -0.038856 -0.041425 -0.044162 -0.030020
-0.038856 0.162106 -0.044162 -0.047081 -0.032004
-0.041425 -0.044162 0.1699015 -0.050193 -0.034120
-0.044162 -0.047081 -0.050193 0.177813 -0.036375
-0.030020 -0.032004 -0.034120 -0.036375 0.132520
"""

# The first table (chain rule), as printed: note "0.0810" where the second prints 0.08105.
POST_DL_CHAIN = """
 0.01544 0.07723 0.06178 -0.00388 -0.01942 -0.01554 -0.00414 -0.02071 -0.01657 -0.00441 -0.02208 -0.01766 -0.00300 -0.01501 -0.01200
-0.00388 -0.01942 -0.01554 0.01621 0.0810 0.06484 -0.00441 -0.02208 -0.01766 -0.00470 -0.02354 -0.01883 -0.00320 -0.01600 -0.01280
-0.00414 -0.02071 -0.01657 -0.00441 -0.02208 -0.01766 0.01699 0.08495 0.06796 -0.00501 -0.02509 -0.02007 -0.00341 -0.01706 -0.01364
-0.00441 -0.02208 -0.01766 -0.00470 -0.02354 -0.01883 -0.00501 -0.02509 -0.02007 0.01778 0.08890 0.07112 -0.00363 -0.01818 -0.01455
-0.00300 -0.01501 -0.01200 -0.00320 -0.01600 -0.01280 -0.00341 -0.01706 -0.01364 -0.00363 -0.01818 -0.01455 0.01325 0.06626 0.05300
"""
POST_DL_SHORTCUT = POST_DL_CHAIN.replace(" 0.0810 ", " 0.08105 ")

POST_DZ = """
0.1 0. 0. 0. 0.
0.5 0. 0. 0. 0.
0.4 0. 0. 0. 0.
0. 0.1 0. 0. 0.
0. 0.5 0. 0. 0.
0. 0.4 0. 0. 0.
0. 0. 0.1 0. 0.
0. 0. 0.5 0. 0.
0. 0. 0.4 0. 0.
0. 0. 0. 0.1 0.
0. 0. 0. 0.5 0.
0. 0. 0. 0.4 0.
0. 0. 0. 0. 0.1
0. 0. 0. 0. 0.5
0. 0. 0. 0. 0.4
"""


def printed(table: str) -> tuple[np.ndarray, np.ndarray]:
    """The numbers of a printed table, and one unit in the last digit each was printed with.

    The post cuts digits rather than rounding them (h₀(1 − h₀)x₀ = 0.0154466 is printed 0.01544),
    so a printed figure is held to one unit in its last place.
    """
    tokens = [line.split() for line in table.strip().splitlines()]
    values = np.array([[float(t) for t in row] for row in tokens])
    units = np.array([[10.0 ** -len(t.split(".")[1]) if "." in t else 1.0 for t in row] for row in tokens])
    return values, units


def assert_as_printed(actual: np.ndarray, table: str) -> None:
    values, units = printed(table)
    assert actual.shape == values.shape
    err = np.abs(actual - values)
    assert np.all(err <= units), f"off by more than a printed digit at {np.argwhere(err > units).tolist()}"


def test_post_h():
    h = smjac.forward(BLOG_W, BLOG_X).h
    assert_as_printed(h[None, :], POST_H)
    assert_allclose(h, [float(t) for t in POST_H.split()], atol=5e-9)  # 8 digits, rounded


def test_forward_unpacks_as_z_h_p():
    z, h, p = smjac.forward(BLOG_W, BLOG_X)
    assert_allclose(z, BLOG_W.T @ BLOG_X, rtol=1e-15)
    assert_array_equal(h, p)
    assert_allclose(h, post_softmax(z), rtol=1e-15)


def test_post_softmax_jacobian():
    assert_as_printed(smjac.softmax_jacobian(smjac.forward(BLOG_W, BLOG_X).h), POST_DS)


def test_post_dz_dw_is_the_transpose_of_the_printed_one():
    values, _ = printed(POST_DZ)
    assert_array_equal(smjac.jacobian(BLOG_W, BLOG_X, of="z", wrt="W"), values.T)


@pytest.mark.parametrize(("method", "table"), [("chain", POST_DL_CHAIN), ("shortcut", POST_DL_SHORTCUT)])
def test_post_layer_jacobian(method, table):
    assert_as_printed(smjac.jacobian(BLOG_W, BLOG_X, method=method), table)


def test_post_chain_table_has_one_figure_cut_to_four_digits():
    # Both of the post's tables print the same matrix; the first cut one entry short. Pin that down so
    # the tolerance above is known to cover exactly this and nothing more.
    chain, _ = printed(POST_DL_CHAIN)
    short, _ = printed(POST_DL_SHORTCUT)
    assert np.argwhere(chain != short).tolist() == [[1, 4]]


# ---------------------------------------------------------------- the post's loops as a reference


def random_layer(rng: np.random.Generator, n: int, K: int, scale: float = 1.0):
    return rng.normal(scale=scale, size=(n, K)), rng.normal(scale=scale, size=n)


# one output (K = 1) is binary logistic regression, not the post's softmax: tests/test_losses.py
@pytest.mark.parametrize(("n", "K"), [(1, 2), (1, 4), (3, 5), (4, 2), (7, 3)])
def test_against_the_posts_loops(rng, n, K):
    W, x = random_layer(rng, n, K)
    Z = W.T @ x
    S = post_softmax(Z)
    assert_allclose(smjac.forward(W, x).h, S, rtol=1e-14)
    assert_allclose(smjac.softmax_jacobian(S), post_sm_dir(S), atol=1e-16)
    assert_array_equal(smjac.jacobian(W, x, of="z", wrt="W"), post_z_dir(Z, W, x).T)
    post_DL = np.dot(post_sm_dir(S), np.transpose(post_z_dir(Z, W, x)))
    for method in ("chain", "shortcut"):
        assert_allclose(smjac.jacobian(W, x, method=method), post_DL, atol=1e-15)
    assert_allclose(smjac.jacobian(W, x), np.transpose(post_l_dir_shortcut(W, S, x)), atol=1e-16)


# ---------------------------------------------------------------- finite differences


def h_of(W, x, b):
    return smjac.forward(W, x, b).h


@pytest.mark.parametrize(("n", "K"), [(1, 2), (3, 5), (4, 2), (6, 6)])
@pytest.mark.parametrize("method", ["shortcut", "chain"])
def test_every_jacobian_against_finite_differences(rng, n, K, method):
    W, x = random_layer(rng, n, K)
    b = rng.normal(size=K)
    z = W.T @ x + b

    def unflatten_W(flat):  # dh/dW's columns are w[i,j] at i·n + j: Wᵀ, flattened
        return flat.reshape(K, n).T

    cases = {
        ("h", "W"): central_diff(lambda f: h_of(unflatten_W(f), x, b), W.T.ravel()),
        ("h", "x"): central_diff(lambda v: h_of(W, v, b), x),
        ("h", "b"): central_diff(lambda v: h_of(W, x, v), b),
        ("h", "z"): central_diff(lambda v: post_softmax(v - v.max()), z),
        ("z", "W"): central_diff(lambda f: unflatten_W(f).T @ x + b, W.T.ravel()),
        ("z", "x"): central_diff(lambda v: W.T @ v + b, x),
        ("z", "b"): central_diff(lambda v: W.T @ x + v, b),
        ("z", "z"): central_diff(lambda v: v, z),
    }
    for (of, wrt), expected in cases.items():
        J = smjac.jacobian(W, x, b, of=of, wrt=wrt, method=method)
        assert J.shape == expected.shape, (of, wrt)
        assert_allclose(J, expected, atol=1e-9, err_msg=f"d{of}/d{wrt}")


@pytest.mark.parametrize("function", ["softmax", "log-softmax"])
def test_dh_dx_of_a_batch_is_dh_dz_times_w_without_holding_dh_dz(rng, function):
    import tracemalloc

    N, n, K, T = 40, 3, 200, 0.7
    W, X = rng.normal(size=(n, K)), rng.normal(size=(N, n))
    L = smjac.make_layer(W, X, function=function, temperature=T)
    tracemalloc.start()
    J = smjac.maths.jacobians.layer_jacobian(L, wrt="x")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the chain rule by hand, sample by sample: (diag p − ppᵀ)/T or (I − 1pᵀ)/T, times Wᵀ
    for s in range(N):
        p = post_softmax(X[s] @ W / T)
        A = np.diag(p) - np.outer(p, p) if function == "softmax" else np.eye(K) - np.outer(np.ones(K), p)
        assert_allclose(J[s], A / T @ W.T, atol=1e-13)
    assert peak < N * K * K * 8 / 4  # the N×K×K dh/dz (12.8 MB here) is never made


def test_numerical_jacobian_on_a_known_function():
    v = np.array([0.5, -2.0, 3.0])
    J, err = smjac.numerical_jacobian(lambda u: np.array([u[0] * u[1], np.sin(u[2])]), v)
    assert np.all(err < 1e-8)
    assert_allclose(J, [[-2.0, 0.5, 0.0], [0.0, 0.0, np.cos(3.0)]], atol=1e-9)


# ---------------------------------------------------------------- identities


@pytest.mark.parametrize("K", [1, 2, 5, 40])
def test_softmax_jacobian_identities(rng, K):
    h = smjac.softmax(rng.normal(scale=3, size=K))
    J = smjac.softmax_jacobian(h)
    assert_allclose(J, J.T, atol=0)
    rounding = 2 * K * np.finfo(float).eps  # Σ|terms| ≤ 2h_t, one rounding per term
    assert_allclose(J.sum(axis=0), 0, atol=rounding)
    assert_allclose(J.sum(axis=1), 0, atol=rounding)
    # 1 spans the null space; its singular value is rounding, so cut at a tolerance relative to J.
    assert np.linalg.matrix_rank(J, tol=1e-10 * np.abs(J).max()) == K - 1


def test_layer_jacobian_columns_sum_to_zero(rng):
    W, x = random_layer(rng, 4, 6)
    assert_allclose(smjac.jacobian(W, x).sum(axis=0), 0, atol=1e-16)


def test_softmax_is_shift_invariant_and_does_not_overflow():
    z = np.array([1.0, 2.0, 3.0])
    assert_allclose(smjac.softmax(z + 1000), smjac.softmax(z), rtol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_allclose(smjac.softmax([1e4, 1e4 - 1, -1e4]), [*smjac.softmax([1.0, 0.0]), 0.0], rtol=1e-15)
        assert_array_equal(smjac.softmax([-1e4, 1e4]), [0.0, 1.0])
        assert_allclose(smjac.log_softmax([1e4, 0.0]), [0.0, -1e4])


def test_softmax_along_an_axis():
    Z = np.array([[1.0, 2.0], [3.0, 5.0]])
    assert_allclose(smjac.softmax(Z, axis=0).sum(axis=0), 1.0)
    assert_allclose(smjac.softmax(Z)[1], post_softmax(Z[1]))


@pytest.mark.parametrize("f", [smjac.softmax, smjac.log_softmax])
def test_softmax_over_no_entries_is_refused_and_over_no_rows_is_empty(f):
    # as scipy.special.softmax does (an empty axis raises, zero rows give zero rows), in words: no
    # probabilities sum to 1 over nothing. It was numpy's "zero-size array to reduction operation".
    for z, axis in [
        (np.array([]), -1),
        (np.zeros((2, 0)), -1),
        (np.zeros((0, 3)), 0),
        (np.zeros((2, 0)), None),
    ]:
        with pytest.raises(
            smjac.InputError, match=rf"z has shape {re.escape(str(z.shape))}: no logits along axis"
        ):
            f(z, axis=axis)
    assert f(np.zeros((0, 3))).shape == (0, 3)
    with pytest.raises(smjac.InputError, match=r"axis=2 is not an axis of z, which has shape \(3,\)"):
        f(np.ones(3), axis=2)


@pytest.mark.parametrize(
    ("call", "gist"),
    [
        (lambda: smjac.softmax_jacobian(0.5), r"h must be a vector \(K\) or a stack of them, not a number"),
        (
            lambda: smjac.log_softmax_jacobian(0.5),
            r"p must be a vector \(K\) or a stack of them, not a number",
        ),
        (lambda: smjac.dz_dW(np.ones((2, 3)), 2), r"x must be a vector \(n\) but has shape \(2, 3\)"),
        (lambda: smjac.dz_dW(1.0, 2), r"x must be a vector \(n\) but has shape \(\)"),
        (lambda: smjac.dz_dW(np.ones(3), -1), "K must be a whole number of outputs, at least 1, not -1"),
        (lambda: smjac.dz_dW(np.ones(3), 1.5), "K must be a whole number of outputs, at least 1, not 1.5"),
    ],
)
def test_the_functions_of_one_vector_refuse_what_is_not_one_in_words(call, gist):
    # each was numpy's IndexError, ValueError or TypeError from inside the function
    with pytest.raises(smjac.SmjacError, match=gist):
        call()


# ---------------------------------------------------------------- gradients


def test_grad_with_target_is_the_cross_entropy_formula(rng):
    W, x = random_layer(rng, 3, 5)
    h = post_softmax(W.T @ x)
    for k in range(5):
        g = smjac.grad(W, x, target=k)
        e = np.eye(5)[k]
        assert_allclose(g.W, np.outer(x, h - e), atol=1e-15)
        assert g.loss == pytest.approx(-np.log(h[k]), rel=1e-14)
        # and through the dense Jacobian, with the upstream of cross-entropy, −e_k / h_k:
        dense = (-e / h[k]) @ smjac.jacobian(W, x)
        assert_allclose(g.W, dense.reshape(5, 3).T, atol=1e-14)


def test_grad_of_loss_against_finite_differences(rng):
    W, x = random_layer(rng, 4, 3)

    def loss(flat):
        return np.array([-np.log(post_softmax(flat.reshape(4, 3).T @ x)[2])])

    assert_allclose(smjac.grad(W, x, target=2).W.ravel(), central_diff(loss, W.ravel())[0], atol=1e-9)


def test_grad_with_upstream_is_upstream_times_the_jacobian(rng):
    W, x = random_layer(rng, 3, 4)
    g = rng.normal(size=4)
    res = smjac.grad(W, x, upstream=g)
    assert res.loss is None
    assert_allclose(res.W, (g @ smjac.jacobian(W, x)).reshape(4, 3).T, atol=1e-15)
    assert_allclose(res.x, g @ smjac.jacobian(W, x, wrt="x"), atol=1e-15)
    assert_allclose(res.b, g @ smjac.jacobian(W, x, wrt="b"), atol=1e-15)


def test_summing_the_columns_as_the_post_says_gives_exactly_zero():
    res = smjac.grad(BLOG_W, BLOG_X, upstream=np.ones(5))
    assert_array_equal(res.W, np.zeros((3, 5)))
    assert_array_equal(smjac.grad(BLOG_W, BLOG_X, upstream=np.full(5, 0.1)).W, 0.0)


def test_grad_stays_accurate_when_a_class_is_certain():
    W = np.array([[40.0, 0.0, 0.0]])  # h₀ = 1 − 2e^-40: 1 − h₀ is lost in float64 subtraction
    g = smjac.grad(W, [1.0], target=0)
    assert_allclose(g.W[0, 0], -2 * np.exp(-40.0), rtol=1e-14)
    assert g.loss == pytest.approx(2 * np.exp(-40.0), rel=1e-12)
    far = smjac.grad(np.array([[1e4, 0.0]]), [1.0], target=1)
    assert far.loss == pytest.approx(1e4) and np.isfinite(far.W).all()


def test_grad_needs_exactly_one_of_target_and_upstream():
    with pytest.raises(smjac.InputError, match="exactly one"):
        smjac.grad(BLOG_W, BLOG_X)
    with pytest.raises(smjac.InputError, match="exactly one"):
        smjac.grad(BLOG_W, BLOG_X, target=1, upstream=np.ones(5))


@pytest.mark.parametrize("target", [-1, 5, 1.5, True])
def test_grad_refuses_a_bad_target(target):
    with pytest.raises(smjac.InputError, match="target"):
        smjac.grad(BLOG_W, BLOG_X, target=target)


def test_grad_refuses_an_upstream_of_the_wrong_length():
    with pytest.raises(smjac.ShapeError, match=r"upstream has shape \(4,\) but the layer has K = 5"):
        smjac.grad(BLOG_W, BLOG_X, upstream=np.ones(4))


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("W", "x", "message"),
    [
        (np.ones((3, 5)), np.ones(4), r"W has shape \(3, 5\) but x has 4 entries; .* x needs 3 entries"),
        (np.ones((3, 5)), np.ones(5), r'W fits layout="out-in" \(K×n, as PyTorch stores nn.Linear\)'),
        (np.ones(3), np.ones(3), r"W must be a matrix"),
        (np.ones((3, 2)), np.ones((2, 2, 3)), r"x must be a vector \(n\) or a batch \(N×n\) but has shape"),
        (
            np.ones((3, 2)),
            np.ones((4, 2)),
            r"x has 2 entries per sample \(shape \(4, 2\), read as a batch of 4 samples\)",
        ),
    ],
)
def test_shape_errors_name_both_shapes(W, x, message):
    with pytest.raises(smjac.ShapeError, match=message):
        smjac.forward(W, x)


def test_a_vector_may_be_one_row_or_one_column():
    expected = smjac.forward(BLOG_W, BLOG_X).h
    assert_array_equal(smjac.forward(BLOG_W, BLOG_X[None, :]).h, expected)
    assert_array_equal(smjac.forward(BLOG_W, BLOG_X[:, None]).h, expected)


def test_non_finite_input_is_refused():
    with pytest.raises(smjac.InputError, match="NaN or infinite"):
        smjac.forward(BLOG_W, [0.1, np.nan, 0.4])


def test_bias_must_have_K_entries():
    with pytest.raises(smjac.ShapeError, match="b needs 5 entries"):
        smjac.forward(BLOG_W, BLOG_X, np.ones(3))


@pytest.mark.parametrize(("kw", "bad"), [("of", "y"), ("wrt", "w"), ("method", "fast")])
def test_jacobian_refuses_unknown_choices(kw, bad):
    with pytest.raises(smjac.InputError, match=kw):
        smjac.jacobian(BLOG_W, BLOG_X, **{kw: bad})


# ---------------------------------------------------------------- the checker


def test_check_passes_on_a_good_layer(rng):
    report = smjac.check(*random_layer(rng, 4, 3))
    assert report.ok
    assert {c.name for c in report.checks} >= {"dh/dW shortcut = chain rule", "dh/dW = finite differences"}
    assert all(c.max_error <= c.tolerance for c in report.checks)


def test_check_catches_a_wrong_shortcut(monkeypatch):
    h = smjac.forward(BLOG_W, BLOG_X).h

    def forgets_the_delta(A, X, out, progress=None):  # a classic slip: −h_t h_i x_j, no δ_ti h_t
        out[...] = (-np.outer(h, h)[:, :, None] * X[0][None, None, :]).reshape(1, 5, 15)
        return out

    monkeypatch.setattr(jacobian_room, "_shortcut_dW", forgets_the_delta)
    report = smjac.check(BLOG_W, BLOG_X)
    failed = {c.name for c in report.checks if not c.ok}
    assert not report.ok
    assert failed == {"dh/dW shortcut = chain rule", "dh/dW = finite differences", "dh/dW columns sum to 0"}


def test_check_with_zero_tolerance():
    # Identities then have to hold exactly, which rounding does not allow; a comparison with finite
    # differences is still allowed the differences' own error estimate, and no more.
    report = {c.name: c for c in smjac.check(BLOG_W, BLOG_X, rtol=0, atol=0).checks}
    assert not report["dh/dz rows sum to 0"].ok
    fd = report["dh/dW = finite differences"]
    assert 0 < fd.max_error <= fd.tolerance < 1e-9


# ---------------------------------------------------------------- properties

finite = st.floats(min_value=-4, max_value=4, allow_nan=False, allow_infinity=False)


@st.composite
def layers(draw):
    n = draw(st.integers(1, 5))
    K = draw(st.integers(2, 5))  # one output is binary logistic regression: tests/test_losses.py
    W = draw(arrays(np.float64, (n, K), elements=finite))
    x = draw(arrays(np.float64, (n,), elements=finite))
    return W, x


@settings(max_examples=60, deadline=None)
@given(layers())
def test_property_shortcut_equals_chain_equals_the_posts_loops(layer):
    W, x = layer
    S = post_softmax(W.T @ x - np.max(W.T @ x))
    short = smjac.jacobian(W, x)
    assert_allclose(short, smjac.jacobian(W, x, method="chain"), atol=1e-15)
    assert_allclose(short, post_l_dir_shortcut(W, S, x).T, atol=1e-15)
    assert_allclose(short.sum(axis=0), 0, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(layers(), st.data())
def test_property_grad_is_upstream_times_jacobian(layer, data):
    W, x = layer
    K = W.shape[1]
    g = data.draw(arrays(np.float64, (K,), elements=finite))
    res = smjac.grad(W, x, upstream=g)
    assert_allclose(res.W.T.ravel(), g @ smjac.jacobian(W, x), atol=1e-13)
    k = data.draw(st.integers(0, K - 1))
    assert_allclose(smjac.grad(W, x, target=k).W.sum(axis=1), 0, atol=1e-13)  # h − e_k sums to 0


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e300, 1e300)))
def test_property_softmax_of_huge_logits_is_a_distribution(z):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = smjac.softmax(z)
    assert np.all(np.isfinite(h)) and np.all(h >= 0)
    assert h.sum() == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------- packaging


def test_importing_smjac_does_not_import_the_cli_stack():
    code = "import smjac, sys; print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- numerical edge cases


def edge_layers():
    yield "one-hot", np.array([[1000.0, 0.0, -5.0]]), np.array([1.0])
    yield "K = 2", np.array([[0.3, -0.1], [-2.0, 4.0]]), np.array([1.5, 0.25])
    yield "n = 1", np.array([[0.2, -0.7, 1.1]]), np.array([2.0])
    yield "equal logits", np.full((2, 4), 0.5), np.array([1.0, -1.0])
    yield "x all zeros", np.array([[0.1, 0.2], [0.3, 0.4]]), np.zeros(2)


@pytest.mark.parametrize(("name", "W", "x"), list(edge_layers()), ids=[e[0] for e in edge_layers()])
def test_edge_cases_are_right_and_quiet(name, W, x):
    K = W.shape[1]
    z = W.T @ x
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = smjac.forward(W, x).h
        J = smjac.jacobian(W, x)
        g = smjac.grad(W, x, target=K - 1)
        report = smjac.check(W, x)
    expected_h = post_softmax(z - z.max())
    assert_allclose(h, expected_h, rtol=1e-15)
    assert_allclose(
        J, np.kron(np.diag(expected_h) - np.outer(expected_h, expected_h), x[None, :]), atol=1e-16
    )
    assert_allclose(g.W, np.outer(x, expected_h - np.eye(K)[K - 1]), atol=1e-16)
    assert report.ok, [c for c in report.checks if not c.ok]
    if name == "one-hot":
        assert_array_equal(h, [1.0, 0.0, 0.0])
        assert_array_equal(J, 0.0)
        assert g.loss == pytest.approx(1005.0)
    if name == "equal logits":
        assert_array_equal(h, np.full(4, 0.25))
    if name == "x all zeros":
        assert_array_equal(J, 0.0)
        assert_array_equal(h, [0.5, 0.5])


@pytest.mark.parametrize("probes", [None, 5])
def test_forward_passes_counts_what_check_evaluates(rng, monkeypatch, probes):
    # The count smjac check's guard quotes, against the calls finite differences really make.
    from smjac.checking import checks

    calls = []
    real = checks.numerical_jacobian

    def counting(f, v, **kw):
        def counted(u):
            calls.append(1)
            return f(u)

        return real(counted, v, **kw)

    monkeypatch.setattr(checks, "numerical_jacobian", counting)
    W, X = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    checks.check(W, X, probes=probes)
    expected = 4 * (2 * 12 + 4 + 3) * 2 if probes is None else 4 * (2 * 5 + 4 + 3) * 2
    assert checks.forward_passes(maths.make_layer(W, X), probes) == expected
    # z and x go through numerical_jacobian one pass at a time; the weights' probes (O(K + n)
    # each, counted as one pass) are evaluated together, as rows of one matrix
    assert len(calls) == 4 * (4 + 3) * 2


def test_numerical_jacobian_probes_only_the_columns_asked():
    v = np.array([0.3, -1.2, 2.0, 0.7])

    def f(u):
        return np.array([u[0] * u[1], np.sin(u[2]) + u[3] ** 2])

    whole, whole_err = smjac.numerical_jacobian(f, v)
    some, some_err = smjac.numerical_jacobian(f, v, columns=[3, 1])
    assert_array_equal(some, whole[:, [3, 1]])
    assert_array_equal(some_err, whole_err[:, [3, 1]])
    assert smjac.numerical_jacobian(f, v, columns=[])[0].shape == (2, 0)


def test_check_with_probes_draws_columns_and_still_holds(rng):
    W, X = rng.normal(size=(6, 4)) / 2, rng.normal(size=(2, 6))
    report = smjac.check(W, X, probes=5, seed=3)
    assert report.ok
    names = [c.name for c in report.checks]
    assert "dh/dW = finite differences (5 of 24 columns)" in names
    assert "dh/dx = finite differences (5 of 6 columns)" in names
    assert "dh/dz = finite differences" in names  # K = 4: all of them
    again = smjac.check(W, X, probes=5, seed=3)
    assert [c.max_error for c in again.checks] == [c.max_error for c in report.checks]
    assert [c.name for c in smjac.check(W, X, probes=24).checks] == [c.name for c in smjac.check(W, X).checks]
    with pytest.raises(smjac.InputError, match="probes must be at least 1"):
        smjac.check(W, X, probes=0)


def test_check_with_probes_catches_a_wrong_column(rng, monkeypatch):
    # Corrupt one input's entry of smjac's factored dh/dW: every probed column built from it is off.
    from smjac.checking import checks

    real = checks.layer_factors

    def wrong(L, **kw):
        F = real(L, **kw)
        x = F.x.copy()
        x[..., 2] *= 1.001
        return F._replace(x=x)

    monkeypatch.setattr(checks, "layer_factors", wrong)
    W, x = rng.normal(size=(5, 6)) / 2, rng.normal(size=5)
    report = smjac.check(W, x, probes=29)  # 29 of 30 weights: at least five sit on input 2
    failed = {c.name for c in report.checks if not c.ok}
    assert failed == {
        "dh/dW shortcut = chain rule (29 of 30 columns)",
        "dh/dW = finite differences (29 of 30 columns)",
    }


def test_forward_passes_with_probes(rng):
    from smjac.checking import checks

    L = maths.make_layer(rng.normal(size=(10, 7)), rng.normal(size=(3, 10)))
    assert checks.forward_passes(L) == 4 * (2 * 70 + 10 + 7) * 3
    assert checks.forward_passes(L, probes=8) == 4 * (2 * 8 + 8 + 7) * 3


def test_a_layer_checked_once_serves_every_layer_function(rng):
    # The layer_* functions take what make_layer returns: the same kind of layer (layout,
    # function, temperature, bias, batch) as the array functions, without checking it again.
    W, X, b = rng.normal(size=(4, 3)), rng.normal(size=(2, 3)), rng.normal(size=4)
    kind = {"layout": "out-in", "function": "log-softmax", "temperature": 2.0}
    L = smjac.make_layer(W, X, b, **kind)
    z = X @ W.T + b
    assert_allclose(smjac.layer_forward(L).h, z / 2 - np.log(np.exp(z / 2).sum(axis=1, keepdims=True)))
    assert_array_equal(smjac.layer_factors(L).dense(), smjac.jacobian(W, X, b, **kind))
    assert_array_equal(smjac.layer_grad(L, target=[0, 3]).W, smjac.grad(W, X, b, target=[0, 3], **kind).W)
    assert smjac.layer_check(L).ok
