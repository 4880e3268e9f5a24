"""The Jacobian's targets (``wrt``): each one's facts, checked against the Jacobian smjac computes
and against central finite differences of a numpy forward pass written here, not smjac's."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import smjac
from smjac import maths
from smjac.errors import InputError
from smjac.maths import TARGETS, WRTS, wrt_target
from smjac.notation import column_label, column_legend

MATHS = Path(smjac.__file__).parent / "maths"
K, n = 3, 4


def layer(layout: str, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, K) if layout == "in-out" else (K, n))
    return W, rng.normal(size=n), rng.normal(size=K)


def outputs(W, x, b, layout, function, T, z=None):
    """h (or log h) of the layer, from its arrays as given, or from logits z given directly."""
    if z is None:
        z = (W.T @ x if layout == "in-out" else W @ x) + b
    s = z / T - np.max(z / T)
    log_h = s - np.log(np.sum(np.exp(s)))
    return log_h if function == "log-softmax" else np.exp(log_h)


def moved(name, W, x, b, layout, function, T, at, eps):
    """h with the entry ``at`` of variable ``name`` moved by eps."""
    arrays = {"W": W.copy(), "x": x.copy(), "b": b.copy()}
    if name == "z":
        z = (W.T @ x if layout == "in-out" else W @ x) + b
        z[at] += eps
        return outputs(W, x, b, layout, function, T, z=z)
    arrays[name][at] += eps
    return outputs(arrays["W"], arrays["x"], arrays["b"], layout, function, T)


def test_every_choice_has_one_target_in_its_order():
    assert tuple(TARGETS) == WRTS == ("W", "z", "x", "b")
    assert all(t.name == name for name, t in TARGETS.items())
    assert maths.wrt_choices() == "W, z, x or b"
    with pytest.raises(InputError, match=r"^wrt must be one of W, z, x, b, not 'T'$"):
        wrt_target("T")
    with pytest.raises(InputError, match=r"^wrt must be one of W, z, x, b, not 'w'$"):
        smjac.jacobian(np.ones((2, 3)), np.ones(2), wrt="w")


@pytest.mark.parametrize("wrt", WRTS)
@pytest.mark.parametrize("layout", ["in-out", "out-in"])
def test_columns_and_legend_agree_with_the_jacobians_shape(wrt, layout):
    W, x, b = layer(layout)
    target = TARGETS[wrt]
    J = smjac.jacobian(W, x, b, wrt=wrt, layout=layout)
    assert J.shape == (K, target.columns(K, n)) == (K, {"W": K * n, "x": n, "z": K, "b": K}[wrt])
    legend = column_legend(wrt, K, n, layout)
    assert [c for c, _, _ in legend] == list(range(J.shape[1]))
    X = np.stack([x, -x])
    assert smjac.jacobian(W, X, b, wrt=wrt, layout=layout).shape == (2, K, target.columns(K, n))
    assert len(target.index_names) == len(target.entry_sizes(K, n)) == len(target.shape) + 1


@pytest.mark.parametrize("wrt", WRTS)
@pytest.mark.parametrize("layout", ["in-out", "out-in"])
@pytest.mark.parametrize(("function", "T"), [("softmax", 1.0), ("log-softmax", 2.5)])
def test_each_legend_column_is_the_derivative_by_the_entry_it_names(wrt, layout, function, T):
    # the place the legend says a column's variable is stored, moved a little, moves exactly that column
    W, x, b = layer(layout, seed=11)
    J = smjac.jacobian(W, x, b, wrt=wrt, layout=layout, function=function, temperature=T)
    eps = 1e-6
    for c, what, stored in column_legend(wrt, K, n, layout):
        name, inside = re.fullmatch(r"(\w)\[([\d,]+)\]", stored).groups()
        assert name == wrt
        at = tuple(int(v) for v in inside.split(","))
        up = moved(name, W, x, b, layout, function, T, at, eps)
        down = moved(name, W, x, b, layout, function, T, at, -eps)
        assert_allclose(J[:, c], (up - down) / (2 * eps), rtol=1e-6, atol=1e-9, err_msg=f"{c}: {what}")


@pytest.mark.parametrize("layout", ["in-out", "out-in"])
def test_a_weights_name_says_which_logit_it_moves_and_by_which_input(layout):
    # w[i,j] joins input j to output i: dz/dw[i,j] is x_j in row i and nothing elsewhere
    W, x, b = layer(layout)
    dz = smjac.jacobian(W, x, b, of="z", wrt="W", layout=layout)
    for c in range(K * n):
        name, _ = column_label(TARGETS["W"], c, n, layout)
        i, j = (int(v) for v in re.fullmatch(r"w\[(\d+),(\d+)\]", name).groups())
        want = np.zeros(K)
        want[i] = x[j]
        assert_allclose(dz[:, c], want, rtol=0, atol=0)


@pytest.mark.parametrize("wrt", WRTS)
def test_an_entry_indexed_as_the_target_says_is_that_column_of_the_jacobian(wrt):
    W, x, b = layer("in-out", seed=3)
    target = TARGETS[wrt]
    L = maths.make_layer(W, x, b)
    J = maths.layer_jacobian(L, wrt=wrt)[0]
    sizes = target.entry_sizes(K, n)
    for t in range(K):
        for c in range(J.shape[1]):
            index = (t, *(int(v) for v in np.unravel_index(c, sizes[1:])))
            assert maths.layer_entry(L, index, wrt=wrt) == J[t, c]
    beyond = (K, *(s - 1 for s in sizes[1:]))  # the output index one past its range
    with pytest.raises(InputError, match=f"^{target.index_names[0]} = {K} is out of range"):
        maths.layer_entry(L, beyond, wrt=wrt)
    with pytest.raises(InputError, match=re.escape(target.entry_form)):
        maths.layer_entry(L, (0,) * (len(sizes) + 1), wrt=wrt)


@pytest.mark.parametrize("wrt", WRTS)
def test_the_per_output_fact_is_where_a_columns_variable_moves_one_logit(wrt):
    # per_output targets: dz/d(column c) is zero outside the logit column_output names
    W, x, b = layer("in-out", seed=8)
    target = TARGETS[wrt]
    dz = smjac.jacobian(W, x, b, of="z", wrt=wrt)
    cols = np.arange(dz.shape[1])
    if not target.per_output:
        assert np.count_nonzero(dz, axis=0).min() == K  # each x_j moves every logit
        return
    rows = target.column_output(cols, n)
    off = dz.copy()
    off[rows, cols] = 0
    assert not off.any() and np.all(dz[rows, cols] != 0)


def test_only_a_factored_target_has_factors():
    W, x, b = layer("in-out")
    F = maths.jacobian_factors(W, x, b)
    assert_allclose(F.dense(), smjac.jacobian(W, x, b), rtol=0, atol=0)
    assert [t.name for t in TARGETS.values() if t.factored] == ["W"]


def test_the_targets_room_is_maths_alone():
    # targets.py is declared in the maths: it imports nothing of smjac's from outside the maths
    # (notation, the checker and the outputs read it, never the other way round)
    tree = ast.parse((MATHS / "targets.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert all(node.level == 1 for node in imports if isinstance(node, ast.ImportFrom) and node.level)
    named = {a.name for node in imports for a in node.names} | {
        node.module or "" for node in imports if isinstance(node, ast.ImportFrom)
    }
    assert not {m for m in named if m.startswith("smjac")}
    assert "print" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


@pytest.mark.parametrize("wrt", WRTS)
@pytest.mark.parametrize("block_bytes", [8, 2**20])  # a row of dh/dz at a time, or a sample whole
def test_the_chain_factor_carries_dh_dz_to_the_jacobian(wrt, block_bytes):
    # verify's truth, made from rows and entries of dh/dz through each target's chain factor, is
    # smjac's Jacobian (itself checked against finite differences above)
    from smjac.checking.sources import Chained, true_dz

    W, x, b = layer("in-out", seed=21)
    L = maths.make_layer(W, np.stack([x, 2 * x]), b, temperature=1.5)
    J = maths.layer_jacobian(L, wrt=wrt)
    src = Chained(true_dz(L, "h"), L, TARGETS[wrt], block_bytes)
    assert_allclose(src.max_abs, np.max(np.abs(J)), rtol=1e-14)
    rr, cc = np.meshgrid(np.arange(K), np.arange(J.shape[2]), indexing="ij")
    for s in range(2):
        assert_allclose(src.std_rows(s, 0, K), J[s], rtol=1e-13, atol=1e-16)
        assert_allclose(src.std_rows(s, 1, K), J[s, 1:], rtol=1e-13, atol=1e-16)
        assert_allclose(src.gather(s, rr[::-1], cc[::-1]), J[s][rr[::-1], cc[::-1]], rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("wrt", WRTS)
def test_a_chain_scale_is_the_factor_its_rows_largest_entry_grows_by(wrt):
    rng = np.random.default_rng(2)
    W, x, b = layer("in-out", seed=2)
    L = maths.make_layer(W, x, b)
    target = TARGETS[wrt]
    for _ in range(5):
        A = rng.normal(size=(K, K))
        rows = target.chain_rows(A, L, 0)
        assert rows.shape == (K, target.columns(K, n))
        scale = target.chain_scale(L, 0)
        if scale is not None:
            assert np.max(np.abs(rows)) == np.max(np.abs(A)) * scale


@pytest.mark.parametrize("wrt", WRTS)
@pytest.mark.parametrize("batch", [False, True])
def test_verify_says_what_a_targets_jacobian_of_the_wrong_size_is(wrt, batch):
    from smjac.checking.problem import Problem
    from smjac.checking.verdict import describe_shape

    W, x, b = layer("in-out")
    L = maths.make_layer(W, np.stack([x, x]) if batch else x, b)
    shape = maths.jacobian_shape(L, wrt=wrt)
    pr = Problem(L, "jacobian", wrt="b" if wrt == "W" else "W")  # asked for another, given this one
    said = describe_shape(pr, shape[1:])
    assert f"dh/d{wrt}" in said and "for one sample" in said
    if batch:
        assert f"dh/d{wrt}" in describe_shape(pr, shape) and "for each sample" in describe_shape(pr, shape)


def test_a_target_verify_has_no_words_for_is_described_from_its_facts(monkeypatch):
    from smjac.checking.problem import Problem
    from smjac.checking.verdict import describe_shape

    scalar = maths.Target("T", (), "identity", ("T",), "T (output T)", "temperature T", "T")
    monkeypatch.setitem(TARGETS, "T", scalar)
    W, x, b = layer("in-out")
    pr = Problem(maths.make_layer(W, np.stack([x, x]), b), "jacobian")
    assert describe_shape(pr, (K, 1)) == "dh/dT for one sample (K × 1)"
    assert describe_shape(pr, (2, K, 1)) == "dh/dT for each sample (N × K × 1)"
    assert scalar.columns(K, n) == 1 and scalar.entry_sizes(K, n) == (K,)
