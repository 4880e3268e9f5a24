"""Many cores: smjac's batch gradient and forward pass against their BLAS bounds and torch, in one run.

    python3 benchmarks/manycore.py                 # n = 512, K = 1000, N = 100,000, float64
    python3 benchmarks/manycore.py --N 10000 --rounds 7

Every cell is timed in this one process, in interleaved rounds (who goes first rotates), after a
rest of 0.3 s so that OpenBLAS's spinning threads of the cell before have gone quiet; each figure
is the median of its rounds. The bounds are the GEMMs alone, on all of OpenBLAS's threads:

* gradient: ``X @ W`` (the logits) plus ``Xᵀ @ P`` (the gradient): no pass over N×K, so a bound
  smjac cannot reach (it also computes exp, the sums, the loss and δ);
* forward: ``X @ W`` alone.

``smjac, rows only`` is the gradient with the sum over N left whole (the split by output rows that
smjac used before), to show what splitting the reduction buys. The last lines check that the
gradient has the same bits with one BLAS thread and with all of them.

    python3 benchmarks/manycore.py --spans --N 10000 --workers 16   # on a machine of few cores

``--spans`` reasons the forward pass on W workers from what one core does, for a machine with
fewer cores than W. One core's work is read as the thread's CPU time (``time.thread_time``: what
a busy machine's other processes take from it is not counted): each span's product alone in one
thread, into fresh memory as the pass writes it; its softmax is the rest of the one-worker pass
shared out by rows (every row costs the same). The W-worker time is that of ``make_layer``'s scan
of x, which runs over the same spans on the pool, shared out by rows, then the longest worker when
the spans are handed out in order to whichever worker is free, as the pool does (the scan is done
before the pass starts: two rounds of the pool, one after the other). The bound is the whole product in one thread divided
by W: OpenBLAS scaling perfectly, kinder to the bound than any machine is. What the model leaves
out is what running spans side by side costs (memory bandwidth, the shared cache, page faults
taken at once): the pass run with 2 workers here, its process CPU time against the one worker's,
says how much more work the same spans become when two run at once; on an idle machine its wall
time against the model says how far the model can be trusted. ``--span-mib`` lists the span
sizes to compare (4 is smjac's ``SPAN_BYTES``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import smjac
from smjac.maths import _parallel


def timed(fn) -> float:
    time.sleep(0.3)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def schedule(tasks: list[float], workers: int) -> float:
    """The time of ``tasks`` handed out in order to whichever of ``workers`` is free first
    (``ThreadPoolExecutor.map``): the longest worker's total."""
    free = [0.0] * workers
    for task in tasks:
        i = free.index(min(free))
        free[i] += task
    return max(free)


def span_model(n: int, K: int, N: int, rounds: int, workers: int, span_mib: list[float]) -> None:
    from threadpoolctl import threadpool_limits

    from smjac.maths.layer import make_layer

    rng = np.random.default_rng(0)
    W = rng.normal(size=(n, K)) / np.sqrt(n)
    X = rng.normal(size=(N, n))
    cached = _parallel.worker_count

    def forward(count: int, mib: float) -> None:
        saved = _parallel.SPAN_BYTES
        _parallel.SPAN_BYTES = int(mib * 2**20)
        _parallel.worker_count = (lambda: 1) if count == 1 else cached  # 1: every span in this thread
        try:
            smjac.forward(W, X)
        finally:
            _parallel.SPAN_BYTES, _parallel.worker_count = saved, cached

    def cpu(fn) -> float:  # one thread's work, which a busy machine's other processes do not inflate
        time.sleep(0.3)
        t0 = time.thread_time()
        fn()
        return time.thread_time() - t0

    def span_products(spans: list[tuple[int, int]]) -> list[float]:
        Z = np.empty((N, K))  # fresh, as the pass writes it: its page faults are the product's
        times = []
        with threadpool_limits(limits=1, user_api="blas"):
            for r0, r1 in spans:
                t0 = time.thread_time()
                np.matmul(X[r0:r1], W, out=Z[r0:r1])
                times.append(time.thread_time() - t0)
        return times

    layouts = {}
    saved = _parallel.SPAN_BYTES
    for mib in span_mib:
        _parallel.SPAN_BYTES = int(mib * 2**20)
        layouts[mib] = _parallel.sweep_spans(N, n, K, 8)
    _parallel.SPAN_BYTES = saved
    whole: list[float] = []
    whole2: list[float] = []
    serial: list[float] = []
    products: dict[float, list[list[float]]] = {mib: [] for mib in span_mib}
    one: dict[float, list[float]] = {mib: [] for mib in span_mib}
    two_wall: dict[float, list[float]] = {mib: [] for mib in span_mib}
    two_cpu: dict[float, list[float]] = {mib: [] for mib in span_mib}
    for r in range(rounds):
        for mib in span_mib[r % len(span_mib) :] + span_mib[: r % len(span_mib)]:
            products[mib].append(span_products(layouts[mib]))
            one[mib].append(cpu(lambda mib=mib: forward(1, mib)))
            time.sleep(0.3)
            c0, t0 = time.process_time(), time.perf_counter()
            forward(2, mib)
            two_wall[mib].append(time.perf_counter() - t0)
            two_cpu[mib].append(time.process_time() - c0)
        with threadpool_limits(limits=1, user_api="blas"):
            whole.append(cpu(lambda: X @ W))
        with threadpool_limits(limits=2, user_api="blas"):
            whole2.append(timed(lambda: X @ W))
        _parallel.worker_count = lambda: 1  # the scan's spans in this thread, to be timed as one core's
        try:
            serial.append(cpu(lambda: make_layer(W, X)))
        finally:
            _parallel.worker_count = cached
    med = statistics.median
    gemm, gemm2, scan = med(whole), med(whole2), med(serial)
    print(
        f"n = {n}, K = {K}, N = {N:,}, float64; {_parallel.worker_count()} CPUs here, load {os.getloadavg()[0]:.1f}; "
        f"medians of {rounds} interleaved rounds\n"
        f"whole product in one thread: {gemm * 1e3:.1f} ms CPU (on 2 threads: {gemm2 * 1e3:.1f} ms wall); "
        f"make_layer's scan of x: {scan * 1e3:.1f} ms CPU\n"
    )
    print(
        "| spans | rows each | span products ÷ whole product | softmax ÷ span products | 1 worker ÷ bound "
        f"| 2 workers: CPU ÷ 1 worker's | 2 workers: wall ÷ model | {workers} workers ÷ bound (model) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mib in span_mib:
        spans = layouts[mib]
        g = [med(times[i] for times in products[mib]) for i in range(len(spans))]
        soft = max(0.0, med(one[mib]) - scan - sum(g))  # the rest of the pass, the same for every row
        tasks = [gi + soft * (r1 - r0) / N for gi, (r0, r1) in zip(g, spans, strict=True)]
        scans = [scan * (r1 - r0) / N for r0, r1 in spans]

        def model(workers: int, tasks=tasks, scans=scans) -> float:
            return schedule(scans, workers) + schedule(tasks, workers)

        print(
            f"| {len(spans)} × {mib:g} MiB | {spans[0][1] - spans[0][0]} | {sum(g) / gemm:.3f} | {soft / sum(g):.3f} "
            f"| {med(one[mib]) / gemm:.3f} | {med(two_cpu[mib]) / med(one[mib]):.3f} "
            f"| {med(two_wall[mib]) / model(2):.3f} "
            f"| {model(workers) / (gemm / workers):.3f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--K", type=int, default=1000)
    ap.add_argument("--N", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--spans", action="store_true", help="reason W workers from per-span timings here")
    ap.add_argument("--workers", type=int, default=16, help="the W of --spans")
    ap.add_argument("--span-mib", default="4,2,1", help="span sizes --spans compares (MiB of logits)")
    args = ap.parse_args()
    n, K, N = args.n, args.K, args.N
    if args.spans:
        span_model(n, K, N, args.rounds, args.workers, [float(v) for v in args.span_mib.split(",")])
        return
    rng = np.random.default_rng(0)
    W = rng.normal(size=(n, K)) / np.sqrt(n)
    X = rng.normal(size=(N, n))
    t = rng.integers(0, K, N)

    P = X @ W  # stands in for the probabilities: the bound's second GEMM needs an N×K operand

    def bound_grad() -> None:
        X @ W
        X.T @ P

    def bound_forward() -> None:
        X @ W

    def rows_only() -> None:
        saved = _parallel.MAX_PARTIALS
        _parallel.MAX_PARTIALS = 1
        try:
            smjac.grad(W, X, target=t)
        finally:
            _parallel.MAX_PARTIALS = saved

    cells = {
        "smjac grad": lambda: smjac.grad(W, X, target=t),
        "smjac grad, rows only": rows_only,
        "bound: the two GEMMs": bound_grad,
        "smjac forward": lambda: smjac.forward(W, X),
        "bound: one GEMM": bound_forward,
    }
    try:
        import torch

        torch.set_num_threads(_parallel.worker_count())
        Wt, Xt, tt = torch.tensor(W, requires_grad=True), torch.tensor(X), torch.tensor(t)

        def torch_grad() -> None:
            Wt.grad = None
            torch.nn.functional.cross_entropy(Xt @ Wt, tt).backward()

        def torch_forward() -> None:
            with torch.no_grad():
                torch.softmax(Xt @ Wt, dim=1)

        cells["torch grad (CPU)"] = torch_grad
        cells["torch forward (CPU)"] = torch_forward
    except ImportError:
        pass
    for fn in cells.values():  # warm up: pools started, pages touched
        fn()
    times: dict[str, list[float]] = {k: [] for k in cells}
    names = list(cells)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(timed(cells[name]))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"n = {n}, K = {K}, N = {N:,}, float64; {os.cpu_count()} CPUs, {_parallel.worker_count()} usable; "
        f"numpy {np.__version__}; medians of {args.rounds} interleaved rounds"
    )
    print(f"{'cell':32} {'median':>10}  ratio")
    for name, m in med.items():
        bound = "bound: one GEMM" if ("forward" in name or "one GEMM" in name) else "bound: the two GEMMs"
        print(f"{name:32} {m * 1e3:8.1f} ms  {m / med[bound]:5.2f}× its bound")
    digests = set()
    for threads in (1, _parallel.worker_count()):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads, user_api="blas"):
            g = smjac.grad(W, X, target=t)
        digests.add(hashlib.sha256(g.W.tobytes() + g.b.tobytes()).hexdigest())
    print(f"same bits with 1 and {_parallel.worker_count()} BLAS threads: {len(digests) == 1}")


if __name__ == "__main__":
    main()
