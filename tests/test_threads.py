"""The same bits whatever the number of threads: forward, grad and jacobian in fresh processes.

smjac splits each product and pass into fixed spans of rows or columns (a function of the shape
alone), each computed by one single-threaded BLAS call, so how many threads run them cannot move a
digit. Each run is a subprocess, so the BLAS library starts with the thread count it is given.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

RUN = r"""
import hashlib, sys
import numpy as np
import smjac

limit = sys.argv[1]
if len(sys.argv) > 2:  # as many pool workers as a many-core machine would have, whatever this one has
    from smjac.maths import _parallel
    _parallel.worker_count = lambda: int(sys.argv[2])
if limit != "env":
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=int(limit), user_api="blas")
digest = hashlib.sha256()
rng = np.random.default_rng(7)
for dtype in (np.float64, np.float32):
    cases = [
        (rng.normal(size=(300, 500)) / 10, rng.normal(size=(700, 300))),  # a batch: several row spans
        (rng.normal(size=(900, 9000)) / 10, rng.normal(size=900)),  # one sample: several column spans
    ]
    for W, x in cases:
        W, x = W.astype(dtype), x.astype(dtype)
        N = 1 if x.ndim == 1 else x.shape[0]
        t = rng.integers(0, W.shape[1], N)
        for layout in ("in-out", "out-in"):
            M = W if layout == "in-out" else np.ascontiguousarray(W.T)
            f = smjac.forward(M, x, layout=layout, function="log-softmax", temperature=0.9)
            g = smjac.grad(M, x, target=t if N > 1 else int(t[0]), layout=layout, reduce="mean")
            u = smjac.grad(M, x, upstream=rng.normal(size=W.shape[1]).astype(dtype), layout=layout)
            for a in (f.z, f.h, f.p, g.W, g.b, g.z, np.float64(g.loss), u.W, u.b):
                digest.update(np.ascontiguousarray(a).tobytes())
    W, X = (rng.normal(size=(64, 70)) / 8).astype(dtype), rng.normal(size=(3, 64)).astype(dtype)
    for wrt in ("W", "x"):
        digest.update(smjac.jacobian(W, X, wrt=wrt).tobytes())
print(digest.hexdigest())
"""


def run(threads: int, how: str, workers: int | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if how == "env":
        env.update(
            OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads)
        )
        arg = "env"
    else:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(name, None)
        arg = str(threads)
    out = subprocess.run(
        [sys.executable, "-c", RUN, arg, *([] if workers is None else [str(workers)])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.parametrize("how", ["env", "threadpoolctl"])
def test_one_and_two_threads_give_the_same_bytes(how):
    one, two = run(1, how), run(2, how)
    assert len(one) == len(hashlib.sha256().hexdigest())
    assert one == two


def test_sixteen_workers_give_the_same_bytes_as_one():
    # a 16-core machine's pool, simulated on whatever this one has: the spans do not depend on it
    assert run(16, "env", workers=16) == run(1, "env")


def test_the_pool_is_sized_by_the_cpus_this_process_may_use():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from smjac.maths import _parallel; print(_parallel.worker_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_small_work_stays_in_the_calling_thread_and_large_work_uses_the_pool(monkeypatch):
    """Handing a span to the pool costs tens of microseconds: below POOL_FROM multiply-adds the
    spans run where they were asked for; above it, on the pool when there are cores for it."""
    import threading

    from smjac.maths import _parallel

    seen: list[int] = []

    def work(span):
        seen.append(threading.get_ident())
        return span

    spans = list(range(6))
    assert _parallel.in_spans(work, spans, _parallel.POOL_FROM - 1) == spans
    assert set(seen) == {threading.get_ident()}

    seen.clear()
    monkeypatch.setattr(_parallel, "worker_count", lambda: 2)
    with _parallel.one_blas_thread as blas_threads:  # what the caller allows (OPENBLAS_NUM_THREADS)
        pass
    assert _parallel.in_spans(work, spans, _parallel.POOL_FROM) == spans
    elsewhere = threading.get_ident() not in seen
    assert elsewhere == (blas_threads > 1), (blas_threads, seen)


def test_a_call_from_another_thread_after_one_from_the_main_thread_gives_the_same_bits():
    """threadpoolctl 3.8 lets only the first Python thread that limits OpenBLAS limit it again: a
    call from a worker thread after one from the main thread once ran BLAS on every core and moved
    the last bits of float32 results. In a fresh process, as a user would meet it."""
    script = r"""
import threading, numpy as np, smjac
rng = np.random.default_rng(0)
W = (rng.standard_normal((64, 100)) * 0.3).astype(np.float32)
X = rng.standard_normal((200, 64)).astype(np.float32)
t = rng.integers(0, 100, 200)
from threadpoolctl import threadpool_info
def blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
before = blas_threads()
def digest(g):
    return (g.W.tobytes(), g.b.tobytes(), g.z.tobytes(), smjac.forward(W, X).z.tobytes())
first = digest(smjac.grad(W, X, target=t))  # the main thread first
seen = []
worker = threading.Thread(target=lambda: seen.append(digest(smjac.grad(W, X, target=t))))
worker.start(); worker.join()
print(seen[0] == first, blas_threads() == before)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    same, restored = out.stdout.split()
    assert same == "True", out.stdout  # the worker's bits are the main thread's
    assert restored == "True", out.stdout  # and the caller's BLAS thread count is back


@pytest.mark.parametrize("bad_row", [0, 1234, -1])
def test_a_large_x_is_scanned_over_the_passs_spans_on_the_pool(monkeypatch, bad_row):
    """make_layer's scan of a large x runs span by span on the pool, as the pass after it does;
    every row is read, and a NaN in any span is refused."""
    import threading

    import numpy as np

    from smjac.errors import InputError
    from smjac.maths import _parallel
    from smjac.maths.layer import make_layer

    scanned: list[tuple[int, int]] = []
    real = _parallel.all_finite

    def recorder(a):
        scanned.append((a.shape[0], threading.get_ident()))
        return real(a)

    monkeypatch.setattr(_parallel, "all_finite", recorder)
    monkeypatch.setattr(_parallel, "worker_count", lambda: 2)
    N, n, K = 4096, 512, 1000  # 2M entries: POOL_FROM
    X = np.ones((N, n), dtype=np.float32)
    make_layer(np.ones((n, K), dtype=np.float32), X)
    spans = _parallel.sweep_spans(N, n, K, 4)
    assert len(spans) > 1 and sorted(r for r, _ in scanned) == sorted(r1 - r0 for r0, r1 in spans)
    with _parallel.one_blas_thread as blas_threads:
        pass
    assert (threading.get_ident() not in {t for _, t in scanned}) == (blas_threads > 1)
    X[bad_row, 7] = np.nan
    with pytest.raises(InputError, match="x holds a NaN or infinite value"):
        make_layer(np.ones((n, K), dtype=np.float32), X)


def test_a_stop_signal_while_the_blas_libraries_are_found_is_kept_not_swallowed(monkeypatch, capfd):
    # threadpoolctl finds the libraries through a ctypes callback; a Ctrl-C whose handler raised
    # inside it was swallowed, with "Exception ignored on calling ctypes callback function" and a
    # traceback on stderr (seen once in CI, a TERM in a burst during -o J.npy)
    import ctypes
    import os
    import signal

    import threadpoolctl

    from smjac.maths import _parallel

    walked = []

    class Walk:  # threadpoolctl's walk of the loaded libraries, a ctypes callback and all
        def __init__(self):
            @ctypes.CFUNCTYPE(ctypes.c_int)
            def each_library():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs at the next bytecodes: here, in the callback
                    pass
                walked.append(True)
                return 0

            each_library()

        def select(self, user_api):
            return type("Libraries", (), {"lib_controllers": []})()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Walk)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _parallel._blas_libraries()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert walked == [True]  # the walk ran to its end, and the interrupt came after it
    assert "Exception ignored" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is previous
