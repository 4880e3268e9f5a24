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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--K", type=int, default=1000)
    ap.add_argument("--N", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n, K, N = args.n, args.K, args.N
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
