"""Beyond the post: layouts, bias, batches, log-softmax, temperature, float32, bundles, formats.

Each option is held against an independent formulation (a transpose, a loop over samples, the
log of the softmax, the Jacobian of z/T by the chain rule) and against finite differences.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

import smjac
from smjac import maths
from smjac.cli import app
from smjac.maths import jacobians as jacobian_room

from .conftest import BLOG_W, BLOG_X, ROOT, central_diff, post_softmax

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=ENV)


@pytest.fixture
def layer(rng):
    n, K = 4, 3
    return rng.normal(size=(n, K)), rng.normal(size=n), rng.normal(size=K)


# ---------------------------------------------------------------- layouts


def test_out_in_is_the_transpose_of_in_out(layer):
    W, x, b = layer
    for function in ("softmax", "log-softmax"):
        kind = {"function": function}
        f_io, f_oi = smjac.forward(W, x, b, **kind), smjac.forward(W.T, x, b, layout="out-in", **kind)
        assert_array_equal(f_io.h, f_oi.h)
        for wrt in ("W", "x", "b", "z"):
            assert_array_equal(
                smjac.jacobian(W, x, b, wrt=wrt, **kind),
                smjac.jacobian(W.T, x, b, wrt=wrt, layout="out-in", **kind),
            )
        g_io = smjac.grad(W, x, b, target=1, **kind)
        g_oi = smjac.grad(W.T, x, b, target=1, layout="out-in", **kind)
        assert g_oi.W.shape == W.T.shape
        assert_array_equal(g_oi.W, g_io.W.T)  # the gradient comes back in the layout it came in
    assert smjac.check(W.T, x, b, layout="out-in").ok


def test_out_in_column_order_is_pytorch_flatten_order(layer):
    W, x, b = layer
    Wk = W.T  # K×n, as nn.Linear stores it
    J = smjac.jacobian(Wk, x, b, layout="out-in")
    expected = central_diff(lambda flat: post_softmax(flat.reshape(Wk.shape) @ x + b), Wk.flatten())
    assert_allclose(J, expected, atol=1e-9)


def test_a_W_that_fits_only_the_other_layout_says_so():
    # the library names its parameter; the command line, its flag
    with pytest.raises(smjac.ShapeError, match=r'fits layout="out-in" \(K×n'):
        smjac.forward(BLOG_W.T, BLOG_X)
    with pytest.raises(smjac.ShapeError, match=r'fits layout="in-out" \(n×K, as in the post\)'):
        smjac.forward(BLOG_W, BLOG_X, layout="out-in")


# ---------------------------------------------------------------- bias


def test_bias_against_finite_differences(layer):
    W, x, b = layer
    assert_allclose(smjac.forward(W, x, b).z, W.T @ x + b, rtol=1e-15)
    J = smjac.jacobian(W, x, b, wrt="b")
    assert_allclose(J, central_diff(lambda v: post_softmax(W.T @ x + v), b), atol=1e-9)
    loss = lambda v: np.array([-np.log(post_softmax(W.T @ x + v)[2])])  # noqa: E731
    assert_allclose(smjac.grad(W, x, b, target=2).b, central_diff(loss, b)[0], atol=1e-9)


# ---------------------------------------------------------------- batches


@pytest.mark.parametrize("function", ["softmax", "log-softmax"])
@pytest.mark.parametrize("layout", ["in-out", "out-in"])
def test_a_batch_is_a_loop_over_samples(rng, function, layout):
    n, K, N = 3, 4, 5
    W, X, b = rng.normal(size=(n, K)), rng.normal(size=(N, n)), rng.normal(size=K)
    Wl = W if layout == "in-out" else W.T
    kind = {"layout": layout, "function": function, "temperature": 0.7}
    fwd = smjac.forward(Wl, X, b, **kind)
    assert fwd.h.shape == (N, K)
    for wrt in ("W", "x", "b"):
        J = smjac.jacobian(Wl, X, b, wrt=wrt, **kind)
        for s in range(N):
            # a batched product may round differently from a single one, in the last place
            assert_allclose(J[s], smjac.jacobian(Wl, X[s], b, wrt=wrt, **kind), rtol=1e-14, atol=1e-17)
    targets = rng.integers(0, K, size=N)
    total = smjac.grad(Wl, X, b, target=targets, reduce="sum", **kind)
    each = [smjac.grad(Wl, X[s], b, target=int(targets[s]), **kind) for s in range(N)]
    assert_allclose(total.W, sum(g.W for g in each), rtol=1e-13, atol=1e-15)
    assert_allclose(total.b, sum(g.b for g in each), rtol=1e-13, atol=1e-15)
    assert total.loss == pytest.approx(sum(g.loss for g in each), rel=1e-13)
    mean = smjac.grad(Wl, X, b, target=targets, **kind)  # the default, as in torch, Keras and scikit-learn
    assert_allclose(mean.W, total.W / N, rtol=1e-14)
    assert mean.loss == pytest.approx(total.loss / N, rel=1e-14)
    G = rng.normal(size=(N, K))
    up = smjac.grad(Wl, X, b, upstream=G, reduce="sum", **kind)
    assert_allclose(up.W, sum(smjac.grad(Wl, X[s], b, upstream=G[s], **kind).W for s in range(N)), atol=1e-14)
    report = smjac.check(Wl, X, b, **kind)
    assert report.ok and all(c.sample is not None for c in report.checks)


def test_a_batch_never_becomes_the_block_diagonal_matrix(rng):
    J = smjac.jacobian(rng.normal(size=(3, 4)), rng.normal(size=(6, 3)))
    assert J.shape == (6, 4, 12)


def test_a_row_or_column_vector_is_one_sample_not_a_batch():
    assert smjac.forward(BLOG_W, BLOG_X[None, :]).h.shape == (5,)
    assert smjac.forward(BLOG_W, BLOG_X[:, None]).h.shape == (5,)


def test_targets_per_sample_must_match_the_batch(rng):
    X = rng.normal(size=(3, 3))
    with pytest.raises(smjac.ShapeError, match="2 targets for a batch of 3 samples"):
        smjac.grad(BLOG_W, X, target=[0, 1])
    g1 = smjac.grad(BLOG_W, X, target=2)  # one class for every sample
    assert_allclose(g1.W, smjac.grad(BLOG_W, X, target=[2, 2, 2]).W)


def test_check_names_the_failing_sample(rng, monkeypatch):
    X = rng.normal(size=(4, 3))
    real = jacobian_room._shortcut_dW

    def broken_for_sample_2(A, Xs, out, progress=None):
        real(A, Xs, out, progress)
        if np.array_equal(Xs[0], X[2]):
            out *= 1.01
        return out

    monkeypatch.setattr(jacobian_room, "_shortcut_dW", broken_for_sample_2)
    report = smjac.check(BLOG_W, X)
    bad = next(c for c in report.checks if c.name == "dh/dW shortcut = chain rule")
    assert not bad.ok and bad.failed == (2,) and bad.sample == 2


# ---------------------------------------------------------------- log-softmax and temperature


def test_log_softmax_is_the_log_of_softmax_where_both_are_finite(layer):
    W, x, b = layer
    p = smjac.forward(W, x, b).h
    lp = smjac.forward(W, x, b, function="log-softmax")
    assert_allclose(lp.h, np.log(p), rtol=1e-14)
    # d log p / dz = diag(1/p) · dp/dz, by the chain rule
    A = smjac.jacobian(W, x, b, wrt="z", function="log-softmax")
    assert_allclose(A, smjac.softmax_jacobian(p) / p[:, None], atol=1e-15)
    assert_allclose(A.sum(axis=1), 0, atol=1e-15)  # rows sum to 0
    assert_allclose(p @ A, 0, atol=1e-15)  # pᵀJ = 0


def test_log_softmax_stays_finite_where_softmax_underflows():
    W = np.array([[1000.0, 0.0]])
    h = smjac.forward(W, [1.0], function="log-softmax").h
    assert_array_equal(h, [0.0, -1000.0])
    with np.errstate(divide="ignore"):
        assert np.isneginf(np.log(smjac.forward(W, [1.0]).h[1]))  # what "log of softmax" would give
    assert smjac.check(W, [1.0], function="log-softmax").ok


@pytest.mark.parametrize("function", ["softmax", "log-softmax"])
@pytest.mark.parametrize("T", [0.25, 1.0, 3.0])
def test_temperature_against_finite_differences(layer, function, T):
    W, x, b = layer
    kind = {"function": function, "temperature": T}

    def h(z):
        p = post_softmax(z / T - np.max(z / T))
        return p if function == "softmax" else np.log(p)

    z = W.T @ x + b
    assert_allclose(smjac.forward(W, x, b, **kind).h, h(z), rtol=1e-13)
    assert_allclose(smjac.jacobian(W, x, b, wrt="z", **kind), central_diff(h, z), atol=1e-8)
    flatW = W.T.ravel()
    assert_allclose(
        smjac.jacobian(W, x, b, **kind), central_diff(lambda f: h(f.reshape(3, 4) @ x + b), flatW), atol=1e-8
    )
    if function == "softmax":  # the softmax Jacobian at temperature T is (diag p − ppᵀ) / T
        p = h(z)
        assert_allclose(
            smjac.jacobian(W, x, b, wrt="z", **kind), (np.diag(p) - np.outer(p, p)) / T, atol=1e-15
        )
    assert smjac.check(W, x, b, **kind).ok


@pytest.mark.parametrize("T", [0.0, -1.0, np.inf, np.nan])
def test_bad_temperature(T):
    with pytest.raises(smjac.InputError, match="temperature must be a positive number"):
        smjac.forward(BLOG_W, BLOG_X, temperature=T)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_property_every_option_combination_checks_out(data):
    n, K, N = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    W = data.draw(arrays(np.float64, (n, K), elements=st.floats(-3, 3)))
    X = data.draw(arrays(np.float64, (N, n), elements=st.floats(-3, 3)))
    kind = {
        "layout": data.draw(st.sampled_from(maths.LAYOUTS)),
        "function": data.draw(st.sampled_from(maths.FUNCTIONS)),
        "temperature": data.draw(st.sampled_from([0.5, 1.0, 2.0])),
    }
    Wl = W if kind["layout"] == "in-out" else W.T
    report = smjac.check(Wl, X, **kind)
    assert report.ok, [c for c in report.checks if not c.ok]


# ---------------------------------------------------------------- float32


def test_float32_end_to_end(layer):
    W, x, b = (a.astype(np.float32) for a in layer)
    for result in (smjac.forward(W, x, b).h, smjac.jacobian(W, x, b), smjac.grad(W, x, b, target=0).W):
        assert result.dtype == np.float32
    J64 = smjac.jacobian(*(a.astype(np.float64) for a in (W, x, b)))
    assert_allclose(smjac.jacobian(W, x, b), J64, rtol=1e-5, atol=1e-7)
    assert smjac.check(W, x, b).ok


def test_float32_through_the_cli(tmp_path):
    out = tmp_path / "J.npy"
    result = run(
        "jacobian",
        "-W",
        str(ROOT / "samples/blog/W.json"),
        "-x",
        str(ROOT / "samples/blog/x.json"),
        "--dtype",
        "float32",
        "-o",
        str(out),
    )
    assert result.exit_code == 0
    assert np.load(out).dtype == np.float32
    doc = json.loads(
        run(
            "forward",
            "-W",
            str(ROOT / "samples/blog/W.json"),
            "-x",
            str(ROOT / "samples/blog/x.json"),
            "--dtype",
            "float32",
            "-f",
            "json",
        ).stdout
    )
    assert doc["z"][:2] == [0.354, 0.418]  # the shortest text of each float32, which reads back exactly
    z32 = (BLOG_W.astype(np.float32).T @ BLOG_X.astype(np.float32)).astype(np.float32)
    assert_array_equal(np.array(doc["z"], dtype=np.float32), z32)


# ---------------------------------------------------------------- bundles


def test_layer_bundles(tmp_path, layer):
    W, x, b = layer
    np.savez(tmp_path / "layer.npz", W=W, x=x, b=b)
    (tmp_path / "layer.json").write_text(json.dumps({"W": W.tolist(), "x": x.tolist(), "b": b.tolist()}))
    expected = json.loads(
        run(
            "jacobian",
            "-W",
            str(_save(tmp_path, "W", W)),
            "-x",
            str(_save(tmp_path, "x", x)),
            "-b",
            str(_save(tmp_path, "b", b)),
            "-f",
            "json",
        ).stdout
    )
    for bundle in ("layer.npz", "layer.json"):
        result = run("jacobian", "--layer", str(tmp_path / bundle), "-f", "json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == expected
    # a file given on its own takes the bundle's place
    other = _save(tmp_path, "x2", x * 2)
    moved = json.loads(
        run("forward", "--layer", str(tmp_path / "layer.npz"), "-x", str(other), "-f", "json").stdout
    )
    assert_allclose(moved["z"], W.T @ (x * 2) + b, rtol=1e-14)


def _save(folder, name, a):
    path = folder / f"{name}.npy"
    np.save(path, a)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"W": [[1.0]], "x": [1.0], "y": [1.0]}, "holds 'y'; a layer bundle holds W, x and b only"),
        ({"W": [[1.0]]}, "has no x"),
        ({"W": [[1.0]], "x": "1"}, "[x]: expected an array of numbers, found a string"),
        ([[1.0]], "a layer bundle is a JSON object with W and x, not an array"),
    ],
)
def test_bad_bundles(tmp_path, content, message):
    (tmp_path / "layer.json").write_text(json.dumps(content))
    result = run("forward", "--layer", str(tmp_path / "layer.json"))
    assert result.exit_code == 2 and message in result.stderr


def test_a_bundle_without_x_is_completed_by_a_file(tmp_path):
    # "has no x; a layer bundle holds W, x and b" even with -x given, where a checkpoint took it
    W, x = np.arange(6.0).reshape(3, 2) / 10, np.array([0.1, 0.5, 0.4])
    np.savez(tmp_path / "W.npz", W=W)
    given = run(
        "forward", "--layer", str(tmp_path / "W.npz"), "-x", str(_save(tmp_path, "x", x)), "-f", "json"
    )
    assert given.exit_code == 0 and given.stderr == ""  # nothing of the bundle's was replaced
    assert_allclose(json.loads(given.stdout)["z"], W.T @ x, rtol=1e-14)
    alone = run("forward", "--layer", str(tmp_path / "W.npz"))
    assert alone.exit_code == 2
    assert (
        alone.stderr.strip()
        == f"Error: {tmp_path / 'W.npz'}: has no x; give -x FILE, or a bundle that holds it"
    )


def test_a_pickle_inside_an_npz_is_not_unpickled(tmp_path):
    np.savez(tmp_path / "layer.npz", W=np.array([[1.0]], dtype=object), x=np.ones(1))
    result = run("forward", "--layer", str(tmp_path / "layer.npz"))
    assert result.exit_code == 2 and "never unpickles" in result.stderr


def test_neither_files_nor_bundle():
    result = run("forward")
    assert result.exit_code == 2 and "missing -W and -x" in result.stderr


# ---------------------------------------------------------------- the command line


SAMPLE = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]


@pytest.mark.parametrize(
    ("command", "option", "choices"),
    [
        ("jacobian", "--of", maths.OFS),
        ("jacobian", "--wrt", maths.WRTS),
        ("jacobian", "--method", maths.METHODS),
        ("forward", "--layout", maths.LAYOUTS),
        ("forward", "--function", maths.FUNCTIONS),
        ("grad", "--reduce", maths.REDUCTIONS),
        ("forward", "--dtype", ("float64", "float32")),
    ],
)
def test_the_cli_choices_are_the_cores(command, option, choices):
    # a wrong value is refused with the list of the core's own choices, in its order
    result = run(command, *SAMPLE, option, "nonsense")
    assert result.exit_code == 2
    assert ", ".join(f"'{c}'" for c in choices) in " ".join(result.stderr.split())


def test_legend_names_every_column(tmp_path):
    lines = run("jacobian", *SAMPLE, "--legend").stdout.splitlines()
    assert lines[0] == "column,variable,stored_at"
    assert lines[1 + 3 * 1 + 2] == '5,"w[1,2]: input 2 → output 1","W[2,1]"'  # column i·n + j = 1·3 + 2
    np.save(tmp_path / "Wt.npy", BLOG_W.T)
    out_in = run(
        "jacobian", "-W", str(tmp_path / "Wt.npy"), "-x", SAMPLE[3], "--layout", "out-in", "--legend"
    ).stdout
    assert '5,"w[1,2]: input 2 → output 1","W[1,2]"' in out_in.splitlines()


def test_batch_tables_show_one_sample(tmp_path):
    X = np.stack([BLOG_X, 2 * BLOG_X])
    np.save(tmp_path / "X.npy", X)
    args = ["-W", SAMPLE[1], "-x", str(tmp_path / "X.npy")]
    doc = json.loads(run("jacobian", *args, "-f", "json").stdout)
    assert doc["shape"] == [2, 5, 15]
    second = run("jacobian", *args, "-f", "table", "--sample", "1", "--precision", "5")
    J1 = smjac.jacobian(BLOG_W, 2 * BLOG_X)
    assert f"{J1[0, 0]:.5f}" in second.stdout
    assert "showing sample 1 of 2" in second.stderr
    assert run("jacobian", *args, "-f", "table", "--sample", "2").exit_code == 2
    csv_rows = run("forward", *args).stdout.splitlines()
    assert csv_rows[0] == "sample,i,z,h" and len(csv_rows) == 11 and csv_rows[6].startswith("1,0,")
    grads = run("grad", *args, "--target", "3,1", "-f", "json").stdout
    expected = smjac.grad(BLOG_W, X, target=[3, 1])
    assert_allclose(json.loads(grads)["grad"], expected.W, rtol=1e-15)
    (tmp_path / "t.csv").write_text("3\n1\n")
    from_file = run("grad", *args, "--target", str(tmp_path / "t.csv"), "-f", "json").stdout
    assert from_file == grads


def test_markdown_and_latex():
    md = run("jacobian", *SAMPLE, "--wrt", "z", "-f", "markdown", "--precision", "3").stdout.splitlines()
    assert md[0] == "| | z₀ | z₁ | z₂ | z₃ | z₄ |"
    assert md[2] == "| h₀ | 0.154 | -0.039 | -0.041 | -0.044 | -0.030 |"
    tex = run("jacobian", *SAMPLE, "--wrt", "z", "-f", "latex", "--precision", "3").stdout.splitlines()
    assert tex[0] == r"\begin{bmatrix}" and tex[-1] == r"\end{bmatrix}"
    assert tex[1] == r"0.154 & -0.039 & -0.041 & -0.044 & -0.030 \\"


def test_heatmap_of_a_wide_jacobian(tmp_path, rng):
    np.save(tmp_path / "W.npy", rng.normal(size=(64, 16)))
    np.save(tmp_path / "x.npy", rng.normal(size=64))
    env = {**ENV, "COLUMNS": "80", "LINES": "30"}
    result = CliRunner().invoke(
        app,
        ["jacobian", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "-f", "heatmap"],
        env=env,
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "dh/dW (shortcut), 16×1024"
    assert lines[1].startswith("shown as 16×79 blocks")
    grid = lines[2:-1]
    assert len(grid) == 16 and all(len(row) == 79 for row in grid)
    assert set("".join(grid)) <= set(" .+*#,-=%")
    assert lines[-1].startswith("scale: + .+*#  − ,-=%")
    assert "the largest entry of each block" in result.stderr


def test_check_report_is_not_a_matrix():
    result = run("check", *SAMPLE, "-f", "latex")
    assert result.exit_code == 2 and "'latex' is not one of" in result.stderr
    assert run("check", *SAMPLE, "-f", "markdown").stdout.startswith("| | max error | tolerance |")


def test_cli_upstream_per_sample(tmp_path, rng):
    X = rng.normal(size=(3, 3))
    G = rng.normal(size=(3, 5))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "G.npy", G)
    args = [
        "-W",
        str(ROOT / "samples/blog/W.json"),
        "-x",
        str(tmp_path / "X.npy"),
        "--upstream",
        str(tmp_path / "G.npy"),
    ]
    doc = json.loads(run("grad", *args, "-f", "json").stdout)
    assert_allclose(doc["grad"], smjac.grad(BLOG_W, X, upstream=G).W, rtol=1e-15)
    assert doc["loss"] is None
    np.save(tmp_path / "G.npy", G[:2])
    result = run("grad", *args)
    assert (
        result.exit_code == 2
        and "upstream has shape (2, 5) but the layer has K = 5 outputs; it needs 5 entries or 3×5"
        in result.stderr
    )


@pytest.mark.parametrize("call", ["forward", "jacobian", "grad"])
def test_a_temperature_that_is_zero_in_the_layers_dtype_is_refused(call):
    # 1e-46 is a float64 but 0 in float32, where z/T is computed: refused, never inf or NaN printed
    W, x = BLOG_W.astype(np.float32), BLOG_X.astype(np.float32)
    kw = {"target": 0} if call == "grad" else {}
    with pytest.raises(smjac.InputError, match=r"temperature=1e-46 is 0 in float32"):
        getattr(smjac, call)(W, x, temperature=1e-46, **kw)
    # in float64 the same temperature is a number: a (saturated) softmax, every entry finite
    result = getattr(smjac, call)(BLOG_W, BLOG_X, temperature=1e-46, **kw)
    values = result.W if call == "grad" else result.h if call == "forward" else result
    assert np.all(np.isfinite(values))
