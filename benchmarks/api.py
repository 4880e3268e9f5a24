"""The Python API's cost per call on small layers, side by side with the bare numpy that computes
the same numbers (issue 23: "under 2× the bare numpy expression").

    python3 benchmarks/api.py               # 64×10 and 3×5, 31 interleaved rounds
    python3 benchmarks/api.py --rounds 101

Each round times every cell once, in turn (the order rotates from round to round), as the median
of a batch of calls each timed on its own; a cell's figure is the median of its rounds, and each
ratio is smjac's median over the bare expression's. A call of a few microseconds is seldom cut by
the scheduler, so the median call is the call's own cost even on a busy machine, where the time of
a whole batch (this benchmark's measure until issue 23's second round) also counts the slices
other processes take: at a load average of 7 on 2 cores it read smjac.grad at 60–120 µs for
the 19 µs of its median call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import smjac


def bare_cells(W: np.ndarray, x: np.ndarray, target: int) -> dict[str, Callable[[], Any]]:
    """What a user would write with numpy alone: the five lines of the gradient, the forward pass,
    the Jacobian of h with respect to W (``(diag p − ppᵀ) ⊗ xᵀ``)."""

    def grad() -> Any:
        z = x @ W
        p = np.exp(z - z.max())
        p /= p.sum()
        p[target] -= 1
        return np.outer(x, p)

    def forward() -> Any:
        z = x @ W
        p = np.exp(z - z.max())
        return z, p / p.sum()

    def jacobian() -> Any:
        z = x @ W
        p = np.exp(z - z.max())
        p /= p.sum()
        A = np.diag(p) - np.outer(p, p)
        return (A[:, :, None] * x).reshape(len(p), -1)

    return {"grad": grad, "forward": forward, "jacobian": jacobian}


def smjac_cells(W: np.ndarray, x: np.ndarray, target: int) -> dict[str, Callable[[], Any]]:
    return {
        "grad": lambda: smjac.grad(W, x, target=target),
        "forward": lambda: smjac.forward(W, x),
        "jacobian": lambda: smjac.jacobian(W, x),
    }


def per_call(fn: Callable[[], Any], number: int) -> float:
    """The median of ``number`` calls, each timed on its own (the clock's own cost, some tens of
    nanoseconds, is in every cell alike)."""
    clock, times = time.perf_counter_ns, []
    for _ in range(number):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times) / 1e9


def side_by_side(cells: dict[str, Callable[[], Any]], rounds: int, number: int) -> dict[str, float]:
    """Median seconds per call of each cell over ``rounds`` interleaved rounds."""
    names = list(cells)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm up: first calls pay for imports and caches
        per_call(cells[name], 10)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(per_call(cells[name], number))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--number", type=int, default=200, help="calls per timed batch")
    args = parser.parse_args()
    print(f"smjac {smjac.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")
    print(
        f"medians of {args.rounds} interleaved rounds, each the median of {args.number} calls; load {os.getloadavg()}\n"
    )
    print("| layer (n×K) | call | smjac | bare numpy | ratio |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n, K in ((64, 10), (3, 5)):
        W, x = rng.standard_normal((n, K)), rng.standard_normal(n)
        ours, bare = smjac_cells(W, x, 1), bare_cells(W, x, 1)
        for name in ours:  # the same numbers, to rounding: the comparison is fair
            mine, theirs = ours[name](), bare[name]()
            got = mine.W if name == "grad" else mine.h if name == "forward" else mine
            want = theirs if name != "forward" else theirs[1]
            assert np.allclose(got, want, rtol=1e-12, atol=1e-15), name
        cells = {f"smjac {k}": v for k, v in ours.items()} | {f"bare {k}": v for k, v in bare.items()}
        t = side_by_side(cells, args.rounds, args.number)
        for name in ours:
            a, b = t[f"smjac {name}"], t[f"bare {name}"]
            print(f"| {n}×{K} | `smjac.{name}` | {a * 1e6:.1f} µs | {b * 1e6:.1f} µs | {a / b:.2f}× |")


if __name__ == "__main__":
    main()
