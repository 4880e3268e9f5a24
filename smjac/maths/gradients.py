"""Gradients of a loss through the layer: cross-entropy against targets, or any upstream dLoss/dh."""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError, ShapeError
from ._parallel import matmul_spans, matmul_tn
from .forward_pass import (
    CHUNK_BYTES,
    check_finite_W,
    layer_logits,
    layer_probabilities,
    release_rows,
    row_chunks,
    shifted_logits,
    softmax_rows,
)
from .functions import complement, log_softmax
from .jacobians import outer_fill
from .layer import DEFAULT_REDUCTION, REDUCTIONS, Layer, make_layer
from .numeric import Array, all_finite, as_float, check_choice, largest_float, peak_abs, pow2


class Gradient:
    """Gradients of a scalar loss through the layer.

    ``W`` has W's own shape and layout, ``b`` has K entries; both are summed (or averaged) over a
    batch. ``z`` (K or N×K) is per sample, and so is ``x`` (n or N×n), computed when first asked
    for (it takes a pass over W). ``loss`` is the cross-entropy when targets were given (summed or
    averaged likewise), else None. From :func:`grad_chunks`, ``z`` is None (not kept).
    """

    def __init__(self, W: Array, b: Array, z: Array | None, loss: float | None, layer: Layer) -> None:
        self.W, self.b, self.z, self.loss, self.layer = W, b, z, loss, layer

    def __repr__(self) -> str:
        return f"Gradient(W={self.W!r}, b={self.b!r}, z={self.z!r}, loss={self.loss!r})"

    @cached_property
    def x(self) -> Array:
        L = self.layer
        if self.z is None:
            raise InputError("dLoss/dx needs δ per sample, which grad_chunks does not keep; use grad")
        check_finite_W(L)  # δ·Wᵀ reads W itself
        delta = self.z if L.batched else self.z[None]
        # δ·Wᵀ's partial sums can overflow where it does not: then scale δ and W by powers of two
        dmax, wmax = peak_abs(delta), peak_abs(L.W)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if dmax * wmax * L.K <= largest_float(L.W.dtype) / 4:
                gx = matmul_spans(delta, L.W.T)
            else:
                sd, sw = pow2(dmax), pow2(wmax)
                gx = matmul_spans(delta / sd, L.W.T / sw) * sd * sw
        if not all_finite(gx):
            raise InputError(f"dLoss/dx = δ·Wᵀ overflows {gx.dtype}; scale W or the upstream down")
        return L.out(gx)


def target_indices(target: int | ArrayLike, L: Layer) -> NDArray[np.intp]:
    try:
        t = np.asarray(target)
    except OverflowError:
        t = np.asarray(target, dtype=object)
    if t.dtype.kind == "O":  # integers past int64: out of any range
        raise InputError(
            f"target class {np.ravel(t)[0]} is out of range: K = {L.K}, so 0 ≤ target ≤ {L.K - 1}"
        )
    if t.dtype == bool or t.dtype.kind not in "iuf" or (t.dtype.kind == "f" and not np.all(t == np.round(t))):
        shown = np.array2string(np.ravel(t)[:5], separator=",").replace("\n", "")
        raise InputError(
            f"targets must be whole class indices from 0, not {shown}{'…' if t.size > 5 else ''}"
        )
    if t.ndim > 1 and sum(d > 1 for d in t.shape) > 1:
        raise ShapeError(f"targets must be a list, one class per sample, not a table of shape {t.shape}")
    with np.errstate(invalid="ignore"):
        if t.dtype.kind == "f" and np.any(np.abs(t) >= 2**62):
            raise InputError(f"a target class is out of range: K = {L.K}, so 0 ≤ target ≤ {L.K - 1}")
    t = t.astype(np.intp).reshape(-1)
    if t.size == 1:
        t = np.repeat(t, L.N)
    if t.size != L.N:
        raise ShapeError(f"{t.size} targets for a batch of {L.N} samples; give one class per sample")
    bad = (t < 0) | (t >= L.K)
    if np.any(bad):
        k = int(t[np.argmax(bad)])
        raise InputError(f"target class {k} is out of range: K = {L.K}, so 0 ≤ target ≤ {L.K - 1}")
    return t


def grad(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: str = DEFAULT_REDUCTION,
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
) -> Gradient:
    """Gradient of a loss with respect to the weights, in closed form, O(N·K·n).

    Give exactly one of ``target`` (cross-entropy loss ``−log p_target``) or ``upstream``
    (``g = dLoss/dh`` from whatever comes after the layer).

    Parameters
    ----------
    W, x, b, layout, function, temperature
        The layer, as in :func:`forward`.
    target : int or array_like of int, optional
        The true class, counted from 0; one per sample for a batch (or one for all).
    upstream : array_like, optional
        ``dLoss/dh``: K entries, or N×K for a batch.
    reduce : {"mean", "sum"}, default "mean"
        How the batch's gradients and losses are combined.

    Returns
    -------
    Gradient
        ``Gradient.W`` is ``dLoss/dW`` in W's own shape and layout.

    Notes
    -----
    The update is ``gᵀ · dh/dW``, which never needs the K × K·n Jacobian: with
    ``δ = (dh/dz)ᵀ g`` it is ``x δᵀ`` (in-out). For the softmax ``δ = p ⊙ (g − pᵀg) / T``; the
    post's last sentence says to sum the columns of ``dh/dW``, i.e. ``g = 1``, but every column
    sums to 0, so that update is zero. For log-softmax ``δ = (g − p Σg) / T``. For cross-entropy,
    with either function, ``δ = (p − e_k) / T``.

    Examples
    --------
    >>> W = np.array([[0.1, 0.2], [0.3, 0.4]])
    >>> g = grad(W, [1.0, 2.0], target=0)
    >>> g.W
    array([[-0.57444252,  0.57444252],
           [-1.14888503,  1.14888503]])
    >>> round(g.loss, 6)
    0.854355
    >>> grad(W, [1.0, 2.0], upstream=[1.0, 1.0]).W
    array([[0., 0.],
           [0., 0.]])
    """
    L = make_layer(W, x, b, layout=layout, function=function, temperature=temperature)
    return layer_grad(L, target=target, upstream=upstream, reduce=reduce)


def layer_grad(
    L: Layer,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: str = DEFAULT_REDUCTION,
) -> Gradient:
    """:func:`grad` for a :class:`Layer` (one :func:`make_layer` has already checked)."""
    check_choice("reduce", reduce, REDUCTIONS)
    if (target is None) == (upstream is None):
        raise InputError("give exactly one of target (a class index) or upstream (dLoss/dh)")
    if target is not None:
        fast = _grad_target(L, target_indices(target, L), reduce)
        if fast is not None:
            return fast
    return _grad_careful(L, target, upstream, reduce)


def _grad_target(L: Layer, t: NDArray[np.intp], reduce: str) -> Gradient | None:
    """The cross-entropy gradient at memory speed: one sweep for δ and the loss
    (:func:`softmax_rows`), then ``x δᵀ`` written once (one sample) or ``Xᵀδ`` split over its
    rows. None when a number on the way is not finite: :func:`_grad_careful` then decides."""
    rows = softmax_rows(L, keep_z=False, t=t)
    if rows is None or rows.losses is None or rows.sums is None:
        return None
    delta = rows.P
    scale = 1.0 / L.N if reduce == "mean" else 1.0
    with np.errstate(over="ignore", under="ignore"):
        loss = float(np.sum(rows.losses * scale))
        grad_b = rows.sums.sum(axis=0) * scale
        if L.N == 1:  # x δᵀ (or δ xᵀ out-in), written once, in place, by rows on the pool
            a, c = (L.X[0], delta[0]) if L.layout == "in-out" else (delta[0], L.X[0])
            if not math.isfinite(peak_abs(a) * peak_abs(c)):  # its largest entry, checked first
                return None
            grad_W = np.empty((a.size, c.size), dtype=delta.dtype)
            outer_fill(a[None, :, None], c[None, :], grad_W[None])
        else:
            # scaled after the sum, not X before it: no N×n temporary
            grad_W = matmul_tn(L.X, delta) if L.layout == "in-out" else matmul_tn(delta, L.X)
            if scale != 1:
                grad_W *= scale
            if not all_finite(grad_W):
                return None
    if not (math.isfinite(loss) and all_finite(grad_b)):
        return None
    return Gradient(W=grad_W, b=grad_b, z=L.out(delta), loss=loss, layer=L)


def _grad_careful(
    L: Layer, target: int | ArrayLike | None, upstream: ArrayLike | None, reduce: str
) -> Gradient:
    """The gradient with every guard: rescales what can be rescaled, refuses the rest with its cause."""
    Z = layer_logits(L)
    P = layer_probabilities(L, Z)  # not forward_arrays: log h may be −inf where the gradient is finite
    T = L.temperature
    losses: Array | None = None
    if target is not None:
        t = target_indices(target, L)
        rows = np.arange(L.N)
        delta = P.copy()  # p − e_k, with 1 − p_k taken without cancelling
        delta[rows, t] = -complement(P)[rows, t]
        with np.errstate(under="ignore"):
            losses = -log_softmax(shifted_logits(L, Z))[rows, t]  # not Z / T, which overflows for a tiny T
    else:
        g = as_float(upstream)  # type: ignore[arg-type]
        if g.ndim == 2 and not L.batched and 1 in g.shape:
            g = g.reshape(-1)
        if g.shape not in ((L.K,), (L.N, L.K)):
            want = f"{L.K} entries" + (f" or {L.N}×{L.K}" if L.batched else "")
            raise ShapeError(
                f"upstream has shape {g.shape} but the layer has K = {L.K} outputs; it needs {want}"
            )
        g = np.broadcast_to(g, (L.N, L.K))
        if not np.all(np.isfinite(g)):
            raise InputError("upstream holds a NaN or infinite value")
        # g − pᵀg (or Σg) can overflow for a g near the float's limit where δ does not: take δ of
        # g scaled by a power of two (exact) and scale back below.
        g_scale = pow2(peak_abs(g)) if peak_abs(g) > largest_float(g.dtype) / (4 * L.K) else 1.0
        g = g / g_scale if g_scale != 1 else g
        if L.function == "softmax":
            # dh/dz annihilates constants, so shift g by one of its own entries first: a constant
            # g then gives an exact zero instead of the rounding error of 1 − Σp.
            g = g - np.max(g, axis=1, keepdims=True)
            delta = P * (g - np.sum(P * g, axis=1, keepdims=True))
        else:
            delta = g - P * np.sum(g, axis=1, keepdims=True)
        T = T / g_scale  # δ·g_scale/T in one division (a tiny T alone could overflow it first)
    with np.errstate(over="ignore", under="ignore"):
        delta = delta / T if T != 1 else delta
    if not all_finite(delta):  # δ is the small factor every gradient is built from: check it here
        raise InputError(
            f"the gradient overflows {delta.dtype}: δ = dLoss/dz reaches past {largest_float(delta.dtype):.3g} with "
            f"temperature={L.temperature:.3g}"
            + ("" if upstream is None else " and this upstream")
            + "; raise the temperature"
            + ("" if upstream is None else " or scale upstream down")
        )
    scale = 1.0 / L.N if reduce == "mean" else 1.0
    with np.errstate(over="ignore", under="ignore"):
        loss = None if losses is None else float(np.sum(losses * scale))
        X = L.X * scale if scale != 1 else L.X  # scale the small factor, not the n×K product
        if L.N == 1:  # x δᵀ (or δ xᵀ out-in), written in place by rows: memory speed, O(K·n)
            rows, cols = (X[0], delta[0]) if L.layout == "in-out" else (delta[0], X[0])
            if not math.isfinite(peak_abs(rows) * peak_abs(cols)):  # the largest entry, checked first
                _refuse_gradient("dLoss/dW = x δᵀ", delta.dtype, reduce, L.N)
            grad_W = np.empty((rows.size, cols.size), dtype=delta.dtype)
            outer_fill(rows[None, :, None], cols[None, :], grad_W[None])
        else:
            grad_W = matmul_tn(X, delta) if L.layout == "in-out" else matmul_tn(delta, X)
            if not all_finite(grad_W):  # a sum over the batch: checked where it is taken
                _refuse_gradient("dLoss/dW, summed over the batch,", delta.dtype, reduce, L.N)
        grad_b = delta.sum(axis=0) * scale
    if not all_finite(grad_b):
        _refuse_gradient("dLoss/db, summed over the batch,", delta.dtype, reduce, L.N)
    if loss is not None and not math.isfinite(loss):
        _refuse_gradient("the cross-entropy loss", delta.dtype, reduce, L.N)
    return Gradient(W=grad_W, b=grad_b, z=L.out(delta), loss=loss, layer=L)


def _refuse_gradient(what: str, dtype: np.dtype, reduce: str, N: int) -> None:
    way = ' (use reduce="mean")' if reduce == "sum" and N > 1 else ""
    raise InputError(
        f"{what} overflows {dtype} (past {largest_float(dtype):.3g}){way}; scale W, x or the upstream down"
    )


def grad_chunks(
    W: ArrayLike,
    x: Array,
    b: ArrayLike | None = None,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: str = DEFAULT_REDUCTION,
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
    chunk_bytes: int = CHUNK_BYTES,
) -> Gradient:
    """:func:`grad` of a batch too large to hold, a chunk of rows at a time: memory stays flat.

    ``x`` is N×n, typically a read-only ``np.memmap``; ``target`` is one class or N of them,
    ``upstream`` K entries or an N×K array (which may be memory-mapped too). The sums over the
    batch are taken chunk by chunk, in order, so they agree with :func:`grad` to rounding and
    have the same bits on every run. δ per sample (``Gradient.z``) is not kept.

    Examples
    --------
    >>> W, X = np.array([[0.1, 0.2], [0.3, 0.4]]), np.ones((5, 2))
    >>> g = grad_chunks(W, X, target=0, chunk_bytes=32)
    >>> bool(np.allclose(g.W, grad(W, X, target=0).W))
    True
    """
    check_choice("reduce", reduce, REDUCTIONS)
    spans = row_chunks(x, chunk_bytes, outputs=np.shape(W)[1 if layout == "in-out" else 0])
    N = x.shape[0]
    t = None if target is None else np.asarray(target)
    if t is not None and t.size == 1:
        t = t.reshape(())  # one class for every sample
    elif t is not None and t.reshape(-1).size != N:
        raise ShapeError(f"{t.size} targets for a batch of {N} samples; give one class per sample")
    elif t is not None:
        t = t.reshape(-1)
    g = None if upstream is None else np.asarray(upstream)
    grad_W: Array | None = None
    grad_b: Array | None = None
    loss: float | None = None if target is None else 0.0
    L = None
    with np.errstate(over="ignore"):
        for r0, r1 in spans:
            L = make_layer(
                W, np.asarray(x[r0:r1]), b, layout=layout, function=function, temperature=temperature
            )
            L = L._replace(batched=True)
            part = layer_grad(
                L,
                target=None if t is None else (t if t.ndim == 0 else t[r0:r1]),
                upstream=None if g is None else (g if g.ndim == 1 else np.asarray(g[r0:r1])),
                reduce="sum",  # the chunks' sums add up; the mean divides once, below
            )
            release_rows(x, r0, r1)
            grad_W = part.W if grad_W is None else grad_W + part.W
            grad_b = part.b if grad_b is None else grad_b + part.b
            if loss is not None and part.loss is not None:
                loss += part.loss
        assert L is not None and grad_W is not None and grad_b is not None  # N ≥ 1: one chunk at least
        if reduce == "mean":
            grad_W, grad_b = grad_W / N, grad_b / N
            loss = None if loss is None else loss / N
    if not (all_finite(grad_W) and all_finite(grad_b) and (loss is None or math.isfinite(loss))):
        _refuse_gradient("dLoss/dW, summed over the batch,", grad_W.dtype, reduce, N)
    return Gradient(W=grad_W, b=grad_b, z=None, loss=loss, layer=L)


def constant_upstream(upstream: ArrayLike) -> bool:
    """Whether ``dLoss/dh`` is the same for every output (of each sample): then the softmax's
    gradient is exactly zero, as the post's "sum the columns" update is.

    Examples
    --------
    >>> constant_upstream([1.0, 1.0, 1.0]), constant_upstream([[2.0, 2.0], [1.0, 0.0]])
    (True, False)
    """
    g = np.asarray(upstream)
    rows = g.reshape(-1, g.shape[-1]) if g.ndim else g.reshape(1, 1)
    return bool(np.all(rows == rows[:, :1]))
