"""Benchmark smjac's core side by side with its baselines, in one process, and print ratios.

Run from the repository root after installing the project:

    python benchmarks/bench.py            # everything (several minutes, up to ~20 GiB of memory)
    python benchmarks/bench.py --quick    # small sizes only, to see that it runs

The targets of this round (sections grad1, batch, forward, check) run each row in three child
processes: smjac and the bound without torch, then smjac and torch with torch's default allocator
and with large pages (``THP_MEM_ALLOC_ENABLE=1``). Inside a child the cells take turns in
``--repeat`` interleaved rounds, each turn a rested, warmed-up block of calls (see ``block``), and
each cell is the median of its rounds. The bound is the sum of its parts, each timed on its own.
Every row prints the load average. The older sections (jacobian, gradient) take the best of
``--repeat`` runs. Ratios, not seconds, are the point: every row is timed next to its baseline
in the same process, so a busy or slow machine moves both.

* One sample (grad1): ``smjac.grad`` at n = 4096, K = 50000 against the read-once, write-once
  bound, ``W.T @ x`` on all cores plus a fresh n×K array filled on all cores.
* Batches (batch): ``smjac.grad`` at n = 512, K = 1000 against the forward GEMM, the gradient
  GEMM (both on all cores) and one in-place pass over N×K on all cores; peak memory (peak) with
  tracemalloc, which numpy reports its arrays to. forward: ``smjac.forward`` against one GEMM
  and one pass writing p into fresh memory on all cores.
* check: ``smjac.check`` at n = K = 100 against ``torch.autograd.gradcheck(fast_mode=False)``.
* bigx: ``grad_chunks`` and ``forward_chunks`` over a float32 x of 6 GiB in an .npy file, mapped
  read-only, with the child's peak resident memory.

* Jacobian dh/dW at n = K: smjac (new array, into ``out=``, and the chain method) against a fresh
  array of the same bytes allocated and filled once (what returning a new result costs at
  least), a fill of a preallocated one, ``np.kron``, the post's loops (small sizes), and
  ``torch.func.jacrev``, ``torch.autograd.functional.jacobian`` and ``jax.jacrev`` when installed
  (``pip install '.[bench]'``; never a run-time dependency).
* The cross-entropy gradient at n = 4096, K = 50000 against a fresh n×K fill, and torch's autograd.
* Peak memory of ``smjac jacobian -o J.npy`` streaming a Jacobian of several GiB.
* Start-up: ``smjac forward`` on the sample against ``python -c "import numpy"``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import smjac

ROOT = Path(__file__).resolve().parent.parent


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def fresh_fill(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    a = np.empty(shape, dtype=dtype)
    a.fill(1.0)
    return a


_POOL: ThreadPoolExecutor | None = None


def on_all_cores(rows: int, work: Callable[[int, int], Any]) -> None:
    """``work(r0, r1)`` over ``rows`` in blocks of rows, four per core, on one pool of a thread per
    core, started once (as smjac's own pool is) so that no bound pays for starting threads."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(os.cpu_count() or 1)
    step = max(1, -(-rows // (4 * (os.cpu_count() or 1))))
    list(_POOL.map(lambda r: work(r, min(rows, r + step)), range(0, rows, step)))


def fresh_fill_all_cores(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A fresh array filled in row blocks by one thread per core: the floor for any writer that
    returns a new array and uses every core (numpy lets go of the GIL while it assigns)."""
    a = np.empty(shape, dtype=dtype)
    on_all_cores(shape[0], lambda r0, r1: a[r0:r1].fill(1.0))
    return a


# ---------------------------------------------------------------- the post's loops (small sizes)


def post_jacobian(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    Z = W.T @ x
    eZ = np.exp(Z - Z.max())
    S = eZ / eZ.sum()
    dir_matrix = np.zeros((W.shape[0] * W.shape[1], W.shape[1]))
    for t in range(W.shape[1]):
        for i in range(W.shape[1]):
            for j in range(W.shape[0]):
                dir_matrix[i * W.shape[0] + j][t] = S[t] * ((i == t) - S[i]) * x[j]
    return dir_matrix.T


# ---------------------------------------------------------------- peers, when installed


def torch_peers(dtype: Any) -> dict[str, Callable[[np.ndarray, np.ndarray], Callable[[], Any]]]:
    try:
        import torch
    except ImportError:
        return {}
    tdtype = torch.float64 if dtype == np.float64 else torch.float32

    def setup(W: np.ndarray, x: np.ndarray) -> tuple[Any, Any]:
        return torch.tensor(W, dtype=tdtype), torch.tensor(x, dtype=tdtype)

    def jacrev(W: np.ndarray, x: np.ndarray) -> Callable[[], Any]:
        Wt, xt = setup(W, x)
        return lambda: torch.func.jacrev(lambda M: torch.softmax(M.T @ xt, dim=0))(Wt)

    def autograd(W: np.ndarray, x: np.ndarray) -> Callable[[], Any]:
        Wt, xt = setup(W, x)
        return lambda: torch.autograd.functional.jacobian(lambda M: torch.softmax(M.T @ xt, dim=0), Wt)

    return {"torch.func.jacrev": jacrev, "torch.autograd.functional.jacobian": autograd}


def jax_peers(dtype: Any) -> dict[str, Callable[[np.ndarray, np.ndarray], Callable[[], Any]]]:
    try:
        import jax
    except ImportError:
        return {}
    jax.config.update("jax_enable_x64", True)  # so that float64 rows are float64; float32 stays so
    import jax.numpy as jnp

    def jacrev(W: np.ndarray, x: np.ndarray) -> Callable[[], Any]:
        # as the JAX documentation's first example calls it: no jit
        Wj, xj = jnp.asarray(W, dtype=dtype), jnp.asarray(x, dtype=dtype)
        f = jax.jacrev(lambda M: jax.nn.softmax(M.T @ xj))
        return lambda: f(Wj).block_until_ready()

    def jitted(W: np.ndarray, x: np.ndarray) -> Callable[[], Any]:
        # jitted, and the warm-up call compiles, so compiling is not timed: kind to JAX
        Wj, xj = jnp.asarray(W, dtype=dtype), jnp.asarray(x, dtype=dtype)
        f = jax.jit(jax.jacrev(lambda M: jax.nn.softmax(M.T @ xj)))
        return lambda: f(Wj).block_until_ready()

    return {"jax.jacrev": jacrev, "jax.jacrev (jit)": jitted}


PEERS = ("torch.func.jacrev", "torch.autograd.functional.jacobian", "jax.jacrev", "jax.jacrev (jit)")


def peer_time(name: str, n: int, dtype: Any, repeat: int, thp: bool = False) -> float:
    """Time one peer in a child process, so that running out of memory costs only that cell.

    The child builds the same W and x (same seed); inf when the peer is missing or fails.
    """
    cmd = [
        sys.executable,
        __file__,
        "--peer",
        name,
        "--n",
        str(n),
        "--dtype",
        np.dtype(dtype).name,
        "--repeat",
        str(repeat),
    ]
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "1" if thp else "0"}  # torch's large-page allocator
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    try:
        return float(proc.stdout.split()[-1])
    except (ValueError, IndexError):
        return float("inf")


def layer_for(n: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return (rng.standard_normal((n, n)) / np.sqrt(n)).astype(dtype), rng.standard_normal(n).astype(dtype)


def run_peer(name: str, n: int, dtype: Any, repeat: int) -> None:
    def ours(W: np.ndarray, x: np.ndarray) -> Callable[[], Any]:
        return lambda: smjac.jacobian(W, x)

    # smjac too, timed in a fresh process like each peer: the peers' ratios are against this
    peers = {"smjac": ours, **torch_peers(dtype), **jax_peers(dtype)}
    if name not in peers:
        print("nan")
        return
    W, x = layer_for(n, dtype)
    run = peers[name](W, x)
    run()  # a warm-up call: first-call set-up is not what is compared
    print(best_of(run, repeat))


def one_row_table(header: str, align: str, row: str) -> list[str]:
    """A markdown table of one measured row, which is also printed as soon as it is known."""
    print(row, flush=True)
    return [header, align, row]


# ---------------------------------------------------------------- sections


def jacobian_section(sizes: list[int], dtypes: list[Any], repeat: int) -> list[str]:
    rows = [
        "| n = K | dtype | output | fresh fill | smjac | smjac ÷ fill | smjac ÷ fill on all cores "
        "| into out= ÷ preallocated fill | chain ÷ fill | np.kron ÷ smjac | post's loops ÷ smjac | peers ÷ smjac |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n in sizes:
        for dtype in dtypes:
            rows.append(jacobian_row(n, dtype, repeat))
            print(rows[-1], flush=True)
    return rows


def preallocated(
    W: np.ndarray, x: np.ndarray, shape: tuple[int, int], dtype: Any, repeat: int
) -> tuple[float, float]:
    """Seconds to fill an existing array, and to write the Jacobian into it with ``out=``."""
    out = fresh_fill(shape, dtype)
    return best_of(lambda: out.fill(2.0), repeat), best_of(lambda: smjac.jacobian(W, x, out=out), repeat)


def jacobian_row(n: int, dtype: Any, repeat: int) -> str:
    W, x = layer_for(n, dtype)
    shape = (n, n * n)
    nbytes = n**3 * np.dtype(dtype).itemsize
    fill = best_of(lambda: fresh_fill(shape, dtype), repeat)
    fill_all = best_of(lambda: fresh_fill_all_cores(shape, dtype), repeat)
    ours = best_of(lambda: smjac.jacobian(W, x), repeat)
    chain = best_of(lambda: smjac.jacobian(W, x, method="chain"), repeat)
    pre, into = preallocated(W, x, shape, dtype, repeat)
    A = smjac.softmax_jacobian(smjac.forward(W, x).h)
    kron = best_of(lambda: np.kron(A, x[None, :]), repeat)
    loops = f"{best_of(lambda: post_jacobian(W, x), 1) / ours:.0f}×" if n <= 64 else "–"
    alone = peer_time("smjac", n, dtype, repeat)  # in a fresh process, as each peer is
    peers = [f"{name} {peer_time(name, n, dtype, repeat) / alone:.1f}×" for name in PEERS]
    peers += [
        f"{name} (large pages) {peer_time(name, n, dtype, repeat, thp=True) / alone:.1f}×"
        for name in PEERS
        if name.startswith("torch")
    ]
    peers = [p.replace("inf×", "failed (out of memory or error)") for p in peers]
    return (
        f"| {n} | {np.dtype(dtype).name} | {nbytes / 2**20:,.0f} MiB | {fill:.3f} s | {ours:.3f} s "
        f"| {ours / fill:.2f} | {ours / fill_all:.2f} | {into / pre:.2f} | {chain / fill:.2f} | {kron / ours:.2f} | {loops} "
        f"| {'; '.join(p for p in peers if 'nan' not in p) or 'not installed'} |"
    )


def gradient_section(n: int, K: int, repeat: int) -> list[str]:
    rng = np.random.default_rng(1)
    W = rng.standard_normal((n, K)) * 0.01
    x = rng.standard_normal(n)
    fill = best_of(lambda: fresh_fill((n, K), np.float64), repeat)
    ours = best_of(lambda: smjac.grad(W, x, target=3), repeat)
    peer = "not installed"
    try:
        import torch

        Wt, xt = torch.tensor(W, requires_grad=True), torch.tensor(x)
        target = torch.tensor([3])

        def torch_grad() -> Any:
            Wt.grad = None
            loss = torch.nn.functional.cross_entropy((xt @ Wt)[None, :], target)
            loss.backward()
            return Wt.grad

        peer = f"torch autograd {best_of(torch_grad, repeat) / ours:.2f}×"
    except ImportError:
        pass
    return one_row_table(
        "| n × K | fresh n×K fill | smjac.grad | smjac ÷ fill | peer ÷ smjac |",
        "|---|---:|---:|---:|---|",
        f"| {n} × {K} | {fill:.3f} s | {ours:.3f} s | {ours / fill:.2f} | {peer} |",
    )


# ---------------------------------------------------------------- issue 14's targets
#
# Each target runs in three child processes (see in_child): the bound and smjac without torch, and
# smjac with torch's default allocator and with its large-page one (THP_MEM_ALLOC_ENABLE=1, read
# when torch starts). Inside a child the cells run in interleaved rounds (each a rested, warmed-up
# block per round: see block), and each reports the median of its rounds.


def duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 0.01 else f"{seconds * 1e3:,.0f} ms"


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


SETTLE = 0.3  # seconds of rest before each block: longer than OpenBLAS's idle workers spin (≈0.1 s)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def block(fn: Callable[[], Any], long: bool) -> float:
    """One cell's time in one round: after a rest, an untimed warm-up call, then the median of
    at least three calls lasting SETTLE or more together. In a ``long`` row (a cell of a second
    or more) every cell is timed once, straight after the rest: the same for all of them.

    Why the rest and the warm-up: after a threaded BLAS call OpenBLAS's idle workers spin for
    about 0.1 s, and whatever runs next on this 2-core machine shares a core with them (smjac's
    N = 1000 gradient took twice as long right after the bound's threaded GEMM). A cell timed
    call by call after another would carry its predecessor's spinning, not its own cost. The
    warm-up also takes the odd first touch of memory the host has just taken back (a fresh
    1.6 GB fill: 70 ms, and now and then 700 ms).
    """
    gc.collect()  # once a block: with torch loaded a collection takes milliseconds
    time.sleep(SETTLE)
    if long:
        return timed(fn)
    fn()
    times: list[float] = []
    while len(times) < 3 or sum(times) < SETTLE:
        times.append(timed(fn))
    return statistics.median(times)


def rounds(cells: dict[str, Callable[[], Any]], count: int) -> dict[str, float]:
    """Each cell's median over ``count`` interleaved rounds of :func:`block` (who goes first
    rotates), after one call each for first-call set-up, which also tells a long row."""
    times: dict[str, list[float]] = {name: [] for name in cells}
    long = max(timed(fn) for fn in cells.values()) >= 1.0
    for r in range(count):
        names = list(cells)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(block(cells[name], long))
    return {name: statistics.median(t) for name, t in times.items()}


def blas_2threads(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with numpy's BLAS on every core (smjac limits it only while it runs)."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")  # found once, not on every call

    def run() -> Any:
        with blas.limit(limits=os.cpu_count() or 1):
            return fn()

    return run


def torch_or_none() -> Any:
    if os.environ.get("SMJAC_BENCH_NO_TORCH"):
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def cells_grad1(dtype: Any, n: int, K: int) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(1)
    W = (rng.standard_normal((n, K)) * 0.01).astype(dtype)
    x = rng.standard_normal(n).astype(dtype)
    # the bound is the sum of its parts, each timed on its own (see target_row)
    cells: dict[str, Callable[[], Any]] = {
        "bound: read W": blas_2threads(lambda: x @ W),  # all cores
        "bound: write n×K": lambda: fresh_fill_all_cores((n, K), dtype),
        "smjac": lambda: smjac.grad(W, x, target=3),
    }
    torch = torch_or_none()
    if torch is not None:
        Wt, xt, target = torch.tensor(W, requires_grad=True), torch.tensor(x), torch.tensor([3])

        def torch_grad() -> Any:
            Wt.grad = None
            torch.nn.functional.cross_entropy((xt @ Wt)[None, :], target).backward()
            return Wt.grad

        cells["torch"] = torch_grad
    return cells


def cells_batch(dtype: Any, N: int, n: int, K: int) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(2)
    W = (rng.standard_normal((n, K)) / np.sqrt(n)).astype(dtype)
    X = rng.standard_normal((N, n)).astype(dtype)
    t = rng.integers(0, K, N)

    Z = X @ W

    def halve(r0: int, r1: int) -> None:
        Z[r0:r1] *= 0.5

    # the bound is the sum of its parts, each timed on its own (see target_row)
    cells: dict[str, Callable[[], Any]] = {
        "bound: forward GEMM": blas_2threads(lambda: X @ W),
        "bound: gradient GEMM": blas_2threads(lambda: X.T @ Z),
        "bound: one pass": lambda: on_all_cores(N, halve),
        "smjac": lambda: smjac.grad(W, X, target=t),
    }
    torch = torch_or_none()
    if torch is not None:
        Wt, Xt, tt = torch.tensor(W, requires_grad=True), torch.tensor(X), torch.tensor(t)

        def torch_grad() -> Any:
            Wt.grad = None
            torch.nn.functional.cross_entropy(Xt @ Wt, tt, reduction="sum").backward()
            return Wt.grad

        cells["torch"] = torch_grad
    return cells


def cells_forward(dtype: Any, N: int, n: int, K: int) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(3)
    W = (rng.standard_normal((n, K)) / np.sqrt(n)).astype(dtype)
    X = rng.standard_normal((N, n)).astype(dtype)

    Z = X @ W

    def softmax_pass() -> Any:  # one pass reading z and writing p into fresh memory, all cores
        P = np.empty_like(Z)

        def rows(r0: int, r1: int) -> None:
            np.exp(Z[r0:r1], out=P[r0:r1])

        on_all_cores(N, rows)
        return P

    cells: dict[str, Callable[[], Any]] = {
        "bound: GEMM": blas_2threads(lambda: X @ W),
        "bound: one pass": softmax_pass,
        "smjac": lambda: smjac.forward(W, X),
    }
    torch = torch_or_none()
    if torch is not None:
        Wt, Xt = torch.tensor(W), torch.tensor(X)

        def torch_forward() -> Any:
            with torch.no_grad():
                Z = Xt @ Wt
                return Z, torch.softmax(Z, dim=1)

        cells["torch"] = torch_forward
    return cells


def cells_check(n: int, K: int) -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(4)
    W, x = rng.standard_normal((n, K)) / np.sqrt(n), rng.standard_normal(n)
    cells: dict[str, Callable[[], Any]] = {"smjac": lambda: smjac.check(W, x)}
    torch = torch_or_none()
    if torch is not None:
        Wt, xt = torch.tensor(W, requires_grad=True), torch.tensor(x, requires_grad=True)
        f = lambda M, v: torch.softmax(M.T @ v, dim=0)  # noqa: E731
        cells["torch"] = lambda: torch.autograd.gradcheck(f, (Wt, xt), fast_mode=False)
    return cells


def child_cells(spec: list[str], repeat: int) -> dict[str, float]:
    kind, *rest = spec
    if kind == "grad1":
        cells = cells_grad1(np.dtype(rest[0]).type, int(rest[1]), int(rest[2]))
    elif kind == "batch":
        cells = cells_batch(np.dtype(rest[0]).type, *(int(v) for v in rest[1:]))
    elif kind == "forward":
        cells = cells_forward(np.dtype(rest[0]).type, *(int(v) for v in rest[1:]))
    else:
        cells = cells_check(int(rest[0]), int(rest[1]))
    if torch_or_none() is not None:  # a peer's child: the bound is timed in a child of its own
        cells = {name: fn for name, fn in cells.items() if not name.startswith("bound: ")}
    return rounds(cells, repeat)


def in_child(spec: list[str], repeat: int, torch: str) -> dict[str, float]:
    """Medians from a child process: ``torch`` is "" (no torch: smjac and the bound), "default"
    or "large pages" (smjac and torch; torch's allocator is chosen when torch starts).

    The bound is kept away from torch because torch's default allocator leaves memory in 4 KiB
    pieces: in its company a fresh 1.6 GB fill took 1.2 s instead of 0.07 s (the kernel
    compacts memory for numpy's large pages), which would make any bound meaningless."""
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "1" if torch == "large pages" else "0"}
    if not torch:
        env["SMJAC_BENCH_NO_TORCH"] = "1"
    cmd = [sys.executable, __file__, "--cells", ",".join(spec), "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    try:
        medians: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(proc.stderr[-2000:], file=sys.stderr)
        return {}
    parts = [name for name in medians if name.startswith("bound: ")]
    if parts:  # the bound is the sum of its parts
        medians["bound"] = sum(medians.pop(name) for name in parts)
    return medians


def target_row(label: str, spec: list[str], repeat: int, target: float, peer_target: float | None) -> str:
    """One row: bound and smjac (a child without torch), their ratio against the target, and
    torch both ways, each against smjac in the same child."""
    alone = in_child(spec, repeat, "")
    # without torch its two children would only time smjac again: a row takes a third of the time
    peers = importlib.util.find_spec("torch") is not None and not os.environ.get("SMJAC_BENCH_NO_TORCH")
    off, on = (in_child(spec, repeat, torch) for torch in ("default", "large pages")) if peers else ({}, {})
    if "smjac" not in alone:
        return f"| {label} | failed | | | | | | | load {load()} |"
    cells = [f"| {label}"]
    if "bound" in alone:
        ratio = alone["smjac"] / alone["bound"]
        cells += [
            duration(alone["bound"]),
            duration(alone["smjac"]),
            f"{ratio:.2f} ({'met' if ratio <= target else 'NOT met'})",
        ]
    else:
        cells += ["–", duration(alone["smjac"]), "–"]
    if "torch" in off and "torch" in on:
        faster_off, faster_on = off["torch"] / off["smjac"], on["torch"] / on["smjac"]
        verdict = "" if peer_target is None else f" ({'met' if faster_on >= peer_target else 'NOT met'})"
        cells += [
            duration(off["torch"]),
            duration(on["torch"]),
            f"{faster_off:.2f}×",
            f"{faster_on:.2f}×{verdict}",
        ]
    else:
        cells += ["not installed"] * 4
    row = " | ".join(cells) + f" | {load()} |"
    print(row, flush=True)
    return row


TARGET_HEADER = [
    "| case | bound | smjac | smjac ÷ bound | torch | torch, large pages | torch ÷ smjac | torch (large pages) ÷ smjac | load (1/5/15 min) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
]


def grad1_section(n: int, K: int, repeat: int) -> list[str]:
    rows = list(TARGET_HEADER)
    for dtype in ("float64", "float32"):
        spec = ["grad1", dtype, str(n), str(K)]
        rows.append(target_row(f"{n} × {K} {dtype}", spec, repeat, 1.15, 1.3))
    return rows


def batch_section(Ns: list[int], n: int, K: int, repeat: int) -> list[str]:
    rows = list(TARGET_HEADER)
    for dtype in ("float64", "float32"):
        for N in Ns:
            spec = ["batch", dtype, str(N), str(n), str(K)]
            rows.append(target_row(f"N = {N:,} {dtype}", spec, repeat, 1.25, 1.5))
    return rows


def forward_section(Ns: list[int], n: int, K: int, repeat: int) -> list[str]:
    rows = list(TARGET_HEADER)
    for dtype in ("float64", "float32"):
        for N in Ns:
            spec = ["forward", dtype, str(N), str(n), str(K)]
            rows.append(target_row(f"N = {N:,} {dtype}", spec, repeat, 1.2, None))
    return rows


def check_section(n: int, K: int, repeat: int) -> list[str]:
    rows = list(TARGET_HEADER)
    rows.append(target_row(f"check, n = K = {n}", ["check", str(n), str(K)], repeat, 1.0, 1.0))
    rows.append("")
    rows.append("(here the target is smjac ≤ torch.autograd.gradcheck: torch ÷ smjac ≥ 1)")
    return rows


PEAK = """
import json, sys, tracemalloc
import numpy as np
import smjac
N, n, K, dtype = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(2)
W = (rng.standard_normal((n, K)) / np.sqrt(n)).astype(dtype)
X = rng.standard_normal((N, n)).astype(dtype)
t = rng.integers(0, K, N)
tracemalloc.start()  # numpy reports its array memory to tracemalloc
g = smjac.grad(W, X, target=t)
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "inputs": W.nbytes + X.nbytes + t.nbytes,
                  "output": g.W.nbytes + g.b.nbytes + g.z.nbytes, "NK": N * K * np.dtype(dtype).itemsize}))
"""


def peak_section(Ns: list[int], n: int, K: int) -> list[str]:
    rows = [
        "| case | smjac.grad's peak allocation | allowed: output + two N×K buffers | met |",
        "|---|---:|---:|---|",
    ]
    for dtype in ("float64", "float32"):
        for N in Ns:
            proc = subprocess.run(
                [sys.executable, "-c", PEAK, str(N), str(n), str(K), dtype], capture_output=True, text=True
            )
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            allowed = m["output"] + 2 * m["NK"]
            row = (
                f"| N = {N:,} {dtype} | {m['peak'] / 2**20:,.0f} MiB | {allowed / 2**20:,.0f} MiB "
                f"| {'yes' if m['peak'] <= allowed else 'NO'} |"
            )
            print(row, flush=True)
            rows.append(row)
    return rows


BIGX = """
import json, sys, time
import numpy as np
import smjac

path, n, K = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def hwm():
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))) * 1024
rng = np.random.default_rng(5)
W = (rng.standard_normal((n, K)) / np.sqrt(n)).astype(np.float32)
base = hwm()
x = inputs.map_npy(path)
start = time.perf_counter()
g = smjac.grad_chunks(W, x, target=1, reduce="mean")
grad_s = time.perf_counter() - start
start = time.perf_counter()
rows = sum(len(f.p) for _, f in smjac.forward_chunks(W, x))
fwd_s = time.perf_counter() - start
print(json.dumps({"base": base, "peak": hwm(), "grad": grad_s, "forward": fwd_s, "rows": rows,
                  "finite": bool(np.isfinite(g.W).all())}))
"""


def bigx_section(nbytes: int) -> list[str]:
    """grad_chunks and forward_chunks over a float32 x of ``nbytes`` in an .npy file, mapped."""
    n, K = 1024, 16  # a narrow layer: the walk over x, not the arithmetic, is what is measured
    N = max(2, nbytes // (n * 4))
    with tempfile.TemporaryDirectory(dir=ROOT) as work:
        path = Path(work) / "x.npy"
        x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(N, n))
        rng = np.random.default_rng(6)
        for r in range(0, N, 65536):
            x[r : r + 65536] = rng.standard_normal((min(65536, N - r), n), dtype=np.float32)
        x.flush()
        del x
        proc = subprocess.run(
            [sys.executable, "-c", BIGX, str(path), str(n), str(K)], capture_output=True, text=True
        )
        size = path.stat().st_size
    try:
        m = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(proc.stderr[-2000:], file=sys.stderr)
        return ["failed"]
    return one_row_table(
        "| x (float32, memory-mapped) | grad_chunks | forward_chunks | peak RSS | of which before mapping | finite |",
        "|---|---:|---:|---:|---:|---|",
        f"| {N:,} × {n} = {size / 2**30:.2f} GiB, K = {K} | {m['grad']:.1f} s | {m['forward']:.1f} s "
        f"| {m['peak'] / 2**20:,.0f} MiB | {m['base'] / 2**20:,.0f} MiB | {'yes' if m['finite'] else 'NO'} |",
    )


# The child reports its own high-water mark of resident memory. VmHWM starts afresh at exec;
# getrusage's ru_maxrss would carry the parent's over (on Linux it survives fork and exec).
STREAM = """
import sys
from smjac.cli import app
code = 0
try:
    app(sys.argv[1:])
except SystemExit as e:
    code = e.code
hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(hwm, code, file=sys.stderr)
"""


def streaming_section(n: int) -> list[str]:
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory(dir=ROOT) as work:
        folder = Path(work)
        np.save(folder / "W.npy", rng.standard_normal((n, n)) / np.sqrt(n))
        np.save(folder / "x.npy", rng.standard_normal(n))
        out = folder / "J.npy"
        start = time.perf_counter()
        args = [
            "jacobian",
            "-W",
            str(folder / "W.npy"),
            "-x",
            str(folder / "x.npy"),
            "-o",
            str(out),
            "--quiet",
        ]
        proc = subprocess.run([sys.executable, "-c", STREAM, *args], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        peak_kib, code = proc.stderr.split()[-2:]
        size = out.stat().st_size if out.exists() else 0
        ok = code in ("0", "None") and size > 0 and np.load(out, mmap_mode="r").shape == (n, n * n)
    row = f"| {n} × {n * n} float64 | {size / 2**30:.2f} GiB | {int(peak_kib) / 1024:.0f} MiB | {seconds:.1f} s | {'yes' if ok else 'NO'} |"
    return one_row_table(
        "| Jacobian | file | peak memory (RSS) | time | file reads back |", "|---|---:|---:|---:|---|", row
    )


STARTUP_TARGET = 1.3  # smjac forward on the sample ÷ python -c "import numpy" (issue 23)


def modules_loaded(cmd: list[str], env: dict[str, str]) -> set[str]:
    """The modules a fresh process imports, as ``-X importtime`` lists them: a count that says
    what slipped in when the time does (tests/test_startup.py holds the list itself)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd], capture_output=True, text=True, cwd=ROOT, env=env
    )
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", proc.stderr, flags=re.M))


def startup_section(runs: int) -> list[str]:
    smjac_bin = shutil.which("smjac") or str(Path(sys.executable).parent / "smjac")
    numpy_cmd = [sys.executable, "-c", "import numpy"]
    args = ["forward", "-W", "samples/blog/W.json", "-x", "samples/blog/x.json"]
    smjac_cmd = [smjac_bin, *args]
    # As a user runs it: with bytecode cached (an environment that forbids writing it would time
    # compiling smjac's sources instead of importing them), after one warm-up run of each.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for cmd in (numpy_cmd, smjac_cmd):
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    wall: dict[str, list[float]] = {"numpy": [], "smjac": []}
    cpu: dict[str, list[float]] = {"numpy": [], "smjac": []}
    for _ in range(runs):  # alternate, so that a busy moment hits both
        for name, cmd in (("numpy", numpy_cmd), ("smjac", smjac_cmd)):
            start, start_cpu = time.perf_counter(), children_cpu()
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(children_cpu() - start_cpu)
    na, nb = (statistics.median(wall[k]) for k in ("numpy", "smjac"))
    # each ratio is the median of the runs' pairs: a drift in the machine's speed moves both sides
    ratio, cpu_ratio = (
        statistics.median(b / a for a, b in zip(t["numpy"], t["smjac"], strict=True)) for t in (wall, cpu)
    )
    numpy_modules = modules_loaded(["-c", "import numpy"], env)
    smjac_modules = modules_loaded(["-m", "smjac", *args], env)
    verdict = "met" if ratio <= STARTUP_TARGET else "NOT met"
    return one_row_table(
        '| python -c "import numpy" | smjac forward (sample) | ratio (target ≤ 1.3) | CPU time ratio '
        "| modules: numpy's / smjac's beyond them |",
        "|---:|---:|---:|---:|---:|",
        f"| {na * 1e3:.0f} ms | {nb * 1e3:.0f} ms | {ratio:.2f} ({verdict}) | {cpu_ratio:.2f} "
        f"| {len(numpy_modules)} / {len(smjac_modules - numpy_modules)} |",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument(
        "--sections", default="grad1,batch,peak,forward,check,bigx,jacobian,streaming,startup"
    )
    parser.add_argument("--sizes", help="Jacobian sizes n = K, comma-separated (default 64,256,512,1024)")
    parser.add_argument("--batches", help="batch sizes N, comma-separated (default 1000,10000,100000)")
    parser.add_argument("--peer", help=argparse.SUPPRESS)  # the child side of peer_time
    parser.add_argument("--cells", help=argparse.SUPPRESS)  # the child side of in_child
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="timed runs of each cell, best taken (default 5; 2 with --quick); peers add an untimed warm-up",
    )
    args = parser.parse_args()
    if args.peer:
        run_peer(args.peer, args.n, np.dtype(args.dtype).type, args.repeat)
        return
    if args.cells:
        print(json.dumps(child_cells(args.cells.split(","), args.repeat)))
        return
    sections = args.sections.split(",")
    quick = args.quick
    print(
        f"smjac {smjac.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores\n"
    )
    report: list[str] = []
    repeat = 2 if quick else args.repeat
    Ns = [200, 1000] if quick else [1000, 10000, 100000]
    if args.batches:
        Ns = [int(N) for N in args.batches.split(",")]
    nb, Kb = (64, 100) if quick else (512, 1000)
    targets = [
        (
            "grad1",
            "One sample: smjac.grad (cross-entropy) against W.T@x + a fresh n×K fill, both on all cores",
            lambda: grad1_section(*((256, 2000) if quick else (4096, 50000)), repeat),
        ),
        (
            "batch",
            f"Batches at n = {nb}, K = {Kb}: smjac.grad against two GEMMs + one pass over N×K",
            lambda: batch_section(Ns, nb, Kb, repeat),
        ),
        ("peak", "Batches: peak memory of smjac.grad", lambda: peak_section(Ns, nb, Kb)),
        (
            "forward",
            f"Batches at n = {nb}, K = {Kb}: smjac.forward against one GEMM + one pass writing p",
            lambda: forward_section(Ns, nb, Kb, repeat),
        ),
        (
            "check",
            "check against torch.autograd.gradcheck (fast_mode=False)",
            lambda: check_section(*((20, 20) if quick else (100, 100)), repeat),
        ),
        (
            "bigx",
            "A batch larger than the input cap, memory-mapped, in row chunks",
            lambda: bigx_section(2**24 if quick else 6 * 2**30),
        ),
    ]
    for name, title, run in targets:
        if name in sections:
            print(f"\n## {title}  (load {load()})")
            report += [f"## {title}", "", *run(), ""]
    if "jacobian" in sections:
        print("## Jacobian dh/dW")
        sizes = [16, 64] if quick else [64, 256, 512, 1024]
        if args.sizes:
            sizes = [int(size) for size in args.sizes.split(",")]
        report += [
            "## Jacobian dh/dW",
            "",
            *jacobian_section(sizes, [np.float64, np.float32], 2 if quick else args.repeat),
            "",
        ]
    if "gradient" in sections:
        print("\n## Gradient")
        n, K = (256, 2000) if quick else (4096, 50000)
        report += ["## Gradient", "", *gradient_section(n, K, 2 if quick else args.repeat), ""]
    if "streaming" in sections:
        print("\n## Streaming")
        report += ["## Streaming", "", *streaming_section(64 if quick else 820), ""]
    if "startup" in sections:
        print("\n## Start-up")
        report += ["## Start-up", "", *startup_section(5 if quick else 41), ""]
    print("\n" + "\n".join(report))


if __name__ == "__main__":
    main()
