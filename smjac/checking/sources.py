"""The values verify compares an answer with, made a block of rows at a time, in each arrangement.

A source is the truth or a mistaken answer of the catalogue: ``std_rows`` gives rows of its
per-sample matrix in the standard arrangement (one row per output), ``gather`` any entries, and
``max_abs`` its largest magnitude (the scale its tolerance is taken on). An answer may come
transposed, or (dh/dW) with its columns in ``j·K + i`` order: a frame says which, and
:func:`to_std` where each of its entries sits in the standard arrangement.
"""

from __future__ import annotations

import numpy as np

from ..maths import Array, jacobian_shape, layer_grad, layer_jacobian
from ..maths.jacobians import dfdz_or_identity
from .problem import Problem


class Dense:
    """A small derivative held whole: N samples of R×C in the standard arrangement."""

    def __init__(self, arr: Array) -> None:
        self.arr = arr
        self.max_abs = float(np.max(np.abs(arr))) if arr.size else 0.0

    def std_rows(self, s: int, r0: int, r1: int) -> Array:
        return self.arr[s, r0:r1]

    def gather(self, s: int, rr: np.ndarray, cc: np.ndarray) -> Array:
        return self.arr[s][rr, cc]


class Outer:
    """dh/dW without its K²n entries: ``J[s, t, i·n + j] = A[s, t, i] · x[s, j]``, made by rows."""

    def __init__(self, A: Array, X: Array) -> None:
        self.A, self.X = A, X
        with np.errstate(invalid="ignore", over="ignore"):
            per_sample = np.max(np.abs(A), axis=(1, 2)) * np.max(np.abs(X), axis=1)
        self.max_abs = float(np.max(per_sample))

    def std_rows(self, s: int, r0: int, r1: int) -> Array:
        K, n = self.A.shape[1], self.X.shape[1]
        out = np.empty((r1 - r0, K, n), dtype=np.result_type(self.A, self.X))
        np.multiply(self.A[s, r0:r1, :, None], self.X[s, None, None, :], out=out)
        return out.reshape(r1 - r0, K * n)

    def gather(self, s: int, rr: np.ndarray, cc: np.ndarray) -> Array:
        n = self.X.shape[1]
        return self.A[s][rr, cc // n] * self.X[s][cc % n]


Source = Dense | Outer


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


def source(pr: Problem, A: Array | None = None, delta: Array | None = None) -> Source:
    """The derivative the problem asks for, built from a given dh/dz (A) or dLoss/dz (delta)."""
    L = pr.L
    if pr.kind == "jacobian":
        assert A is not None
        if pr.wrt == "W":
            return Outer(A, L.X)
        return Dense(A @ L.W.T if pr.wrt == "x" else A)
    if delta is None:
        assert A is not None
        with np.errstate(invalid="ignore", over="ignore"):
            delta = np.einsum("st,sti->si", pr.dloss_dh(), A)
    scale = 1 / L.N if pr.reduce == "mean" else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        if pr.kind == "grad_b":
            return Dense((delta.sum(axis=0) * scale)[None, None, :])
        g = L.X.T @ delta * scale if L.layout == "in-out" else (delta * scale).T @ L.X
    return Dense(g[None])


def truth_source(pr: Problem) -> Source:
    L = pr.L
    if pr.kind == "jacobian":
        if pr.wrt == "W":
            return Outer(np.ascontiguousarray(dfdz_or_identity(L, pr.of)), L.X)
        return Dense(layer_jacobian(L, of=pr.of, wrt=pr.wrt))
    options = {} if pr.loss is None else pr.loss.options()
    g = layer_grad(L, target=pr.target, upstream=pr.upstream, reduce=pr.reduce, **options)
    return Dense(g.b[None, None, :] if pr.kind == "grad_b" else g.W[None])


def frame_shapes(pr: Problem) -> dict[str, tuple[int, int]]:
    """Each arrangement an answer may come in, with its per-sample rows and columns."""
    L = pr.L
    if pr.kind == "jacobian":
        _, R, C = jacobian_shape(L, of=pr.of, wrt=pr.wrt)
    elif pr.kind == "grad":
        R, C = (L.n, L.K) if L.layout == "in-out" else (L.K, L.n)
    else:
        return {"std": (1, L.K)}
    frames = {"std": (R, C), "T": (C, R)}
    if pr.kind == "jacobian" and pr.wrt == "W" and L.n > 1 and L.K > 1:
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
