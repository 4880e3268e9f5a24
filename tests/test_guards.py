"""Issue 11, the library half: never a non-finite number, never past a budget, never a traceback.

Each table row is one bad-input class: what is called, and either "finite" (the true result is
finite and smjac computes it) or the error type and the gist of its message. Every call runs with
numpy's warnings turned into errors, so a RuntimeWarning that would reach stderr fails the test.
Memory cases run in a subprocess under ``RLIMIT_AS``, so a regression fails fast instead of swapping.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smjac
from smjac import inputs, maths
from smjac.checking import checks
from smjac.errors import InputError, LoadError, SmjacError
from smjac.formats import table
from smjac.maths import _parallel

ROOT = Path(__file__).resolve().parents[1]
BLOG_W = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 0.1], [0.11, 0.12, 0.13, 0.14, 0.15]])
BLOG_X = np.array([0.1, 0.5, 0.4])
F32 = np.float32


@dataclass
class Extreme:
    id: str
    call: Callable[[], Any]
    error: type[Exception] | None = None  # None: the result is finite
    gist: str = ""


def arrays_of(result: Any) -> list[np.ndarray]:
    if isinstance(result, smjac.Gradient):
        return [result.W, result.b, result.z, result.x] + (
            [] if result.loss is None else [np.array(result.loss)]
        )
    if isinstance(result, tuple):
        return [np.asarray(a) for a in result]
    if isinstance(result, checks.CheckReport):
        return [np.array([c.max_error for c in result.checks])]
    return [np.asarray(result)]


def j(**kw: Any) -> Callable[[], Any]:
    W, x = kw.pop("W", BLOG_W), kw.pop("x", BLOG_X)
    return lambda: smjac.jacobian(W, x, **kw)


def fwd(**kw: Any) -> Callable[[], Any]:
    W, x = kw.pop("W", BLOG_W), kw.pop("x", BLOG_X)
    return lambda: tuple(smjac.forward(W, x, **kw))


def g(**kw: Any) -> Callable[[], Any]:
    W, x = kw.pop("W", BLOG_W), kw.pop("x", BLOG_X)
    return lambda: smjac.grad(W, x, **kw)


def blocks(**kw: Any) -> Callable[[], Any]:
    W, x = kw.pop("W", BLOG_W), kw.pop("x", BLOG_X)
    return lambda: np.concatenate(
        [b.copy() for b in maths.jacobian_blocks(maths.make_layer(W, x, **kw)).rows]
    )


def factors(**kw: Any) -> Callable[[], Any]:
    W, x = kw.pop("W", BLOG_W), kw.pop("x", BLOG_X)
    return lambda: maths.layer_factors(maths.make_layer(W, x, **kw)).A


LOG = {"function": "log-softmax"}
BIG_W = [[1.7e308, -1.7e308]]
BATCH_X = np.full((10, 1), 1.7e308)
EXTREMES = [
    # temperature 1e-320: z/T overflows, but softmax((z − max z)/T) is the one-hot argmax
    Extreme("T=1e-320 forward", fwd(temperature=1e-320)),
    Extreme("T=1e-320 jacobian", j(temperature=1e-320)),
    Extreme("T=1e-320 blocks", blocks(temperature=1e-320)),
    Extreme("T=1e-320 factors", factors(temperature=1e-320)),
    Extreme("T=1e-320 grad, upstream", g(temperature=1e-320, upstream=np.ones(5))),
    Extreme("T=1e-320 grad, target not the argmax", g(temperature=1e-320, target=0), InputError, "overflows"),
    Extreme("T=1e-320 log-softmax forward", fwd(temperature=1e-320, **LOG), InputError, "use T ≥ 2.3e-309"),
    Extreme("T=1e-320 log-softmax jacobian", j(temperature=1e-320, **LOG), InputError, "overflows dh/dz"),
    Extreme("T=1e-320 check", lambda: smjac.check(BLOG_W, BLOG_X, temperature=1e-320), InputError, "use T ≥"),
    Extreme("T=1e-300 check", lambda: smjac.check(BLOG_W, BLOG_X, temperature=1e-300)),
    # x = 0 and T = 1e-310: p is uniform, and p(1 − p)/T is truly past the float range
    Extreme(
        "x=0 T=1e-310 wrt z", j(x=np.zeros(3), temperature=1e-310, wrt="z"), InputError, "use T ≥ 9.3e-310"
    ),
    Extreme("x=0 T=1e-310 blocks", blocks(x=np.zeros(3), temperature=1e-310), InputError, "overflows dh/dz"),
    Extreme(
        "x=0 T=1e-310 entry",
        lambda: maths.layer_entry(maths.make_layer(BLOG_W, np.zeros(3), temperature=1e-310), (0, 0, 0)),
        InputError,
        "overflows dh/dz",
    ),
    # upstream ±1.7e308: g − pᵀg overflows on the way, δ does not
    Extreme("upstream ±1.7e308", g(upstream=[1.7e308, -1.7e308, 0, 0, 0])),
    Extreme("upstream ±1.7e308 log-softmax", g(upstream=[1.7e308, -1.7e308, 0, 0, 0], **LOG)),
    # a batch whose gradient sums past the float range; its mean does not
    Extreme(
        "batch sum overflows",
        g(W=[[1e-308, 0.0]], x=BATCH_X, target=1, reduce="sum"),
        InputError,
        'reduce="mean"',
    ),
    Extreme("batch mean", g(W=[[1e-308, 0.0]], x=BATCH_X, target=1)),
    # dh/dx = p_t (W[j,t] − Σ p_i W[j,i]): the difference overflows, the product with p_t does not
    Extreme("wrt x, W near the limit", j(W=BIG_W, x=[1e-308], wrt="x")),
    Extreme("wrt x, W near the limit, chain", j(W=BIG_W, x=[1e-308], wrt="x", method="chain")),
    Extreme("wrt x, W near the limit, grad", lambda: smjac.grad(BIG_W, [1e-308], target=0).x),
    Extreme(
        "wrt x, log-softmax: truly −3.3e308", j(W=BIG_W, x=[1e-308], wrt="x", **LOG), InputError, "dh/dx"
    ),
    # z = [1e308, 0] and T = 0.1: z/T overflows, p = [1, 0]
    Extreme("W=[[1e308,0]] T=0.1 forward", fwd(W=[[1e308, 0.0]], x=[1.0], temperature=0.1)),
    Extreme("W=[[1e308,0]] T=0.1 jacobian", j(W=[[1e308, 0.0]], x=[1.0], temperature=0.1)),
    Extreme("W=[[1e308,0]] T=0.1 log-softmax jacobian", j(W=[[1e308, 0.0]], x=[1.0], temperature=0.1, **LOG)),
    Extreme(
        "W=[[1e308,0]] T=0.1 log-softmax forward",
        fwd(W=[[1e308, 0.0]], x=[1.0], temperature=0.1, **LOG),
        InputError,
        "use T ≥ 0.56",
    ),
    Extreme("z overflows", fwd(W=[[1e308], [1e308]], x=[1.7, 1.7]), InputError, "z = Wᵀx overflows"),
    Extreme("z's partial sums overflow, z does not", fwd(W=[[1.5e308], [-1.5e308]], x=[1.5, 1.4])),
    # float32
    Extreme("float32 T=1e-40 forward", fwd(W=BLOG_W.astype(F32), x=BLOG_X.astype(F32), temperature=1e-40)),
    Extreme("float32 T=1e-40 jacobian", j(W=BLOG_W.astype(F32), x=BLOG_X.astype(F32), temperature=1e-40)),
    Extreme(
        "float32 T=1e-40 log-softmax",
        fwd(W=BLOG_W.astype(F32), x=BLOG_X.astype(F32), temperature=1e-40, **LOG),
        InputError,
        "overflows log-softmax",
    ),
    Extreme(
        "float32 upstream near its limit",
        g(W=BLOG_W.astype(F32), x=BLOG_X.astype(F32), upstream=np.array([3e38, -3e38, 0, 0, 0], F32)),
    ),
]


@pytest.mark.parametrize("case", EXTREMES, ids=[c.id for c in EXTREMES])
def test_never_a_non_finite_number(case):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would reach stderr
        if case.error is None:
            for a in arrays_of(case.call()):
                assert np.all(np.isfinite(a)), a
        else:
            with pytest.raises(case.error, match=case.gist.replace("(", r"\(").replace("+", r"\+")):
                case.call()


def test_finite_answers_are_the_true_ones():
    h = smjac.forward(BLOG_W, BLOG_X, temperature=1e-320).h
    assert h.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]  # the argmax of z
    dx = smjac.jacobian(BIG_W, [1e-308], wrt="x")  # p_t (W_t − pᵀW) = ±2 p_0 p_1 · 1.7e308
    p = smjac.softmax([1.7, -1.7])
    np.testing.assert_allclose(dx[:, 0], [p[0] * p[1] * 1.7e308 * 2, -p[0] * p[1] * 1.7e308 * 2], rtol=1e-12)
    up = smjac.grad(BLOG_W, BLOG_X, upstream=[1.7e308, -1.7e308, 0, 0, 0])
    small = smjac.grad(BLOG_W, BLOG_X, upstream=[1.7, -1.7, 0, 0, 0])
    np.testing.assert_allclose(up.z, small.z * 1e308, rtol=1e-12)


def test_a_float32_cast_that_overflows_says_so(tmp_path):
    (tmp_path / "W.json").write_text("[[1e39, 1.0]]")
    (tmp_path / "x.json").write_text("[1.0]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LoadError, match=r"W.json: 1e\+39 overflows float32 when cast for dtype=float32"):
            inputs.load_layer(tmp_path / "W.json", tmp_path / "x.json", dtype="float32")


# ---------------------------------------------------------------- one entry, blocks, estimates


@pytest.mark.parametrize(
    ("n", "K", "N", "dtype"),
    [(4, 6, 3, "float64"), (30, 20, 40, "float32"), (256, 20, 900, "float64")],  # the last: several spans
)
def test_layer_entry_is_the_jacobian_s_entry_to_the_bit(rng, n, K, N, dtype):
    # a batch's sample is computed beside the others of its span: its entry must be that float,
    # not the one the sample gives alone (they differ in the last bits for most entries)
    W, X, b = (rng.normal(size=s).astype(dtype) for s in ((n, K), (N, n), K))
    assert len(_parallel.sweep_spans(N, n, K, W.itemsize)) == (3 if N == 900 else 1)
    for of in ("h", "z"):
        for kw in ({}, {"function": "log-softmax", "temperature": 0.7}):
            L = maths.make_layer(3 * W, X, b, **kw)
            for wrt in ("W", "x", "z", "b"):
                J = maths.layer_jacobian(L, of=of, wrt=wrt)
                for s in (0, N // 2, N - 1):
                    for t, c in zip(rng.integers(K, size=8), rng.integers(J.shape[2], size=8), strict=True):
                        index = (t, c // n, c % n) if wrt == "W" else (t, c)
                        assert maths.layer_entry(L, index, of=of, wrt=wrt, sample=s) == J[s, t, c]


def test_an_entry_by_the_chain_rule_is_the_chain_s_float_or_refused(rng):
    L = maths.make_layer(rng.normal(size=(30, 20)) * 3, rng.normal(size=(5, 30)))
    for of in ("h", "z"):
        for wrt in ("W", "x", "z", "b"):
            J = maths.layer_jacobian(L, of=of, wrt=wrt, method="chain")
            index = (3, 4, 5) if wrt == "W" else (3, 4)
            column = 4 * 30 + 5 if wrt == "W" else 4
            if (of, wrt) == ("h", "x"):  # a product made whole: its entries are not the closed form's
                assert (maths.layer_jacobian(L, wrt="x") != J).any()
                with pytest.raises(InputError, match=r'^dh/dx by method="chain" is made whole'):
                    maths.layer_entry(L, index, of=of, wrt=wrt, method="chain", sample=2)
            else:
                assert (
                    maths.layer_entry(L, index, of=of, wrt=wrt, method="chain", sample=2) == J[2, 3, column]
                )


@pytest.mark.parametrize(
    ("index", "wrt", "gist"),
    [
        ((0, 0), "W", 'wrt="W" takes T,I,J'),
        ((0, 0, 0), "x", 'wrt="x" takes T,K'),
        ((5, 0, 0), "W", "t = 5 is out of range: 0 ≤ t ≤ 4"),
        ((0, 9, 2), "W", "i = 9 is out of range"),
        ((0, 0, 3), "W", "j = 3 is out of range: 0 ≤ j ≤ 2"),
        ((0, 3), "x", "K = 3 is out of range: 0 ≤ K ≤ 2"),
        ((0, -1), "z", "K = -1 is out of range"),
    ],
)
def test_layer_entry_names_a_bad_index(index, wrt, gist):
    with pytest.raises(InputError, match=gist):
        maths.layer_entry(maths.make_layer(BLOG_W, BLOG_X), index, wrt=wrt)


@pytest.mark.parametrize("of", ["h", "z"])
@pytest.mark.parametrize("wrt", ["z", "b", "x", "W"])
def test_blocks_of_a_batch_are_the_whole(rng, of, wrt):
    L = maths.make_layer(rng.normal(size=(5, 9)), rng.normal(size=(4, 5)), function="log-softmax")
    whole = maths.layer_jacobian(L, of=of, wrt=wrt)
    B = maths.jacobian_blocks(L, of=of, wrt=wrt, block_bytes=3 * 45 * 8)
    pieces = [b.copy() for b in B.rows]
    np.testing.assert_array_equal(np.concatenate(pieces).reshape(whole.shape), whole)
    assert max(len(p) for p in pieces) <= (3 if wrt == "W" else 9)  # never more than a sample


def test_factor_blocks_are_the_factor(rng):
    L = maths.make_layer(rng.normal(size=(3, 7)), rng.normal(size=(2, 3)))
    A = np.concatenate([b.copy() for b in maths.jacobian_blocks(L, wrt="z", block_bytes=2 * 7 * 8).rows])
    np.testing.assert_array_equal(A.reshape(2, 7, 7), maths.layer_factors(L).A)


@pytest.mark.parametrize(
    "what", ["forward", "jacobian", "factored", "streamed", "entry", "grad", "check", "legend"]
)
def test_every_path_has_an_estimate(rng, what):
    L = maths.make_layer(rng.normal(size=(30, 40)), rng.normal(size=(2, 30)))
    small = maths.estimate_bytes(L, what)
    assert small > 0
    assert maths.estimate_bytes(L, what, text=True) >= small


def test_estimates_scale_as_the_path_does():
    L = maths.make_layer(np.ones((1, 20000)), [1.0])
    assert maths.estimate_bytes(L, "entry") < 2**20  # O(K + n)
    assert maths.estimate_bytes(L, "jacobian") > 3 * 2**30  # K²n: 3.2 GB
    assert maths.estimate_bytes(L, "streamed") < 100 * 2**20  # flat
    assert maths.estimate_bytes(L, "legend") > 100 * 2**20  # 20,000 rows of text


@pytest.mark.parametrize("wrt", ["W", "x"])
def test_a_batch_s_entry_is_estimated_at_its_measured_peak(rng, wrt):
    import tracemalloc

    L = maths.make_layer(rng.normal(size=(200, 300)), rng.normal(size=(2000, 200)))
    tracemalloc.start()
    try:
        maths.layer_entry(L, (1, 2, 3) if wrt == "W" else (1, 2), wrt=wrt, sample=1500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak > 2000 * 300 * 8  # the batch's p, at least
    assert peak <= maths.estimate_bytes(L, "entry", wrt=wrt)


def test_check_plan_refuses_past_its_limits():
    L = maths.make_layer(np.ones((1, 10000)), [1.0])
    # the library names its parameters; the command line spells them as flags
    with pytest.raises(InputError, match=r"over max_weights=5000: .*probes=N .*raise max_weights") as e:
        checks.check_plan(L, max_weights=5000)
    assert "--" not in str(e.value)
    with pytest.raises(InputError, match=r"over the memory budget .*\(max_memory\).*probes=N") as e:
        checks.check_plan(L, max_memory=2**28)
    assert "--" not in str(e.value)
    with pytest.raises(InputError, match="over the memory budget"):
        checks.layer_check(L, max_memory=2**28)  # refused before any work
    plan = checks.check_plan(L, probes=100)
    assert plan.weights == 100 and plan.passes == checks.forward_passes(L, 100)


@pytest.mark.parametrize(
    ("call", "gist"),
    [
        (lambda L: smjac.layer_check(L, seed=-1), "seed must be a whole number, at least 0, not -1"),
        (lambda L: smjac.layer_check(L, seed=1.5), "seed must be a whole number, at least 0, not 1.5"),
        (
            lambda L: smjac.layer_check(L, max_memory=0),
            "max_memory must be a whole number of bytes, at least 1, not 0",
        ),
        (lambda L: smjac.layer_verify(L, np.eye(3), wrt="z", max_memory=-1), "max_memory must be .* not -1"),
        (
            lambda L: smjac.layer_verify(L, np.eye(3), wrt="z", max_memory=True),
            "max_memory must be .* not True",
        ),
        (
            lambda L: smjac.make_layer(np.eye(3), np.ones(3), names=("W",)),
            r"names must be three labels.*\('W',\)",
        ),
        (lambda L: smjac.make_layer(np.eye(3), np.ones(3), names="Wxb"), "names must be three labels"),
        (
            lambda L: smjac.make_layer(np.eye(3), np.ones(3), names=None),
            "names must be three labels.*not None",
        ),
        (lambda L: smjac.make_layer(np.eye(3), np.ones(3), names=3), "names must be three labels.*not 3"),
        # a label is what a message calls the array: an empty one leaves "  has shape (3, 3) but ..."
        (
            lambda L: smjac.make_layer(np.eye(3), np.ones(3), names=["", "", ""]),
            r"names must be three labels.*not \['', '', ''\]",
        ),
        (lambda L: smjac.make_layer(np.eye(3), np.ones(3), names=("W", " ", "b")), "names must be three"),
        # a block or chunk of no bytes was taken as one row at a time, silently
        (
            lambda L: smjac.layer_verify(L, np.eye(3), wrt="z", block_bytes=0),
            "block_bytes must be a whole number of bytes, at least 1, not 0",
        ),
        (
            lambda L: smjac.layer_verify(L, np.eye(3), wrt="z", block_bytes=-5),
            "block_bytes must be .* not -5",
        ),
        (lambda L: smjac.jacobian_blocks(L, block_bytes=0.5), "block_bytes must be .* not 0.5"),
        (lambda L: list(smjac.forward_chunks(np.eye(3), np.ones((2, 3)), chunk_bytes=0)), "chunk_bytes must"),
        (
            lambda L: smjac.grad_chunks(np.eye(3), np.ones((2, 3)), target=0, chunk_bytes="64"),
            "chunk_bytes must be a whole number of bytes, at least 1, not '64'",
        ),
    ],
)
def test_a_parameter_out_of_its_range_is_named(call, gist):
    # each was a plain ValueError from deep inside numpy, or (max_memory=-1) a refusal that read
    # "over the memory budget of -1 bytes", as if the layer were too large
    with pytest.raises(InputError, match=gist):
        call(maths.make_layer(np.eye(3), np.ones(3)))


def test_a_weight_probe_is_not_a_forward_pass(rng, monkeypatch):
    # 1 × 2000: 2000 weights, each probed without a pass over W (the forward pass is not called)
    calls = []
    real = checks.forward_arrays

    def counting(L):
        calls.append(L.K * L.n)
        return real(L)

    monkeypatch.setattr(checks, "forward_arrays", counting)
    report = checks.check(rng.normal(size=(1, 600)), [0.8])
    assert report.ok
    assert len(calls) <= 2 * 4 + 2  # the sample itself and the 4·n probes of x, none per weight


# ---------------------------------------------------------------- memory, under a hard limit


def run_limited(code: str, limit: int = 1536 * 2**20, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter whose address space is capped at ``limit`` bytes."""
    prelude = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        """
    )
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT)),
    }
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


MEMORY_CASES = {
    "entry of a 1×20000 W (was 3.1 GB)": """
        import numpy as np
        from smjac import maths
        L = maths.make_layer(np.linspace(-1, 1, 20000)[None, :], [1.0])
        v = maths.layer_entry(L, (0, 0, 0))
        assert np.isfinite(v)
        print("ok")
    """,
    "streaming K = 30000 (was 7.2 GB of dh/dz)": """
        import numpy as np
        from smjac import maths
        L = maths.make_layer(np.linspace(-1, 1, 30000)[None, :], [1.0])
        rows = maths.jacobian_blocks(L).rows
        for _ in range(3):
            assert np.all(np.isfinite(next(rows)))
        factor = maths.jacobian_blocks(L, wrt="z").rows
        next(factor)
        print("ok")
    """,
    "streaming a batch, N = 400, K = 1000 (was 3.3 GB)": """
        import numpy as np
        from smjac import maths
        rng = np.random.default_rng(0)
        L = maths.make_layer(rng.normal(size=(20, 1000)), rng.normal(size=(400, 20)))
        for wrt in ("z", "W", "x"):
            rows = maths.jacobian_blocks(L, wrt=wrt).rows
            for _ in range(3):
                next(rows)
        print("ok")
    """,
    "an npz bomb (300 MB of uint8 in a small file)": """
        import io, zipfile, numpy as np
        from smjac import inputs
        from smjac.errors import LoadError
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            with z.open("W.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (300 * 2**20,)})
                chunk = bytes(2**20)
                for _ in range(300):
                    f.write(chunk)
            z.writestr("x.npy", b"")
        open("/tmp/_smjac_bomb.npz", "wb").write(buf.getvalue())
        try:
            inputs.load_bundle("/tmp/_smjac_bomb.npz", max_memory=512 * 2**20)
        except LoadError as e:
            assert "over the memory budget" in str(e), e
            print("ok")
    """,
    "a check of a 1×10000 W is refused up front, not after gigabytes": """
        import numpy as np
        from smjac import maths
        from smjac.checking import checks
        from smjac.errors import InputError
        L = maths.make_layer(np.linspace(-1, 1, 10000)[None, :], [1.0])
        try:
            checks.layer_check(L, max_memory=2**30)
        except InputError as e:
            assert "probes=N" in str(e)
            print("ok")
    """,
}


@pytest.mark.parametrize("name", list(MEMORY_CASES))
def test_memory_stays_bounded(name):
    done = run_limited(MEMORY_CASES[name])
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_json_too_large_to_parse_is_refused_before_parsing(tmp_path):
    path = tmp_path / "W.json"
    path.write_text(json.dumps(np.ones((300, 300)).tolist()))
    with pytest.raises(LoadError, match=r"W.json: parsing .* over the memory budget .* save it as .npy"):
        inputs.load_array(path, max_memory=2**20)
    assert inputs.load_array(path, max_memory=2**30).shape == (300, 300)


def test_a_memory_error_while_loading_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "W.csv"
    path.write_text("1,2\n3,4\n")

    def out_of_memory(*a: Any, **k: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(inputs, "parse_csv", out_of_memory)
    monkeypatch.setattr(inputs, "read_text", out_of_memory)  # the fast reader a file meets first
    with pytest.raises(LoadError, match=r"W\.csv: ran out of memory"):
        inputs.load_array(path)


# ---------------------------------------------------------------- malformed containers


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def npz(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, which is the point
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in members:
                z.writestr(name, data)
    return buf.getvalue()


def encrypted(data: bytes) -> bytes:
    """An .npz whose x.npy is flagged encrypted (zipfile itself writes no encrypted members)."""
    raw = bytearray(data)
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = 0
        while (at := raw.find(sig, at)) >= 0:
            name_at = at + (30 if sig == b"PK\x03\x04" else 46)
            if raw[name_at : name_at + 5] == b"x.npy":
                flag_at = at + (6 if sig == b"PK\x03\x04" else 8)
                raw[flag_at] |= 1
            at += 4
    return bytes(raw)


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


GOOD = [("W.npy", npy(BLOG_W)), ("x.npy", npy(BLOG_X))]
CONTAINERS = [
    (
        "npy (-1, -1)",
        "W.npy",
        npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (-1, -1), }"),
        "W.npy: is not a valid NPY file (its header gives the shape (-1, -1))",
    ),
    (
        "npy (True, 5)",
        "W.npy",
        npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (True, 5), }"),
        "shape (True, 5)",
    ),
    ("json integer of 5000 digits", "W.json", b"[[" + b"9" * 5000 + b"]]", "an integer of 5,000 digits"),
    ("json integer of 400 digits", "W.json", b"[[" + b"9" * 400 + b"]]", "an integer of 400 digits"),
    ("layer json with W twice", "layer.json", b'{"W": [[1.0]], "W": [[2.0]], "x": [1.0]}', "holds 'W' twice"),
    ("npz with W.npy twice", "layer.npz", npz([*GOOD, ("W.npy", npy(BLOG_W))]), "holds 'W' twice"),
    ("npz with an encrypted member", "layer.npz", encrypted(npz(GOOD)), "layer.npz[x]: is encrypted"),
]


@pytest.mark.parametrize(("id", "name", "content", "gist"), CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_malformed_containers_are_one_line(tmp_path, id, name, content, gist):
    path = tmp_path / name
    path.write_bytes(content)
    load = inputs.load_bundle if name.startswith("layer") else inputs.load_array
    with pytest.raises(LoadError) as info:
        load(path)
    assert gist in str(info.value)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- fuzzing


SHAPES = st.one_of(
    st.tuples(st.integers(-3, 4), st.integers(-3, 4)),
    st.tuples(st.booleans(), st.integers(0, 4)),
    st.tuples(st.integers(-(2**70), 2**70)),
    st.just(()),
    st.text(alphabet=st.characters(max_codepoint=255), max_size=6),
    st.floats(allow_nan=True),
)
DESCRS = st.sampled_from(
    ["<f8", "<f4", "|u1", "<i8", "|b1", "O", "<c16", "V8", "<U3", "bogus", "[('a', '<f8')]"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=SHAPES, descr=DESCRS, fortran=st.booleans(), data=st.binary(max_size=64), raw=st.booleans())
def test_fuzz_npy_headers(shape, descr, fortran, data, raw):
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    if raw:  # a header that is not even a dict
        header = header[: len(header) // 2]
    blob = npy_with_header(header, data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            inputs.parse(blob, table.Format.npy, "W.npy")
    except SmjacError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 10**6),
    names=st.lists(st.sampled_from(["W.npy", "x.npy", "b.npy", "W.npy", "dir/W.npy", "y.npy"]), max_size=4),
)
def test_fuzz_zip_directories(tmp_path_factory, edits, cut, names):
    blob = bytearray(npz([*GOOD, *((n, npy(BLOG_X)) for n in names)]))
    # mangle the central directory and local headers most: they are at the ends and the start
    for at, value in edits:
        blob[at % len(blob)] = value
    blob = blob[: max(4, len(blob) - cut % 64)] if cut % 3 == 0 else blob
    path = tmp_path_factory.mktemp("zip") / "layer.npz"
    path.write_bytes(bytes(blob))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            inputs.load_bundle(path, max_memory=2**30)
    except SmjacError:
        pass


def test_an_entry_by_the_chain_rule_is_the_chain_s_float_signed_zero_included():
    # the chain's product A[:, i] · xᵀ sums its one term onto 0, so where 0 · x_j is −0 (dz/dW off
    # its blocks, x_j < 0; dh/dW where p rounds to 0 or 1) the Jacobian holds +0: the entry gave −0
    from smjac.maths import layer_entry, layer_jacobian, make_layer

    rng = np.random.default_rng(1)
    for n, K, T in [(2, 2, 1.0), (3, 4, 1e-3), (5, 3, 1.0), (1, 5, 1e-3)]:
        x = rng.normal(size=n)
        x[0] = -abs(x[0])  # a negative input: 0 · x_j is −0
        L = make_layer(rng.normal(size=(n, K)), x, temperature=T)
        for of in ("h", "z"):
            for method in ("shortcut", "chain"):
                J = np.asarray(layer_jacobian(L, of=of, wrt="W", method=method)).reshape(K, K * n)
                for t in range(K):
                    for c in range(K * n):
                        got = np.float64(layer_entry(L, (t, c // n, c % n), of=of, wrt="W", method=method))
                        assert got.tobytes() == J[t, c].tobytes(), (of, method, t, c, got, J[t, c])


def test_api_edges_are_refused_in_words_not_numpy_tracebacks():
    # a weighted mean whose weights sum past the float range; a dz/dW no machine holds
    with pytest.raises(smjac.InputError, match="class_weights sum past the largest float"):
        smjac.grad(np.eye(2), [[1.0, 0.0], [0.0, 1.0]], target=[0, 0], class_weights=[1e308, 1.0])
    with pytest.raises(smjac.InputError, match="more than this machine can hold"):
        smjac.dz_dW([1.0, 2.0], 10**12)


def test_verify_of_a_subnormal_probability_warns_nothing():
    W, x = np.array([[0.0, 100.0]], np.float32), np.array([1.0], np.float32)  # p_0 = e^-100: subnormal
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert smjac.verify(W, x, grad=smjac.grad(W, x, target=0).W, target=0).ok
