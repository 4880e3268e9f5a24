"""The Python API as a user meets it: the version, the names `import smjac` offers, the layer's
options taken once, and the types a user's type checker sees."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import smjac

from .conftest import ROOT


def test_the_version_is_one_fact_and_the_changelog_s_newest():
    # setuptools reads the version from smjac.__version__ (a literal: no import, no metadata look-up)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = pyproject.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project and not re.search(r"^version\s*=", project, re.M)
    assert 'version = { attr = "smjac.__version__" }' in pyproject
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert newest is not None and smjac.__version__ == newest.group(1) == "0.3.0"


# A user's script, as mypy sees it through smjac's py.typed: names loaded on first use are typed,
# and the layer's choices are the Literals smjac declares, so a misspelt one is caught before it runs.
USER_CODE = """
import numpy as np
import smjac

W, x = np.ones((3, 5)), np.ones(3)
report = smjac.check(W, x, layout="in-out", temperature=2.0, target=1, reduce="sum")
ok: bool = report.ok and smjac.verify(W, x, smjac.jacobian(W, x, wrt="x")).ok
v = smjac.verify(W.T, x, grad=np.ones((5, 3)), target=1, layout="out-in", function="log-softmax")
g = smjac.grad(W, x, np.zeros(5), target=1, reduce="sum", function="log-softmax")
F = smjac.forward(W.T, x, layout="out-in")
L = smjac.make_layer(W, x, function="softmax")
blocks = smjac.jacobian_blocks(L, of="z", method="chain")
"""
WRONG_CHOICES = {
    'smjac.grad(W, x, target=1, layout="outin")': "layout",
    'smjac.forward(W, x, function="relu")': "function",
    'smjac.jacobian(W, x, wrt="y")': "wrt",
    'smjac.grad(W, x, target=1, reduce="avg")': "reduce",
    'smjac.make_layer(W, x, layout="io")': "layout",
    "smjac.forward(W, x, tempreature=2.0)": "tempreature",
    'smjac.check(W, x, layout="outin")': "layout",
    'smjac.check(W, x, target=1, reduce="avg", function="log-softmax")': "reduce",
    'smjac.verify(W, x, grad=W, target=1, layout="outin")': "layout",
    'smjac.verify(W, x, smjac.jacobian(W, x), function="relu")': "function",
    "smjac.verify(W, x, grad=W, target=1, tempreature=2.0)": "tempreature",
}


def test_mypy_checks_a_user_s_code_against_smjac_s_types(tmp_path):
    mypy = pytest.importorskip("mypy.api", reason="the dev extra installs mypy")
    (tmp_path / "good.py").write_text(USER_CODE, encoding="utf-8")
    bad = USER_CODE.split("report")[0] + "\n".join(WRONG_CHOICES) + "\n"
    (tmp_path / "bad.py").write_text(bad, encoding="utf-8")
    first_bad_line = bad.count("\n") - len(WRONG_CHOICES) + 1
    env = {"MYPYPATH": str(ROOT)}
    args = ["--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    old = os.environ.get("MYPYPATH")
    os.environ.update(env)
    try:
        out, err, _ = mypy.run([*args, str(tmp_path / "good.py"), str(tmp_path / "bad.py")])
    finally:
        os.environ.pop("MYPYPATH") if old is None else os.environ.update(MYPYPATH=old)
    assert not err, err
    assert "good.py" not in out, out
    flagged = {int(m) for m in re.findall(r"bad\.py:(\d+): error", out)}
    assert flagged == set(range(first_bad_line, first_bad_line + len(WRONG_CHOICES))), out
    for line, name in enumerate(WRONG_CHOICES.values(), first_bad_line):
        assert re.search(rf"bad\.py:{line}: error: .*{name}", out), (name, out)


# ---- the layer's options, declared once (LayerOptions) and taken by every public function ----


def _by_hand(W_io, X, b, function, T, target):
    """z, h and the cross-entropy gradient (in-out, mean over the batch) from the formulas alone."""
    Z = X @ W_io + b
    E = np.exp((Z - Z.max(axis=1, keepdims=True)) / T)
    P = E / E.sum(axis=1, keepdims=True)
    H = P if function == "softmax" else np.log(P)
    delta = (P - np.eye(W_io.shape[1])[target]) / T
    return Z, H, X.T @ delta / len(X), delta.mean(axis=0)


@pytest.mark.parametrize("layout", ["in-out", "out-in"])
@pytest.mark.parametrize("function", ["softmax", "log-softmax"])
def test_every_public_function_takes_the_layer_s_options_as_before(layout, function):
    rng = np.random.default_rng(7)
    W_io, X, b, T = rng.normal(size=(4, 3)), rng.normal(size=(5, 4)), rng.normal(size=3), 0.7
    W = W_io if layout == "in-out" else W_io.T
    Z, H, G_io, gb = _by_hand(W_io, X, b, function, T, [0, 2, 1, 1, 0])
    layer = dict(layout=layout, function=function, temperature=T)
    G = G_io if layout == "in-out" else G_io.T  # dLoss/dW in W's own layout: x δᵀ or δ xᵀ
    assert_allclose(smjac.forward(W, X, b, **layer).h, H, rtol=1e-12)
    assert_allclose(smjac.forward(W, X, b, layout=layout, function=function, temperature=T).z, Z, rtol=1e-12)
    g = smjac.grad(W, X, b, target=[0, 2, 1, 1, 0], **layer)
    assert_allclose(g.W, G, rtol=1e-12)
    assert_allclose(g.b, gb, rtol=1e-12)
    assert_allclose(
        smjac.grad_chunks(W, X, b, target=[0, 2, 1, 1, 0], chunk_bytes=64, **layer).W, G, rtol=1e-12
    )
    chunks = dict(smjac.forward_chunks(W, X, b, chunk_bytes=64, **layer))
    assert len(chunks) > 1
    assert_allclose(np.concatenate([chunks[r].h for r in sorted(chunks)]), H, rtol=1e-12)
    J = smjac.jacobian(W, X[0], b, wrt="b", **layer)  # dh/db = dh/dz, by hand
    p = np.exp(H[0]) if function == "log-softmax" else H[0]
    dh_dz = (np.diag(p) - np.outer(p, p)) / T if function == "softmax" else (np.eye(3) - p) / T
    assert_allclose(J, dh_dz, rtol=1e-12, atol=1e-15)
    assert_allclose(smjac.jacobian_factors(W, X[0], b, **layer).A, dh_dz, rtol=1e-12, atol=1e-15)
    L = smjac.make_layer(W, X, b, **layer)
    again = smjac.make_layer(W, X, b, **L.options)
    assert L.options == again.options == layer and np.array_equal(again.W, L.W)
    assert_allclose(L.as_given(L.W), W) and L.as_given(L.W).shape == np.shape(W)
    assert smjac.check(W, X[0], b=b, **layer).ok
    assert smjac.verify(W, X, grad=G, target=[0, 2, 1, 1, 0], b=b, **layer).ok


@pytest.mark.parametrize(
    "call",
    [
        lambda W, x: smjac.grad(W, x, target=0, tempreature=2.0),
        lambda W, x: smjac.forward(W, x, lay_out="out-in"),
        lambda W, x: smjac.jacobian(W, x, fn="softmax"),
        lambda W, x: smjac.check(W, x, lay_out="out-in"),
        lambda W, x: smjac.verify(W, x, grad=np.ones((3, 2)), target=0, tempreature=2.0),
        lambda W, x: smjac.jacobian_factors(W, x, fn="softmax"),
        lambda W, x: list(smjac.forward_chunks(W, np.ones((2, 3)), lay_out="out-in")),
        lambda W, x: smjac.grad_chunks(W, np.ones((2, 3)), target=0, tempreature=2.0),
    ],
)
def test_a_misspelt_option_is_refused_by_name(call):
    # named as Python names a keyword of the function called, not of make_layer, which the user never called
    with pytest.raises(TypeError, match=r"tempreature|lay_out|fn") as e:
        call(np.ones((3, 2)), np.ones(3))
    assert "make_layer" not in str(e.value)
    assert re.match(
        r"(grad|forward|jacobian|check|verify|jacobian_factors|forward_chunks|grad_chunks)\(\) ", str(e.value)
    )
    assert "layout, function, temperature" in str(e.value)


@pytest.mark.parametrize("name", ["check", "verify"])
def test_check_and_verify_take_max_memory_as_their_layer_functions_do(name):
    # each does the work of its layer_ function, which a budget bounds; the same budget, the same refusals
    W, x = np.ones((3, 2)), np.ones(3)
    answer = {} if name == "check" else dict(grad=smjac.grad(W, x, target=0).W, target=0)
    call = getattr(smjac, name)
    assert call(W, x, max_memory=10**6, **answer).ok
    with pytest.raises(smjac.InputError, match=r"over the memory budget of 100 bytes \(max_memory\)"):
        call(W, x, max_memory=100, **answer)
    with pytest.raises(
        smjac.InputError, match="max_memory must be a whole number of bytes, at least 1, not 0"
    ):
        call(W, x, max_memory=0, **answer)


@pytest.mark.parametrize(
    "name",
    ["forward", "forward_chunks", "grad", "grad_chunks", "jacobian", "jacobian_factors", "check", "verify"],
)
def test_every_public_function_takes_the_layer_s_options_one_way(name):
    # the choices are LayerOptions' keywords, handed to make_layer whole: none is re-declared
    # with a default of its own that could drift from make_layer's
    import inspect

    params = inspect.signature(getattr(smjac, name)).parameters
    assert params["layer"].kind is inspect.Parameter.VAR_KEYWORD
    assert not {"layout", "function", "temperature"} & set(params), name


def test_a_wrong_choice_is_refused_at_run_time_naming_the_parameter():
    with pytest.raises(smjac.InputError, match="layout must be one of in-out, out-in, not 'outin'"):
        smjac.grad(np.ones((3, 2)), np.ones(3), target=1, layout="outin")  # type: ignore[arg-type]


def test_dir_lists_the_names_loaded_on_first_use():
    names = dir(smjac)
    assert {"check", "verify", "Verdict", "MISTAKES", "CheckReport", "grad", "__version__"} <= set(names)
    assert all(hasattr(smjac, name) for name in smjac.__all__)


def test_the_names_loaded_on_first_use_are_the_public_ones_a_type_checker_sees():
    # smjac/__init__.py lists them three times (for the type checker, for loading, for __all__),
    # as a lazy package must for linters and type checkers to follow it: they stay one list
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(smjac))
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for sub in ast.walk(node)
        if isinstance(sub, ast.ImportFrom)
        for alias in sub.names
    }
    eager = {"InputError", "LoadError", "OutputError", "ShapeError", "SmjacError", "__version__"}
    assert typed == set(smjac._LAZY) == set(smjac.__all__) - eager


# ---- one sample of a small layer: the short path (maths/small.py) gives the general path's bits ----


def _cases():
    rng = np.random.default_rng(23)
    for n, K in ((3, 5), (64, 10), (1, 2), (7, 3)):
        for layout in ("in-out", "out-in"):
            for T in (1.0, 0.5, 3.0):
                W_io = rng.normal(size=(n, K)) * rng.choice([0.1, 1.0, 40.0])
                x = rng.normal(size=n)
                x[rng.integers(n)] = -0.0  # zeros of either sign in x δᵀ
                b = rng.normal(size=K) if T != 1 else None
                W = W_io if layout == "in-out" else W_io.T
                likeliest = int(np.argmax(x @ W_io + (0 if b is None else b)))
                for t in {likeliest, (likeliest + 1) % K}:  # the likeliest class takes the other branch
                    yield W, x, b, dict(layout=layout, temperature=T), t


def _general(monkeypatch, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the short path switched off."""
    with monkeypatch.context() as m:
        m.setattr(smjac.maths.small, "fits", lambda L: False)
        return fn(*args, **kwargs)


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_one_small_sample_takes_the_short_path_with_the_general_path_s_bits(monkeypatch):
    seen = []
    monkeypatch.setattr(smjac.maths.small, "grad", _spy(smjac.maths.small.grad, seen))
    for W, x, b, layer, t in _cases():
        for function in ("softmax", "log-softmax"):
            short = smjac.grad(W, x, b, target=t, function=function, **layer)
            general = _general(monkeypatch, smjac.grad, W, x, b, target=t, function=function, **layer)
            for name in ("W", "b", "z", "loss"):
                assert _same_bits(getattr(short, name), getattr(general, name)), (name, W.shape, layer, t)
            f_short = smjac.forward(W, x, b, function=function, **layer)
            f_general = _general(monkeypatch, smjac.forward, W, x, b, function=function, **layer)
            assert all(_same_bits(s, g) for s, g in zip(f_short, f_general, strict=True))
            for wrt in ("W", "x", "b"):
                J = smjac.jacobian(W, x, b, wrt=wrt, function=function, **layer)
                assert _same_bits(
                    J, _general(monkeypatch, smjac.jacobian, W, x, b, wrt=wrt, function=function, **layer)
                )
    assert seen and all(r is not None for r in seen)  # the short path did the work


@pytest.mark.parametrize("T", [1.0, 0.5, 3.0])
def test_a_certain_class_s_delta_is_minus_zero_and_its_bias_gradient_zero_on_both_paths(monkeypatch, T):
    # p_t = 1 exactly (the other classes' exp underflows, or nearly: their p a denormal that δ / T
    # rounds to 0): δ_t = −(1 − p_t) is −0, and dLoss/db, the sum of δ over the one sample, is +0
    seen = []
    monkeypatch.setattr(smjac.maths.small, "grad", _spy(smjac.maths.small.grad, seen))
    for gap in (1000.0, *(744.0 + k / 8 for k in range(9))):
        W, x = np.array([[0.0, -gap * T, -gap * T]]), np.array([1.0])
        short = smjac.grad(W, x, target=0, temperature=T)
        general = _general(monkeypatch, smjac.grad, W, x, target=0, temperature=T)
        for name in ("W", "b", "z", "loss"):
            assert _same_bits(getattr(short, name), getattr(general, name)), (name, gap, T)
        if gap == 1000.0:
            assert np.signbit(short.z[0]) and short.z[0] == 0
            assert not np.signbit(short.b[0]) and short.b[0] == 0
    assert seen and all(r is not None for r in seen)


def test_logits_whose_squares_overflow_still_take_the_short_path(monkeypatch):
    # the short path sees a −inf logit in z·z, which finite logits past 1e154 overflow too: those
    # are looked at entry by entry, and the path keeps the work
    seen = []
    monkeypatch.setattr(smjac.maths.small, "grad", _spy(smjac.maths.small.grad, seen))
    W, x = np.array([[3e200, -2e200, 1e200], [1e200, 1.0, -1e200]]), np.array([0.5, 0.25])
    for t in range(3):
        short = smjac.grad(W, x, target=t, reduce="sum")
        general = _general(monkeypatch, smjac.grad, W, x, target=t, reduce="sum")
        for name in ("W", "b", "z", "loss"):
            assert _same_bits(getattr(short, name), getattr(general, name)), (name, t)
    assert len(seen) == 3 and all(r is not None for r in seen)


def _spy(fn, seen):
    def spied(*args):
        seen.append(fn(*args))
        return seen[-1]

    return spied


@pytest.mark.parametrize(
    ("W", "x", "error"),
    [
        ([[1.0, 2.0], [np.nan, 0.5]], [1.0, 1.0], "W holds a NaN"),
        ([[1.0, -np.inf], [3.0, 0.5]], [1.0, 1.0], "W holds a NaN"),  # a −inf logit: seen in z·z
        ([[1.0, 2.0], [3.0, 0.5]], [np.inf, 1.0], "x holds a NaN or infinite value"),
        ([[1e300, -1e300], [1e300, -1e300]], [1e10, 1e10], "overflows"),
    ],
)
def test_the_short_path_refuses_what_the_general_path_refuses(monkeypatch, W, x, error):
    for fn, kwargs in ((smjac.grad, {"target": 0}), (smjac.forward, {})):
        with pytest.raises(smjac.InputError, match=error) as short:
            fn(W, x, **kwargs)
        with pytest.raises(smjac.InputError) as general:
            _general(monkeypatch, fn, W, x, **kwargs)
        assert str(short.value) == str(general.value)


def test_a_logit_past_the_float_range_below_the_others_is_refused_not_dropped():
    # z₁ = −∞ after overflow while z₀ is finite: p₁ would be an exact 0, but z itself is out of range
    W = np.array([[1.0, -1e308], [0.0, -1e308]])
    with pytest.raises(smjac.InputError, match="z = Wᵀx overflows"):
        smjac.grad(W, [1.0, 1.0], target=0)


def test_a_vector_given_to_the_chunked_functions_is_refused_as_not_a_batch():
    W, x = np.ones((3, 2)), np.ones(3)
    with pytest.raises(smjac.ShapeError, match=r"x must be a batch \(N×n\) to be read in chunks"):
        list(smjac.forward_chunks(W, x))
    with pytest.raises(smjac.ShapeError, match=r"x must be a batch \(N×n\) to be read in chunks"):
        smjac.grad_chunks(W, x, target=0)


# ---- check counts its work in forward passes, as the writer's bar shows it ----


@pytest.mark.parametrize(
    "case",
    [
        dict(n=4, K=3, N=2, kw={}),
        dict(n=5, K=4, N=3, kw=dict(probes=5)),
        dict(n=4, K=3, N=3, kw=dict(target=[0, 2, 1], class_weights=[1.0, 2.0, 0.5]), bias=True),
        dict(n=3, K=1, N=2, kw={}),  # binary: the two-class layer's checks, and its own n×1 gradient
    ],
)
def test_check_reports_progress_in_forward_passes_adding_up_to_its_work(case):
    from smjac.outputs import results

    rng = np.random.default_rng(2)
    n, K, N, kw = case["n"], case["K"], case["N"], case["kw"]
    b = rng.normal(size=K) if case.get("bias") else None
    L = smjac.make_layer(rng.normal(size=(n, K)) / 2, rng.normal(size=(N, n)), b)
    # by hand: four evaluations per variable moved (two steps, both ways); per sample the logits
    # (K), the weights for h and again for the per-sample loss (K·n each) and the inputs (n);
    # with a target (or a binary layer) four losses of the whole batch per weight and per bias
    probes = kw.get("probes")

    def moved(size):
        return size if probes is None else min(probes, size)

    Kc = max(K, 2)  # a binary layer is checked as the two-class softmax it is read as
    per_sample = 4 * (2 * moved(Kc * n) + moved(n) + moved(Kc))
    loss = 4 * (moved(K * n) + (K if b is not None else 0)) * N if "target" in kw or K == 1 else 0
    calls: list[int] = []
    assert smjac.layer_check(L, progress=calls.append, **kw).ok
    assert len(calls) > 1 and min(calls) > 0
    assert sum(calls) == per_sample * N + loss
    result = results.check(L, rtol=None, atol=None, probes=kw.get("probes"), seed=0,
                           **{k: v for k, v in kw.items() if k != "probes"})  # fmt: skip
    seen: list[int] = []
    result.data(seen.append)
    assert result.unit == "forward passes" and result.work == sum(seen) == sum(calls)


def test_an_empty_batch_gives_empty_results_and_no_mean_or_check_over_nothing():
    # the chain's dh/dx took a maximum over no samples (numpy's ValueError), grad's mean divided
    # by zero (ZeroDivisionError), check indexed its first sample (IndexError), grad_chunks
    # asserted a chunk
    W, X0 = np.arange(12.0).reshape(3, 4) / 10, np.zeros((0, 3))
    for wrt, cols in (("W", 12), ("x", 3), ("z", 4), ("b", 4)):
        for method in ("shortcut", "chain"):
            for of in ("h", "z"):
                J = smjac.jacobian(W, X0, wrt=wrt, method=method, of=of)
                assert J.shape == (0, 4, cols) and J.dtype == np.float64
    for give in ({"target": np.zeros(0, int)}, {"upstream": np.zeros((0, 4))}):
        for g in (smjac.grad(W, X0, reduce="sum", **give), smjac.grad_chunks(W, X0, reduce="sum", **give)):
            assert_array_equal(g.W, np.zeros((3, 4)))
            assert_array_equal(g.b, np.zeros(4))
        for fn in (smjac.grad, smjac.grad_chunks):
            with pytest.raises(
                smjac.InputError, match=r"^x has no samples \(a 0×3 batch\): their mean loss is 0/0"
            ):
                fn(W, X0, **give)
    with pytest.raises(
        smjac.InputError, match=r"^x has no samples \(a 0×3 batch\): there is nothing to check; "
    ):
        smjac.check(W, X0)
    with pytest.raises(
        smjac.InputError, match=r"^x has no samples \(a 0×3 batch\): there is nothing to verify; "
    ):
        smjac.verify(W, X0, grad=np.zeros((3, 4)), target=np.zeros(0, int))


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        # long double: linalg's TypeError in check, a float128 forward pass elsewhere
        (lambda W: smjac.check(W.astype(np.longdouble), np.ones(3)), smjac.InputError, "W has dtype float"),
        (
            lambda W: smjac.forward(W, np.ones(3, np.longdouble)),
            smjac.InputError,
            "(long double); smjac computes",
        ),
        # numpy's ValueError about an inhomogeneous shape
        (
            lambda W: smjac.grad(W, np.ones((2, 3)), target=[[0], [1, 2]]),
            smjac.ShapeError,
            "rows of different",
        ),
        (
            lambda W: smjac.forward(W, [[1, 2, 3], [1, 2]]),
            smjac.ShapeError,
            "x is not a vector or a matrix: its rows",
        ),
        (  # an unsigned class past int64 wrapped to a negative number in the message
            lambda W: smjac.grad(W, np.ones(3), target=np.uint64(2**63)),
            smjac.InputError,
            "target class 9223372036854775808 is out of range",
        ),
        (  # text was read as a number here, where a target of text is refused
            lambda W: smjac.grad(W, np.ones((2, 3)), target=[0, 1], ignore_index="1"),
            smjac.InputError,
            "ignore_index must be a whole number, not '1'",
        ),
        (  # a long-double answer was taken silently, where every other long-double input is refused
            lambda W: smjac.verify(W, np.ones(3), grad=np.zeros((3, 4), np.longdouble), upstream=np.ones(4)),
            smjac.InputError,
            "the answer has dtype float",
        ),
        # numpy's TypeError about scalar indices
        (
            lambda W: smjac.forward(W, np.ones(3), layout=np.array(["in-out"])),
            smjac.InputError,
            "layout must be one",
        ),
        # a many-line repr of an array in a one-line message
        (
            lambda W: smjac.check(W, np.ones(3), max_memory=np.arange(100)),
            smjac.InputError,
            "at least 1, not array([",
        ),
    ],
)
def test_odd_arguments_are_refused_by_smjac_in_one_line(call, error, says):
    W = np.arange(12.0).reshape(3, 4) / 10
    long_double = "dtype float" in says or "long double" in says
    if long_double and np.dtype(np.longdouble).itemsize <= 8:  # a platform whose long double is a float64
        call(W)
        return
    with pytest.raises(error, match=re.escape(says)) as got:
        call(W)
    assert "\n" not in str(got.value)


def test_float16_is_computed_and_checked_in_float32():
    # float16 went through as it was: verify took its tolerance from float16 (rtol 0.098) and passed
    # an answer 10% off, and check raised linalg's TypeError
    W = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 0.1], [0.11, 0.12, 0.13, 0.14, 0.15]])
    x = np.array([0.1, 0.5, 0.4])
    W16, x16 = W.astype(np.float16), x.astype(np.float16)
    J = smjac.jacobian(W, x)
    for wrong in (J * 1.10, J * 1.001):
        assert not smjac.verify(W16, x16, wrong).ok
    assert not smjac.verify(W16, x16, grad=smjac.grad(W, x, target=1).W * 1.05, target=1).ok
    assert smjac.verify(W16, x16, smjac.jacobian(W16.astype(np.float32), x16.astype(np.float32))).ok
    assert smjac.check(W16, x16).ok
    f = smjac.forward(W16, x16)
    assert f.h.dtype == np.float32
    assert_array_equal(f.h, smjac.forward(W16.astype(np.float32), x16.astype(np.float32)).h)
    assert smjac.grad(W16, x16, target=1).W.dtype == np.float32


def test_a_masked_entry_is_refused_not_read_through_its_mask():
    # np.asarray drops the mask: x = [1, --, 2] was computed as [1, 0.5, 2], the hidden number
    W = np.arange(12.0).reshape(3, 4) / 10
    hidden = np.ma.array([1.0, 0.5, 2.0], mask=[0, 1, 0])
    for call in (
        lambda: smjac.forward(W, hidden),
        lambda: smjac.grad(W, hidden, target=1),
        lambda: smjac.forward(np.ma.array(W, mask=W > 1), np.ones(3)),
        lambda: smjac.verify(W, np.ones(3), np.ma.array(np.zeros((4, 12)), mask=np.eye(4, 12))),
    ):
        with pytest.raises(
            smjac.InputError,
            match=r"^masked entries in (x|W|the answer) \(the first at \[\d(, \d+)?\]\): smjac reads no mask",
        ):
            call()
    X = np.ones((3, 3))
    hides = np.ma.masked_array(np.ones((3, 4)), mask=np.eye(3, 4))
    t = np.ma.masked_array([1, 0, 3], mask=[1, 0, 0])
    for call, name in (
        (lambda: list(smjac.forward_chunks(W, np.ma.masked_array(X, mask=np.eye(3)))), "x"),
        (lambda: smjac.grad(W, X, target=t), "targets"),
        (lambda: smjac.grad(W, X[0], target=np.ma.masked), "targets"),
        (lambda: smjac.grad_chunks(W, X, upstream=hides), "upstream"),
        (lambda: smjac.grad(W, X, upstream=hides), "upstream"),
        (lambda: smjac.check(W, X, target=t), "targets"),
        (lambda: smjac.verify(W, X, grad=np.zeros((3, 4)), target=t), "targets"),
        (lambda: smjac.verify(W, X, grad=np.zeros((3, 4)), upstream=hides), "upstream"),
        (
            lambda: smjac.grad(
                W, X, target=[1, 0, 3], class_weights=np.ma.masked_array(np.ones(4), mask=[1, 0, 0, 0])
            ),
            "class_weights",
        ),
    ):
        with pytest.raises(smjac.InputError, match=f"^masked entries in {name}"):
            call()
    unmasked = np.ma.array([1.0, 0.5, 2.0], mask=[0, 0, 0])  # a mask that hides nothing is no mistake
    assert_array_equal(smjac.forward(W, unmasked).h, smjac.forward(W, unmasked.data).h)
