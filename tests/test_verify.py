"""smjac.verify: right answers pass, each known mistake is named, noise is not, large answers stay flat.

Every wrong answer here is written by hand from its own formula (the slip a person makes), never
produced by smjac's catalogue; right answers come from the post's loops, central differences and
a float32 computation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smjac
from smjac import inputs
from smjac.formats import npy

from .conftest import BLOG_W, BLOG_X, ROOT, central_diff, post_l_dir_shortcut, post_softmax


def sm(Z, axis=-1):
    E = np.exp(Z - Z.max(axis=axis, keepdims=True))
    return E / E.sum(axis=axis, keepdims=True)


def full_A(p):
    return np.diag(p) - np.outer(p, p)


def kron_rows(A, x):
    """dh/dW[t, i·n + j] = A[t, i] x[j], by np.kron (not smjac)."""
    return np.kron(A, x[None, :])


class Case:
    """A random layer in a given layout, dtype, with or without bias, one sample or a batch."""

    def __init__(self, rng, layout="in-out", dtype=np.float64, bias=False, N=None, n=3, K=4, T=1.0):
        self.n, self.K, self.N, self.T = n, K, N, T
        self.Wio = rng.normal(size=(n, K))
        self.X = rng.normal(size=(N or 1, n))
        self.b = rng.normal(size=K) if bias else None
        self.layout, self.dtype = layout, dtype
        Z = self.X @ self.Wio + (0 if self.b is None else self.b)
        self.Z = Z
        self.P = sm(Z / T)
        self.targets = rng.integers(0, K, size=N or 1)
        self.Y = np.eye(K)[self.targets]

    def kw(self, **extra):
        W = self.Wio if self.layout == "in-out" else self.Wio.T
        x = self.X if self.N else self.X[0]
        kw = dict(b=self.b, layout=self.layout, temperature=self.T)
        kw.update(extra)
        return (W.astype(self.dtype), x.astype(self.dtype)), kw

    def target(self):
        return self.targets if self.N else int(self.targets[0])

    def per_sample(self, f):
        """Stack f(s) over the samples, or f(0) alone for one sample."""
        out = np.array([f(s) for s in range(len(self.X))])
        return out if self.N else out[0]

    def grad_layout(self, g_io):
        return g_io if self.layout == "in-out" else g_io.T


def diagnosed(v):
    return {d.mistake for d in v.diagnosis}


def check(case, answer, expect, **kw):
    if kw.get("kind") in ("grad", "grad_b"):
        kw.setdefault("reduce", "sum")  # the answers below are written as sums over the batch
    args, base = case.kw(**kw)
    v = smjac.verify(*args, np.asarray(answer, dtype=case.dtype), **base)
    assert not v.ok, v
    assert diagnosed(v) == set(expect), v
    json.dumps(v.to_dict(), allow_nan=False)  # the contract is valid JSON, whatever the answer held
    return v


CASES = [
    pytest.param(dict(), id="plain"),
    pytest.param(dict(layout="out-in"), id="out-in"),
    pytest.param(dict(bias=True), id="bias"),
    pytest.param(dict(dtype=np.float32), id="float32"),
    pytest.param(dict(N=3, layout="out-in", bias=True), id="batch"),
]


@pytest.fixture(params=CASES)
def case(request, rng):
    return Case(rng, **request.param)


# ------------------------------------------------------------- each mistake, by its own formula


def test_diagonal_only(case):
    wrong = case.per_sample(lambda s: kron_rows(np.diag(case.P[s] * (1 - case.P[s])), case.X[s]))
    v = check(case, wrong, {"diagonal-only"})
    assert v.where["diagonal_blocks"] == 0 and v.where["off_diagonal_blocks"] > 0


def test_transposed_dh_dW_as_the_post_prints_it(case):
    wrong = case.per_sample(lambda s: post_l_dir_shortcut(case.Wio, case.P[s], case.X[s]))
    check(case, wrong, {"transposed"})


def test_column_order(case):
    def jac(s):
        A, x = full_A(case.P[s]), case.X[s]
        J = np.zeros((case.K, case.K * case.n))
        for t in range(case.K):
            for i in range(case.K):
                for j in range(case.n):
                    J[t, j * case.K + i] = A[t, i] * x[j]
        return J

    check(case, case.per_sample(jac), {"column-order"})


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_batch_reduction_says_which_way(rng, reduce):
    c = Case(rng, N=4, layout="out-in")
    summed = c.X.T @ (c.P - c.Y)  # n×K, the sum over samples
    wrong = summed / 4 if reduce == "sum" else summed
    v = check(c, c.grad_layout(wrong), {"batch-reduction"}, kind="grad", target=c.targets, reduce=reduce)
    assert ("too small" if reduce == "sum" else "too large") in v.diagnosis[0].detail


@pytest.mark.parametrize("variant", ["missing 1/T", "T squared", "no T at all"])
def test_temperature(rng, variant):
    c = Case(rng, T=3.0, bias=True)
    p, x = c.P[0], c.X[0]
    if variant == "missing 1/T":
        wrong = kron_rows(full_A(p), x)
    elif variant == "T squared":  # distillation: the soft loss times T²
        wrong = 9 * kron_rows(full_A(p) / 3, x)
    else:
        wrong = kron_rows(full_A(sm(c.Z[0])), x)
    v = check(c, wrong, {"temperature"})
    assert {"missing 1/T": "times T = 3", "T squared": "T² = 9", "no T at all": "not z/T"}[variant] in str(v)


def test_log_softmax_confusion_both_ways_and_one_minus_p(case):
    P = case.P
    soft = case.per_sample(lambda s: full_A(P[s]))
    check(case, soft, {"log-softmax-confusion"}, function="log-softmax", wrt="z")
    logs = case.per_sample(lambda s: np.eye(case.K) - P[s][None, :])
    check(case, logs, {"log-softmax-confusion"}, wrt="z")
    check(case, case.per_sample(lambda s: np.diag(1 - P[s])), {"log-softmax-confusion"}, wrt="z")


def test_missing_one_hot_and_sign(case):
    check(case, case.grad_layout(case.X.T @ case.P), {"missing-one-hot"}, kind="grad", target=case.target())
    check(case, case.grad_layout(case.X.T @ (case.Y - case.P)), {"sign"}, kind="grad", target=case.target())
    check(case, (case.Y - case.P).sum(axis=0), {"sign"}, kind="grad_b", target=case.target())


def test_wrong_axis(rng):
    c = Case(rng, N=5, K=3)
    P0 = sm(c.Z, axis=0)  # normalised over the samples
    check(c, np.array([kron_rows(full_A(p), x) for p, x in zip(P0, c.X, strict=True)]), {"wrong-axis"})
    check(c, c.X.T @ (P0 - c.Y), {"wrong-axis"}, kind="grad", target=c.targets)


def test_zero_update_is_the_post_s_column_sums(case):
    sums = (
        post_l_dir_shortcut(case.Wio, case.P[0], case.X[0]).sum(axis=1)
        if not case.N
        else sum(post_l_dir_shortcut(case.Wio, case.P[s], case.X[s]).sum(axis=1) for s in range(case.N))
    )
    g_io = sums.reshape(case.K, case.n).T  # weight w[i,j] at i·n + j
    check(case, case.grad_layout(g_io), {"zero-update"}, kind="grad", target=case.target())


def test_scale_reports_the_constant(case):
    wrong = 2 * case.grad_layout(case.X.T @ (case.P - case.Y))  # a squared-error habit
    v = check(case, wrong, {"scale"}, kind="grad", target=case.target())
    assert "times 2" in v.diagnosis[0].detail


def test_non_finite_from_exp_without_the_shift(rng):
    W, x = rng.normal(size=(3, 4)) * 400, np.array([1.0, 2.0, -1.0])
    z = W.T @ x
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(z)
        p = e / e.sum()
    wrong = full_A(p)
    if np.all(np.isfinite(wrong)):
        pytest.skip("these logits did not overflow")
    v = smjac.verify(W, x, wrong, wrt="z")
    assert diagnosed(v) == {"non-finite"}, v
    assert "max shift" in v.diagnosis[0].detail
    assert v.to_dict()["error"]["max_abs"] is None
    json.dumps(v.to_dict(), allow_nan=False)


def test_shape_says_what_theirs_would_be():
    v = smjac.verify(BLOG_W, BLOG_X, np.zeros((5, 3)))
    assert diagnosed(v) == {"shape"}
    assert "(5, 15)" in v.diagnosis[0].detail and "dh/dx" in v.diagnosis[0].detail
    v = smjac.verify(BLOG_W, np.stack([BLOG_X] * 2), np.zeros((10, 30)))
    assert "block-diagonal" in v.diagnosis[0].detail


@pytest.mark.parametrize(
    "mistake",
    [
        "diagonal-only",
        "sign",
        "scale",
        "zero-update",
        "missing-one-hot",
        "temperature",
        "log-softmax-confusion",
    ],
)
def test_transposed_combines_with_each(rng, mistake):
    c = Case(rng, n=3, K=4, T=2.0 if mistake == "temperature" else 1.0)
    p, x, y = c.P[0], c.X[0], c.Y[0]
    kw: dict = {}
    if mistake == "diagonal-only":
        wrong = kron_rows(np.diag(p * (1 - p)), x)
    elif mistake == "sign":
        wrong = -kron_rows(full_A(p), x)
    elif mistake == "scale":
        wrong = 0.5 * kron_rows(full_A(p), x)
    elif mistake == "temperature":
        wrong = kron_rows(full_A(p), x)
    elif mistake == "log-softmax-confusion":
        wrong, kw = kron_rows(full_A(p), x), dict(function="log-softmax")
    elif mistake == "zero-update":
        wrong, kw = np.zeros((c.n, c.K)), dict(kind="grad", target=c.target())
    else:
        wrong, kw = np.outer(x, p), dict(kind="grad", target=c.target())
    check(c, wrong.T, {"transposed", mistake}, **kw)
    assert mistake != "missing-one-hot" or np.outer(x, p - y).shape == (3, 4)


# ------------------------------------------------------------- right answers pass


def test_the_post_s_loops_are_accepted():
    p = post_softmax(BLOG_W.T @ BLOG_X)
    v = smjac.verify(BLOG_W, BLOG_X, post_l_dir_shortcut(BLOG_W, p, BLOG_X).T)
    assert v.ok and v.diagnosis == () and v.outside == 0, v
    assert "agrees" in str(v)


def test_finite_differences_are_accepted(rng):
    c = Case(rng, bias=True, layout="out-in")

    def h_of(flat):  # flat weights in i·n + j order, i.e. the out-in W flattened
        return sm(c.X[0] @ flat.reshape(c.K, c.n).T + c.b)

    fd = central_diff(h_of, c.Wio.T.reshape(-1))
    v = smjac.verify(c.Wio.T, c.X[0], fd, b=c.b, layout="out-in")
    assert v.ok, v
    g = central_diff(lambda w: -np.log(h_of(w)[c.targets[:1]]), c.Wio.T.reshape(-1)).reshape(c.K, c.n)
    assert smjac.verify(c.Wio.T, c.X[0], g, kind="grad", target=c.targets[0], b=c.b, layout="out-in").ok


def test_a_float32_answer_gets_float32_tolerances(rng):
    c = Case(rng, n=20, K=30)
    W32, x32 = c.Wio.astype(np.float32), c.X[0].astype(np.float32)
    z = x32 @ W32
    e = np.exp(z - z.max())
    p = e / e.sum()
    J32 = np.kron(np.diag(p) - np.outer(p, p), x32[None, :])
    assert J32.dtype == np.float32
    v = smjac.verify(c.Wio, c.X[0], J32)
    assert v.ok, v
    assert v.rtol == pytest.approx(100 * np.finfo(np.float32).eps)
    strict = smjac.verify(c.Wio, c.X[0], J32, rtol=1e-12, atol=0)
    assert not strict.ok and strict.diagnosis == ()  # rounding is no known mistake


def test_noise_matches_no_mistake(rng):
    c = Case(rng)
    J = kron_rows(full_A(c.P[0]), c.X[0])
    v = smjac.verify(c.Wio, c.X[0], J + rng.normal(size=J.shape) * 0.01)
    assert not v.ok and v.diagnosis == ()
    assert "no known mistake" in str(v) and v.outside > 0
    assert sum(v.where["by_output"]) == v.outside


def test_zero_answer_when_the_truth_is_zero_is_right():
    # an upstream gradient constant over the classes: dL/dW really is 0
    v = smjac.verify(BLOG_W, BLOG_X, np.zeros((3, 5)), kind="grad", upstream=np.ones(5))
    assert v.ok and v.diagnosis == () and v.max_rel == 0.0


def test_unusable_calls_raise():
    with pytest.raises(smjac.InputError, match="kind"):
        smjac.verify(BLOG_W, BLOG_X, np.zeros((5, 15)), kind="hessian")
    with pytest.raises(smjac.InputError, match="wrt"):
        smjac.verify(BLOG_W, BLOG_X, np.zeros((5, 15)), wrt="y")
    with pytest.raises(smjac.InputError, match="target"):
        smjac.verify(BLOG_W, BLOG_X, np.zeros((3, 5)), kind="grad")


def test_report_reads_well_and_has_an_ascii_form():
    p = post_softmax(BLOG_W.T @ BLOG_X)
    J = post_l_dir_shortcut(BLOG_W, p, BLOG_X).T
    J[2, 1 * 3 + 0] += 0.5  # ∂h₂/∂w[1,0], stored at W[0,1]
    v = smjac.verify(BLOG_W, BLOG_X, J)
    text = str(v)
    assert "∂h₂/∂w[1,0] (stored at W[0,1]; answer[2, 3])" in text
    assert "outside the tolerance: 1 of 75 entries" in text
    assert "no known mistake" in text
    assert v.report(ascii=True).isascii() and "dh_2/dw[1,0]" in v.report(ascii=True)
    assert v.errors is not None and v.errors.shape == (5, 15) and v.errors[2, 3] == pytest.approx(0.5)
    assert set(v.to_dict()) == {"schema", "ok", "kind", "error", "outside", "worst", "diagnosis", "notes"}
    assert v.to_dict()["schema"] == 1


# ------------------------------------------------------------- hypothesis


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 5),
    K=st.integers(2, 5),
    N=st.sampled_from([None, 2]),
    layout=st.sampled_from(["in-out", "out-in"]),
    seed=st.integers(0, 2**31),
    data=st.data(),
)
def test_true_answers_pass_and_one_perturbed_entry_is_found(n, K, N, layout, seed, data):
    rng = np.random.default_rng(seed)
    c = Case(rng, n=n, K=K, N=N, layout=layout)
    J = c.per_sample(lambda s: kron_rows(full_A(c.P[s]), c.X[s]))
    (W, x), kw = c.kw()
    assert smjac.verify(W, x, J, **kw).ok
    s = data.draw(st.integers(0, (N or 1) - 1))
    t, i, j = (
        data.draw(st.integers(0, K - 1)),
        data.draw(st.integers(0, K - 1)),
        data.draw(st.integers(0, n - 1)),
    )
    wrong = J.copy()
    index = (s, t, i * n + j) if N else (t, i * n + j)
    wrong[index] += 0.1 + abs(wrong).max()
    v = smjac.verify(W, x, wrong, **kw)
    assert not v.ok and v.outside == 1
    top = v.worst[0]
    assert (
        top.index == index
        and top.name == f"∂h{str(t).translate(str.maketrans('0123456789', '₀₁₂₃₄₅₆₇₈₉'))}/∂w[{i},{j}]"
    )
    assert top.stored == (f"W[{j},{i}]" if layout == "in-out" else f"W[{i},{j}]")
    assert top.sample == (s if N else None)


# ------------------------------------------------------------- the samples


def _sample_call(args):
    """The API call for the CLI options listed in samples/mistakes/index.json."""
    kw: dict = {}
    it = iter(args)
    W = x = answer = None
    for flag in it:
        value = next(it)
        path = ROOT / value
        if flag == "-W":
            W = inputs.load_array(path)
        elif flag == "-x":
            x = inputs.load_array(path)
        elif flag in ("--jacobian", "--grad", "--grad-b"):
            kw["kind"] = flag[2:].replace("-", "_")
            answer = npy.open_npy(path) if value.endswith(".npy") else inputs.load_array(path)
        elif flag == "--target":
            kw["target"] = inputs.load_array(path).astype(int) if value.endswith(".csv") else int(value)
        elif flag == "--upstream":
            kw["upstream"] = inputs.load_array(path)
        elif flag in ("--temperature", "--label-smoothing"):
            kw[flag[2:].replace("-", "_")] = float(value)
        elif flag == "--class-weights":
            kw["class_weights"] = inputs.load_array(path)
        elif flag == "--ignore-index":
            kw["ignore_index"] = int(value)
        else:
            kw[flag[2:]] = value
    return W, x, answer, kw


INDEX = json.loads((ROOT / "samples/mistakes/index.json").read_text())


@pytest.mark.parametrize("name", sorted(INDEX))
def test_each_sample_is_diagnosed_as_its_name_says(name):
    W, x, answer, kw = _sample_call(INDEX[name]["args"])
    v = smjac.verify(W, x, answer, **kw)
    assert not v.ok and [d.mistake for d in v.diagnosis] == INDEX[name]["mistakes"], v


def test_every_mistake_has_a_sample():
    assert {m for e in INDEX.values() for m in e["mistakes"]} == set(smjac.MISTAKES)
    alone = {e["mistakes"][0] for e in INDEX.values() if len(e["mistakes"]) == 1}
    assert alone >= set(smjac.MISTAKES) - {"identity-backward"}  # its sample has a second reading, said
    extra = {"make.py", "README.md", "index.json", "upstream-half-mse.json", "upstream-weighted-nll.json"}
    assert {p.name for p in (ROOT / "samples/mistakes").iterdir() if p.is_file()} == set(INDEX) | extra


# ------------------------------------------------------------- a large answer in flat memory

BIG = textwrap.dedent(
    """
    import resource, sys, os
    import numpy as np
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import smjac
    from smjac.formats import npy

    W, x = np.load(sys.argv[3]), np.load(sys.argv[4])
    L = smjac.make_layer(W, x)
    answer = npy.open_npy(sys.argv[1])
    v = smjac.layer_verify(L, answer)
    print(v.ok, v.outside, v.worst[0].name if v.worst else "", v.errors is None)
    del answer
    with open(sys.argv[1], "r+b") as f:  # one entry wrong: ∂h₁/∂w[2,3] at column 2·n + 3
        offset = int(sys.argv[5])
        f.seek(offset + (1 * W.shape[1] * W.shape[0] + 2 * W.shape[0] + 3) * 8)
        f.write(np.float64(1.0).tobytes())
    v = smjac.layer_verify(L, npy.open_npy(sys.argv[1]))
    print(v.ok, v.outside, v.worst[0].name, v.diagnosis)
    """
)


def test_a_gigabyte_answer_is_verified_in_flat_memory(tmp_path, rng):
    n, K = 1500, 300  # dh/dW is 300 × 450 000: 1.08 GB of float64
    W, x = rng.normal(size=(n, K)) / 30, rng.normal(size=n)
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "x.npy", x)
    p = sm(x @ W)
    A = full_A(p)
    path = tmp_path / "J.npy"
    from numpy.lib import format as npformat

    with open(path, "wb") as f:  # streamed, one row of the answer at a time
        npformat.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (K, K * n)})
        offset = f.tell()
        for t in range(K):
            f.write(np.outer(A[t], x).tobytes())
    size = path.stat().st_size
    assert size > 2**30
    # the answer is mapped (its size counts in the address space) and everything else must fit
    # in 600 MB more: less than one copy of the answer or of the truth
    limit = size + 600 * 2**20
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            BIG,
            str(path),
            str(limit),
            str(tmp_path / "W.npy"),
            str(tmp_path / "x.npy"),
            str(offset),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "PATH": ""},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.splitlines()
    assert first == "True 0  True"  # no error matrix kept past 4M entries
    assert second.startswith("False 1 ∂h₁/∂w[2,3] ()")


def test_open_npy_refuses_pickles_and_keeps_the_dtype(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(smjac.LoadError, match="pickle"):
        npy.open_npy(tmp_path / "obj.npy")
    np.save(tmp_path / "f32.npy", np.ones((2, 3), dtype=np.float32))
    m = npy.open_npy(tmp_path / "f32.npy")
    assert m.dtype == np.float32 and m.shape == (2, 3) and not m.flags.writeable
    Path(tmp_path / "short.npy").write_bytes((tmp_path / "f32.npy").read_bytes()[:-4])
    with pytest.raises(smjac.LoadError, match="truncated"):
        npy.open_npy(tmp_path / "short.npy")


# ------------------------------------------------------------- NaN in a text answer


def _naive_gradient(W, x, t):
    """The gradient as a person writes it first: exp without the max shift, which overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(W.T @ x)
        p = e / e.sum()
    p[t] -= 1
    return np.outer(x, p)


@pytest.mark.parametrize("fmt", ["json", "csv", "stdin"])
def test_a_nan_in_a_json_or_csv_answer_is_diagnosed_not_refused(tmp_path, fmt):
    """json.dump writes NaN and Infinity, np.savetxt writes nan and inf: such an answer is what
    verify is for, so it gets the non-finite diagnosis (exit 1), as a .npy does, not a refusal."""
    from typer.testing import CliRunner

    from smjac.cli import app

    W = np.array([[300.0, -2.0, 1.0], [1.0, 0.5, 250.0]])
    x = np.array([3.0, 1.0])
    wrong = _naive_gradient(W, x, 1)
    assert not np.all(np.isfinite(wrong))  # the mistake really happened
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "x.npy", x)
    answer = tmp_path / ("answer.csv" if fmt == "csv" else "answer.json")
    if fmt == "csv":
        np.savetxt(answer, wrong, delimiter=",")
    else:
        answer.write_text(json.dumps(wrong.tolist()))
    text = answer.read_text()
    assert "nan" in text.lower()
    source, stdin = ("-", text) if fmt == "stdin" else (str(answer), None)
    layer = ["-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy")]
    args = ["verify", *layer, "--grad", source, "--target", "1", "--format", "json"]
    result = CliRunner().invoke(app, args, input=stdin, env={"NO_COLOR": "1"})
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [d["mistake"] for d in report["diagnosis"]] == ["non-finite"]
    assert "NaN" in report["diagnosis"][0]["detail"]


def test_a_csv_answer_whose_first_line_is_all_nan_is_not_taken_for_a_header(tmp_path):
    """np.savetxt of an answer that overflowed in its first row writes only nan and inf there."""
    W, x = BLOG_W, BLOG_X
    wrong = np.full((3, 5), np.nan)
    wrong[1:] = 0.1
    wrong[0, 1] = np.inf
    np.savetxt(tmp_path / "answer.csv", wrong, delimiter=",")
    answer = inputs.load_answer(tmp_path / "answer.csv")
    assert np.array_equal(np.isnan(answer), np.isnan(wrong)) and answer[0, 1] == np.inf
    v = smjac.verify(W, x, answer, kind="grad", target=2)
    assert diagnosed(v) == {"non-finite"}, v
    (tmp_path / "W.csv").write_text("nan,nan\n1,2\n")  # an input: still a header-like line, refused
    with pytest.raises(smjac.LoadError, match="header"):
        inputs.load_array(tmp_path / "W.csv")


def test_inputs_still_refuse_nan(tmp_path):
    """Only the answer may hold NaN: W, x and b stay strict."""
    (tmp_path / "W.json").write_text("[[NaN, 1.0], [0.5, 2.0]]")
    with pytest.raises(smjac.LoadError, match="NaN is not allowed"):
        inputs.load_array(tmp_path / "W.json")
    (tmp_path / "W.csv").write_text("nan,1\n0.5,2\n")
    with pytest.raises(smjac.LoadError, match="not a finite number"):
        inputs.load_array(tmp_path / "W.csv")
    assert np.isnan(inputs.load_answer(tmp_path / "W.csv")[0, 0])


def test_messages_name_parameters_not_flags(rng):
    # the library speaks of reduce="mean" and temperature=…; only the command line spells --reduce
    W, X, y = rng.normal(size=(3, 4)), rng.normal(size=(2, 3)), np.array([1, 3])
    right = smjac.grad(W, X, target=y, reduce="mean").W
    v = smjac.verify(W, X, grad=2 * right, target=y)
    assert v.diagnosis[0].mistake == "batch-reduction"
    assert 'reduce="mean"' in v.diagnosis[0].detail and 'reduce="sum"' in v.diagnosis[0].fix
    with pytest.raises(smjac.InputError, match=r"at temperature=1e-320: ") as e:
        smjac.check(W, X, temperature=1e-320)
    assert "--" not in str(e.value)
    texts = [t for m in smjac.MISTAKES.values() for t in (m.what, m.fix)] + [str(v)]
    assert not [t for t in texts if "--" in t]


# ---------------------------------------------------------------- the memory budget (issue 19)


def _peak(f):
    import tracemalloc

    tracemalloc.start()
    try:
        result = f()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "case",
    [
        "dh/dz diagonal only",
        "dh/dz transposed, log-softmax",
        "dh/dW column order, batch",
        "dh/db softmax twice",
        "dh/dx doubled, batch",
    ],
)
def test_verify_keeps_the_memory_budget(rng, case):
    # K = 600: the truth and each mistaken dh/dz of the catalogue were held whole, K×K each (52 MiB
    # at the peak for one sample); within max_memory they are made a block of rows at a time
    K = 600
    if case == "dh/dz diagonal only":
        L = smjac.make_layer(rng.normal(size=(3, K)), rng.normal(size=3))
        h = smjac.forward(L.W, L.X[0]).h
        answer, wrt, expect = np.diag(h * (1 - h)), "z", ["diagonal-only"]
    elif case == "dh/dz transposed, log-softmax":
        L = smjac.make_layer(rng.normal(size=(3, K)), rng.normal(size=3), function="log-softmax")
        p = smjac.forward(L.W, L.X[0]).h
        answer, wrt, expect = (np.eye(K) - p[None, :]).T, "z", ["transposed"]  # I − 1pᵀ, by hand
    elif case == "dh/dW column order, batch":
        L = smjac.make_layer(rng.normal(size=(2, 300)), rng.normal(size=(2, 2)))
        J = smjac.jacobian(L.W, L.X)  # N × K × K·n, w[i,j] at i·n + j
        answer, wrt, expect = (
            J.reshape(2, 300, 300, 2).swapaxes(2, 3).reshape(2, 300, 600),
            "W",
            ["column-order"],
        )
    elif case == "dh/dx doubled, batch":  # dh/dx itself is K×n a sample; its K×K dh/dz was not
        L = smjac.make_layer(rng.normal(size=(50, K)), rng.normal(size=(2, 50)))
        H = smjac.forward(L.W, L.X).h
        J = H[:, :, None] * (L.W.T[None] - (H @ L.W.T)[:, None, :])  # p_t (W[j,t] − Σ_i p_i W[j,i])
        answer, wrt, expect = 2 * J, "x", ["scale"]
    else:
        L = smjac.make_layer(rng.normal(size=(3, K)), rng.normal(size=3))
        h = smjac.forward(L.W, L.X[0]).h
        q = np.exp(h) / np.exp(h).sum()
        Jq, Jh = np.diag(q) - np.outer(q, q), np.diag(h) - np.outer(h, h)
        answer, wrt, expect = Jq @ Jh, "b", ["softmax-twice"]
    budget = 4 * 2**20
    v, peak = _peak(lambda: smjac.layer_verify(L, answer, wrt=wrt, max_memory=budget))
    assert [d.mistake for d in v.diagnosis] == expect
    assert peak < budget, f"{peak / 2**20:.1f} MiB"
    whole = smjac.layer_verify(L, answer, wrt=wrt)  # the same verdict as without a budget
    assert (v.ok, v.outside, v.max_abs, v.scale) == (whole.ok, whole.outside, whole.max_abs, whole.scale)
    assert [d.detail for d in v.diagnosis] == [d.detail for d in whole.diagnosis]


def test_verify_refuses_what_cannot_fit_before_any_work(rng):
    # dh/dx is compared against smjac's own closed form, held whole (K×n a sample): past the budget
    # that is refused with the figure, not found out by running out of memory
    L = smjac.make_layer(rng.normal(size=(500, 600)), rng.normal(size=(2, 500)))
    answer = np.zeros((2, 600, 500))
    with pytest.raises(
        smjac.InputError,
        match=r"verify of dh/dx .* would take [0-9.]+ MiB, over the memory budget of 1.0 MiB",
    ):
        smjac.layer_verify(L, answer, wrt="x", max_memory=2**20)
    assert not smjac.layer_verify(L, answer, wrt="x", max_memory=2**30).ok


# ------------------------------------------------------------- which weight is where, by layout


@pytest.mark.parametrize("layout", ["in-out", "out-in"])
def test_a_weight_s_name_and_where_w_holds_it_follow_the_forward_pass(layout):
    # w[i,j] joins input j to output i: moving the entry of W it names moves z_i by x_j alone
    from smjac.checking.problem import weight_at
    from smjac.notation import weight_label

    rng = np.random.default_rng(3)
    n, K = 3, 4
    W = rng.normal(size=(n, K) if layout == "in-out" else (K, n))
    L = smjac.make_layer(W, np.ones(n), layout=layout)
    for i in range(K):
        for j in range(n):
            name, stored = weight_label(i, j, layout)
            r, c = (int(d) for d in stored[2:-1].split(","))
            assert name == f"w[{i},{j}]" and stored == f"W[{r},{c}]"
            x = np.eye(n)[j] * 2.0
            moved = W.copy()
            moved[r, c] += 0.5
            dz = smjac.forward(moved, x, layout=layout).z - smjac.forward(W, x, layout=layout).z
            np.testing.assert_allclose(dz, np.eye(K)[i], atol=1e-12)
            assert tuple(int(k) for k in weight_at(L, r, c)) == (i, j)


@pytest.mark.parametrize("layout", ["in-out", "out-in"])
def test_a_wrong_gradient_entry_is_named_and_counted_in_w_s_own_layout(layout):
    # dL/dW by hand (x δᵀ in-out, its transpose out-in), one entry of it spoiled at W[r, c]
    rng = np.random.default_rng(11)
    n, K, N = 3, 5, 4
    Wio, X, y = rng.normal(size=(n, K)), rng.normal(size=(N, n)), np.array([0, 3, 1, 4])
    Z = X @ Wio
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    G = X.T @ (P - np.eye(K)[y]) / N
    W, G = (Wio, G) if layout == "in-out" else (Wio.T, G.T)
    r, c = (2, 1) if layout == "in-out" else (1, 2)  # both w[1,2]: input 2 to output 1
    wrong = G.copy()
    wrong[r, c] += 1.0
    v = smjac.verify(W, X, grad=wrong, target=y, layout=layout)
    assert not v.ok and v.outside == 1
    assert (v.worst[0].name, v.worst[0].stored, v.worst[0].index) == ("∂L/∂w[1,2]", f"W[{r},{c}]", (r, c))
    assert v.where["by_output"] == [0, 1, 0, 0, 0]
    assert v.where["by_W_row"] == np.eye(W.shape[0], dtype=int)[r].tolist()
    assert v.where["by_W_column"] == np.eye(W.shape[1], dtype=int)[c].tolist()
    J = smjac.jacobian(W, X, wrt="W", layout=layout)
    J[2, 0, 1 * n + 2] += 1.0  # ∂h₀/∂w[1,2] of sample 2: counted at w[1,2]'s entry of W
    v = smjac.verify(W, X, J, layout=layout)
    assert v.where["by_W_row"] == np.eye(W.shape[0], dtype=int)[r].tolist()
    assert v.where["by_W_column"] == np.eye(W.shape[1], dtype=int)[c].tolist()
    assert v.worst[0].stored == f"W[{r},{c}]"


def test_a_float16_answer_is_allowed_its_rounding_and_no_more(tmp_path):
    # at float16's own defaults (rtol 0.098, atol 0.0098) an answer 9% off passed, from a .npy
    # file; in Python a right float16 answer was upcast and then failed at float32's tolerance
    from typer.testing import CliRunner

    from smjac.cli import app

    W = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 0.1], [0.11, 0.12, 0.13, 0.14, 0.15]])
    x = np.array([0.1, 0.5, 0.4])
    J = smjac.jacobian(W, x)
    cases = {"right": (J, True), "1% off": (J * 1.01, False), "9% off": (J * 1.09, False)}
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "x.npy", x)
    for name, (answer, ok) in cases.items():
        half = answer.astype(np.float16)
        assert smjac.verify(W, x, jacobian=half).ok is ok, name
        np.save(tmp_path / "J.npy", half)
        args = ["verify", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "--jacobian"]
        result = CliRunner().invoke(app, [*args, str(tmp_path / "J.npy"), "-f", "json"])
        assert result.exit_code == (0 if ok else 1), (name, result.stderr)
        assert json.loads(result.stdout)["error"]["rtol"] == 4 * float(np.finfo(np.float16).eps)
    g = smjac.grad(W, x, target=2).W
    assert not smjac.verify(W, x, grad=(g * 1.09).astype(np.float16), target=2).ok
    assert smjac.verify(W, x, grad=g.astype(np.float16), target=2).ok


def test_an_answer_held_only_by_atol_says_so(rng):
    # true values under atol/2: −truth (or 0) agrees as well as truth; the verdict says it cannot tell
    W, x = rng.standard_normal((3, 4)), rng.standard_normal(3) * 1e-10
    g = smjac.grad(W, x, target=1).W
    for answer in (g, -g, np.zeros_like(g)):
        v = smjac.verify(W, x, grad=answer, target=1)
        assert v.ok and any("a zero or a sign-flipped answer would agree too" in n for n in v.notes)
    assert not smjac.verify(W, x, grad=-g, target=1, atol=0).ok
    # the largest true value between tol/2 and tol: a zero still agrees, a flipped sign not
    W2, x2 = np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([7e-10, 1.4e-9])
    zero = smjac.verify(W2, x2, grad=np.zeros((2, 2)), target=0)
    assert zero.ok and any("a zero answer would agree too" in n for n in zero.notes)
    big = smjac.verify(W, x * 1e10, grad=smjac.grad(W, x * 1e10, target=1).W, target=1)
    assert big.ok and not any("sign-flipped" in n for n in big.notes)
