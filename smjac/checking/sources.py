"""The values verify compares an answer with, made a block of rows at a time, in each arrangement.

A source is the truth or a mistaken answer of the catalogue: ``std_rows`` gives rows of its
per-sample matrix in the standard arrangement (one row per output), ``gather`` any entries, and
``max_abs`` its largest magnitude (the scale its tolerance is taken on). An answer may come
transposed, or (dh/dW) with its columns in ``j·K + i`` order: a frame says which, and
:func:`to_std` where each of its entries sits in the standard arrangement.
"""

from __future__ import annotations

import numpy as np

from ..maths import (
    BLOCK_BYTES,
    Array,
    Layer,
    Of,
    Target,
    jacobian_blocks,
    jacobian_shape,
    layer_grad,
    row_blocks,
)
from ..maths.forward_pass import layer_probabilities
from ..maths.functions import complement
from .problem import Dz, Problem


class Dense:
    """A small derivative held whole: N samples of R×C in the standard arrangement."""

    def __init__(self, arr: Array) -> None:
        self.arr = arr
        self.max_abs = float(np.max(np.abs(arr))) if arr.size else 0.0

    def std_rows(self, s: int, r0: int, r1: int) -> Array:
        return self.arr[s, r0:r1]

    def gather(self, s: int, rr: np.ndarray, cc: np.ndarray) -> Array:
        return self.arr[s][rr, cc]


class Chained:
    """A Jacobian made from a per-sample dh/dz (:class:`~smjac.checking.problem.Dz`) a block of rows
    at a time: dh/dz or dh/db itself, ``dh/dx = dh/dz · Wᵀ``, or ``dh/dW[t, i·n + j] = dh/dz[t, i] · x_j``.

    No K×K matrix is held (nor the K²n of dh/dW): a block's rows of dh/dz are made from O(N·K)
    numbers when asked for. ``max_abs`` takes one pass over the rows, in blocks of ``block_bytes``.
    """

    def __init__(self, dz: Dz, L: Layer, target: Target, block_bytes: int) -> None:
        self.dz, self.L, self.target, self.block_bytes = dz, L, target, block_bytes
        N, K = dz.d.shape
        self.cols = target.columns(K, L.n)
        top = 0.0
        with np.errstate(invalid="ignore", over="ignore"):
            for s in range(N):
                scale = target.chain_scale(L, s)  # max|row| = max|row of dh/dz| · scale, when known
                for r0, r1 in row_blocks(K, (self.cols if scale is None else K) * 8, block_bytes):
                    rows = self.std_rows(s, r0, r1) if scale is None else dz.rows(s, r0, r1)
                    m = float(np.max(np.abs(rows), initial=0.0)) * (1.0 if scale is None else scale)
                    top = m if m != m else max(top, m)  # NaN stays: the tolerance is then no evidence
        self.max_abs = top

    def std_rows(self, s: int, r0: int, r1: int) -> Array:
        # rows of dh/dz are K wide, of the result maybe fewer (dh/dx: n): made a block's worth at a time
        K, L = self.dz.d.shape[1], self.L
        spans = row_blocks(r1 - r0, K * 8, self.block_bytes)
        with np.errstate(invalid="ignore", over="ignore"):
            if len(spans) == 1:
                return self.target.chain_rows(self.dz.rows(s, r0, r1), L, s)
            none = self.target.chain_rows(self.dz.rows(s, r0, r0), L, s)  # no rows: the result's dtype
            out = np.empty((r1 - r0, self.cols), dtype=none.dtype)
            for a0, a1 in spans:
                self.target.chain_rows(self.dz.rows(s, r0 + a0, r0 + a1), L, s, out=out[a0:a1])
            return out

    def gather(self, s: int, rr: np.ndarray, cc: np.ndarray) -> Array:
        with np.errstate(invalid="ignore", over="ignore"):
            got = self.target.chain_entries(lambda r, c: self.dz.entries(s, r, c), rr, cc, self.L, s)
        if got is not None:
            return got
        # (dh/dz · Wᵀ)[t, j] from whole rows: K×n a sample, no larger than W
        return self.std_rows(s, 0, self.dz.d.shape[1])[rr, cc]


Source = Dense | Chained


def to_std(frame: str, r: np.ndarray, c: np.ndarray, K: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Where entry (r, c) of an answer in ``frame`` sits in the standard arrangement."""
    if frame == "std":
        return r, c
    if frame == "T":
        return c, r
    if frame == "co":  # column j·K + i holds w[i,j], which belongs at i·n + j
        return r, (c % K) * n + c // K
    return c, (r % K) * n + r // K  # "T+co"


def frame_block(src: Source, frame: str, s: int, r0: int, r1: int, cols: int, K: int, n: int) -> Array:
    if frame == "std":
        return src.std_rows(s, r0, r1)
    rr, cc = to_std(frame, np.arange(r0, r1)[:, None], np.arange(cols)[None, :], K, n)
    return src.gather(s, *np.broadcast_arrays(rr, cc))


def std_from_frame(E: Array, frame: str, K: int, n: int) -> Array:
    """A whole per-sample matrix in ``frame``, put back in the standard arrangement."""
    if frame in ("T", "T+co"):
        E = E.T
    if frame in ("co", "T+co"):
        E = E.reshape(E.shape[0], n, K).swapaxes(1, 2).reshape(E.shape[0], K * n)
    return E


def source(
    pr: Problem, dz: Dz | None = None, delta: Array | None = None, *, block_bytes: int = BLOCK_BYTES
) -> Source:
    """The derivative the problem asks for, built from a given dh/dz (dz) or dLoss/dz (delta)."""
    L = pr.L
    if pr.kind == "jacobian":
        assert dz is not None
        return Chained(dz, L, pr.wrt_target, block_bytes)
    assert delta is not None
    scale = 1 / L.N if pr.reduce == "mean" else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        if pr.kind == "grad_b":
            return Dense((delta.sum(axis=0) * scale)[None, None, :])
        A, B = L.weight_factors(L.X, delta)  # in W's own layout
        g = A.T @ B * scale
    return Dense(g[None])


def true_dz(L: Layer, of: Of) -> Dz:
    """The layer's own dh/dz (or dz/dz = I) as a :class:`Dz`: the floats :func:`smjac.maths.dh_dz`
    has, made from p alone."""
    N, K, dtype = L.N, L.K, L.W.dtype
    if of == "z":
        return Dz(np.ones((N, K), dtype=dtype), ())
    P = layer_probabilities(L)
    if L.function == "softmax":
        return Dz(P * complement(P), ((P, P),), L.temperature)
    return Dz(complement(P), ((np.broadcast_to(np.ones(1, dtype=dtype), (N, K)), P),), L.temperature)


def truth_source(pr: Problem, block_bytes: int = BLOCK_BYTES) -> Source:
    """The truth: a Jacobian made by blocks of rows from dh/dz (dh/dx whole, as smjac's closed form
    gives it: K×n a sample), a gradient whole (W's size)."""
    L = pr.L
    if pr.kind == "jacobian":
        blocks = jacobian_blocks(L, of=pr.of, wrt=pr.wrt)  # refuses a result past the float range
        if pr.wrt_target.factor == "weights":  # dh/dx: smjac's closed form, a sample at a time, no K×K
            J = np.empty((L.N, L.K, L.n), dtype=L.W.dtype)
            for s, rows in enumerate(blocks.rows):
                J[s] = rows
            return Dense(J)
        return Chained(true_dz(L, pr.of), L, pr.wrt_target, block_bytes)
    options = {} if pr.loss is None else pr.loss.options()
    g = layer_grad(L, target=pr.target, upstream=pr.upstream, reduce=pr.reduce, **options)
    return Dense(g.b[None, None, :] if pr.kind == "grad_b" else g.W[None])


def frame_shapes(pr: Problem) -> dict[str, tuple[int, int]]:
    """Each arrangement an answer may come in, with its per-sample rows and columns."""
    L = pr.L
    if pr.kind == "jacobian":
        _, R, C = jacobian_shape(L, of=pr.of, wrt=pr.wrt)
    elif pr.kind == "grad":
        R, C = L.as_given(L.W).shape
    else:
        return {"std": (1, L.K)}
    frames = {"std": (R, C), "T": (C, R)}
    if pr.kind == "jacobian" and pr.wrt_target.factored and L.n > 1 and L.K > 1:
        frames |= {"co": (R, C), "T+co": (C, R)}
    return frames


def answer_shapes(pr: Problem, R: int, C: int) -> list[tuple[int, ...]]:
    """The answer shapes that hold N samples of R×C (smjac's CSV writes a stack as N·R rows)."""
    N = pr.L.N
    if pr.kind == "grad_b":
        return [(C,), (1, C), (C, 1)]
    if pr.kind == "grad":
        return [(R, C)]
    return [(N, R, C), (N * R, C)] if pr.L.batched else [(R, C), (1, R, C)]


FRAME_IDS = {
    "std": (),
    "T": ("transposed",),
    "co": ("column-order",),
    "T+co": ("transposed", "column-order"),
}
