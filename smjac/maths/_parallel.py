"""Fixed spans of work on a shared thread pool, each BLAS call inside a span in one BLAS thread.

The spans depend on the shapes alone, never on the number of threads: that is what gives the
same bits on any machine.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .numeric import Array, all_finite


class _OneBlasThread:
    """A context in which BLAS runs in one thread, shared by smjac's threads and its callers'.

    The limit is process-wide (OpenBLAS keeps one thread pool), so concurrent users share it:
    the first to enter sets it, the last to leave restores the caller's setting. threadpoolctl's
    own context managers would, entered from two threads at once, restore each other's values,
    and since threadpoolctl 3.8 its OpenBLAS setter obeys only the first Python thread that used
    it and silently ignores the rest: a call from a worker thread after one from the main thread
    ran BLAS on every core and changed the last bits. So threadpoolctl only finds the libraries;
    the count is set with each library's own setter, from whichever thread enters.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._libs: list[Any] | None = None
        self._saved: list[Any] = []
        self._callers = 1

    def __enter__(self) -> int:
        """Returns the number of BLAS threads the caller had set (what smjac may use instead)."""
        with self._lock:
            if self._users == 0:
                if self._libs is None:
                    self._libs = _blas_libraries()
                self._saved = [lib.get_num_threads() for lib in self._libs]
                self._callers = max((n for n in self._saved if n), default=worker_count())
                for lib in self._libs:
                    _set_blas_threads(lib, 1)
            self._users += 1
            return self._callers

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for lib, threads in zip(self._libs or [], self._saved, strict=True):
                    if threads:
                        _set_blas_threads(lib, threads)


_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def _blas_libraries() -> list[Any]:
    """The BLAS libraries loaded, as threadpoolctl finds them (only for large layers).

    threadpoolctl walks the loaded libraries through a ctypes callback, and an exception raised
    in it is swallowed, with a traceback on stderr: a Ctrl-C or a TERM whose handler raised there
    was lost. So in the main thread (the one Python runs handlers in) a stop signal that arrives
    meanwhile is kept, and handed to its own handler once the walk is done.
    """
    from threadpoolctl import ThreadpoolController

    if threading.current_thread() is not threading.main_thread():
        return list(ThreadpoolController().select(user_api="blas").lib_controllers)
    import signal

    arrived: list[int] = []
    handlers = {
        n: h
        for n in (getattr(signal, name) for name in _STOP_SIGNALS if hasattr(signal, name))
        if callable(h := signal.getsignal(n))
    }
    for n in handlers:
        signal.signal(n, lambda signum, frame: arrived.append(signum))
    try:
        return list(ThreadpoolController().select(user_api="blas").lib_controllers)
    finally:
        for n, h in handlers.items():
            signal.signal(n, h)
        for n in arrived[:1]:  # the first: its handler stops the run as it would have
            handlers[n](n, None)


def _set_blas_threads(lib: Any, threads: int) -> None:
    """The library's own setter: threadpoolctl's ``set_num_threads`` for OpenBLAS (3.8 and later)
    does nothing unless called from the first thread that called it."""
    getattr(lib, "_real_set_num_threads", lib.set_num_threads)(threads)


one_blas_thread = _OneBlasThread()
ONE_BLAS_THREAD_FROM = 2**13  # N·n·K; OpenBLAS keeps smaller products in one thread itself
POOL_FROM = 2**21  # multiply-adds (about a millisecond here) before spans go to the pool
SPAN_BYTES = 4 * 2**20  # rows of a product per task: large enough for BLAS, small enough to stay in cache
MATVEC_COLUMNS = 4096  # columns of W per task for a single sample's z = Wᵀx
# Rows of z a span's row-wise passes (max, exp, sum, divide) take at a time: with their p they stay
# in a core's L2 cache through all the passes, which then cost arithmetic, not memory traffic. Half
# a MiB (z and p 1 MiB, with log h 1.5, of a 2 MiB L2): each block's few Python calls are paid half
# as often as at 256 KiB, which measured 2% slower on the forward pass (n = 512, K = 1000).
PASS_BYTES = 512 * 2**10

_pool_lock = threading.Lock()
_pool: Any = None


def _executor() -> Any:
    """One pool of worker threads for the process, started on first use and kept: starting
    threads for every call costs more than a small product."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(worker_count(), thread_name_prefix="smjac")
        return _pool


def even_spans(total: int, step: int) -> list[tuple[int, int]]:
    step = max(1, step)
    return [(a, min(total, a + step)) for a in range(0, total, step)]


def row_spans(rows: int, row_bytes: int, parts: int = 4, least: int = 64) -> list[tuple[int, int]]:
    """Spans of rows for products and row-wise passes, of about SPAN_BYTES and at least ``parts``
    of them when there are rows enough. They depend on the shape alone, never on the number of
    threads: that is what gives the same bits on any machine (see :func:`in_spans`)."""
    step = min(SPAN_BYTES // max(1, row_bytes), -(-rows // parts))
    return even_spans(rows, max(step, least))


def sweep_spans(N: int, n: int, K: int, itemsize: int) -> list[tuple[int, int]]:
    """The spans of rows a batch's forward pass and gradient sweep (one product and its softmax
    each): :func:`row_spans` of the N×K logits, each span at least POOL_FROM multiply-adds, so a
    small batch is one span in the calling thread."""
    return row_spans(N, K * itemsize, least=max(64, POOL_FROM // max(1, n * K)))


def all_finite_rows(X: Array, K: int) -> bool:
    """:func:`~smjac.maths.numeric.all_finite` of a batch X (N×n) of a layer with K outputs; a
    large one is scanned over the forward pass's spans (:func:`sweep_spans`) on the pool, so the
    scan scales with the cores as the pass after it does. A verdict, not a sum: neither the spans
    nor the number of threads can change it."""
    if X.size < POOL_FROM:
        return all_finite(X)
    spans = sweep_spans(X.shape[0], X.shape[1], K, X.itemsize)
    return all(in_spans(lambda span: all_finite(X[span[0] : span[1]]), spans, X.size))


def in_spans(work: Callable[[Any], Any], spans: Sequence[Any], size: int) -> list[Any]:
    """Run ``work`` on each span, on the shared pool, each BLAS call inside it in one BLAS thread.

    The same bits whatever the number of cores: every span is a fixed part of the output (whole
    rows or columns), computed by one single-threaded BLAS call, so which thread runs it, and how
    many run at once, cannot change a digit. The caller's BLAS thread count sets how many spans
    run at once (OPENBLAS_NUM_THREADS=1 keeps smjac to the calling thread). Work of fewer than
    POOL_FROM multiply-adds (``size``) runs its spans in the calling thread: handing a span to
    another thread and waiting for it costs tens of microseconds, more than such a span takes.
    Each span runs under the caller's ``np.errstate``, wherever it runs.
    """
    with one_blas_thread as threads:
        if size >= POOL_FROM and threads > 1 and len(spans) > 1 and worker_count() > 1:
            # numpy's error state is the thread's own: a worker would otherwise warn of what the
            # caller chose to ignore (an overflow in a product the caller then rescales)
            err = np.geterr()

            def in_callers_errstate(span: Any) -> Any:
                with np.errstate(**err):
                    return work(span)

            return list(_executor().map(in_callers_errstate, spans))
        return [work(span) for span in spans]


def matmul_spans(A: Array, B: Array, out: Array | None = None) -> Array:
    """``A @ B`` (2-D), split into fixed spans of output rows, or of columns for a single row.

    Small products (OpenBLAS keeps them in one thread itself) are one call in the calling thread.
    """
    (M, k), C = A.shape, B.shape[1]
    if out is None:
        out = np.empty((M, C), dtype=np.result_type(A, B))
    if M * k * C < ONE_BLAS_THREAD_FROM:
        return np.matmul(A, B, out=out)
    if M == 1:  # a matrix-vector product: each span owns whole entries of the result

        def columns(span: tuple[int, int]) -> None:
            np.matmul(A[0], B[:, span[0] : span[1]], out=out[0, span[0] : span[1]])

        in_spans(columns, even_spans(C, MATVEC_COLUMNS), k * C)
    else:

        def rows(span: tuple[int, int]) -> None:
            np.matmul(A[span[0] : span[1]], B, out=out[span[0] : span[1]])

        in_spans(rows, row_spans(M, C * out.itemsize, parts=2, least=32), M * k * C)
    return out


PARTIALS_BYTES = 128 * 2**20  # partial sums held at once by matmul_tn: a·b·itemsize each
MAX_PARTIALS = 32  # chunks of the reduction: enough to keep 32 cores busy, few enough to add up fast
REDUCE_ROWS_LEAST = 1024  # rows of a chunk of the reduction: a BLAS call long enough to be worth it


def reduction_chunks(N: int, a: int, b: int, itemsize: int) -> list[tuple[int, int]]:
    """Fixed chunks of the N rows that ``Aᵀ B`` sums over, by the shape alone (one chunk: no split).

    >>> len(reduction_chunks(100_000, 512, 1000, 8)), len(reduction_chunks(1000, 512, 1000, 8))
    (32, 1)
    """
    parts = min(MAX_PARTIALS, PARTIALS_BYTES // max(1, a * b * itemsize), N // REDUCE_ROWS_LEAST)
    return even_spans(N, -(-N // parts)) if parts >= 2 else [(0, N)]


def matmul_tn(A: Array, B: Array) -> Array:
    """``Aᵀ B`` for A N×a and B N×b (a batch gradient's ``Xᵀδ``), parallel over the sum too.

    Split by output rows alone, a tall-and-thin product such as the gradient of a batch (a, b in
    the hundreds, N in the hundred thousands) has too few rows to keep many cores busy. So the sum
    over N is cut into fixed chunks (:func:`reduction_chunks`, by the shape alone), each chunk's
    ``A[c]ᵀ B[c]`` is one single-threaded BLAS call on the pool, and the partial sums are added in
    chunk order, span by span of the output: the same bits on any number of cores.
    """
    N, a = A.shape
    b = B.shape[1]
    dtype = np.result_type(A, B)
    chunks = reduction_chunks(N, a, b, dtype.itemsize)
    if len(chunks) == 1:
        return matmul_spans(A.T, B)
    parts = np.empty((len(chunks), a, b), dtype=dtype)

    def partial(i: int) -> None:
        r0, r1 = chunks[i]
        np.matmul(A[r0:r1].T, B[r0:r1], out=parts[i])

    in_spans(partial, range(len(chunks)), N * a * b)
    out = np.empty((a, b), dtype=dtype)

    def add(span: tuple[int, int]) -> None:
        r0, r1 = span
        np.copyto(out[r0:r1], parts[0, r0:r1])
        for p in parts[1:]:
            out[r0:r1] += p[r0:r1]

    in_spans(add, row_spans(a, b * dtype.itemsize, parts=MAX_PARTIALS, least=8), len(chunks) * a * b)
    return out


def matmul_stack(A: Array, B: Array, out: Array | None = None) -> Array:
    """``A[s] @ B`` for each s of a stack A (N×R×C), each by :func:`matmul_spans`."""
    if out is None:
        out = np.empty((A.shape[0], A.shape[1], B.shape[1]), dtype=np.result_type(A, B))
    for s in range(A.shape[0]):
        matmul_spans(A[s], B, out=out[s])
    return out


BLOCK_BYTES = 16 * 2**20  # row blocks of about this size: large enough to stream, small enough to share
Progress = Callable[[int], None]  # called with the number of bytes just written


def row_blocks(rows: int, row_bytes: int, block_bytes: int = BLOCK_BYTES) -> list[tuple[int, int]]:
    step = max(1, block_bytes // max(1, row_bytes))
    return [(r, min(rows, r + step)) for r in range(0, rows, step)]


@functools.cache
def worker_count() -> int:
    """The CPUs this process may run on (its affinity mask, as ``taskset`` or a container's cpuset
    sets it), not the machine's count; asked once, since each asking reads the kernel."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def run_blocks(
    work: Callable[[Any], int], tasks: Sequence[Any], progress: Progress | None, threads: bool = True
) -> None:
    if threads and len(tasks) > 1 and worker_count() > 1:
        for done in _executor().map(work, tasks):
            if progress:
                progress(done)
    else:
        for task in tasks:
            done = work(task)
            if progress:
                progress(done)


def bufsize_for_rows(m: int) -> int:
    """numpy's ufunc buffer size (in elements) for an outer product with rows of m numbers.

    When rows are shorter than the buffer (8192 by default), numpy 2 copies both broadcast
    operands through its buffers to make longer inner loops, and the product runs at a third of
    the memory's speed. A buffer no longer than a row lets the ufunc write each row in place:
    measured here, 2–3× faster for rows of 128 to 2048 numbers. Below about 128 the copies pay
    for themselves, so the setting is left alone there.
    """
    current = np.getbufsize()
    return m - m % 16 if 128 <= m < current else current
