"""Gradients of a loss through the layer: cross-entropy against targets, or any upstream dLoss/dh."""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError, ShapeError
from . import small
from ._parallel import matmul_spans, matmul_tn
from .forward_pass import (
    CHUNK_BYTES,
    as_batch,
    check_finite_W,
    first_row,
    layer_logits,
    read_rows,
    release_rows,
    row_chunks,
    shifted_logits,
    softmax_rows,
)
from .functions import softmax
from .jacobians import outer_fill
from .layer import (
    DEFAULT_REDUCTION,
    REDUCTIONS,
    Layer,
    LayerOptions,
    Reduction,
    class_logits,
    layer_options,
    make_layer,
)
from .losses import CrossEntropy, Upstream, class_indices
from .numeric import Array, all_finite, check_choice, largest_float, peak_abs, pow2, refuse_masked

if TYPE_CHECKING:
    from collections.abc import Callable

    from .layer import Unpack


class Gradient:
    """Gradients of a scalar loss through the layer.

    ``W`` has W's own shape and layout, ``b`` has K entries; both are summed (or averaged) over a
    batch. ``z`` (K or N×K) is per sample, and so is ``x`` (n or N×n), computed when first asked
    for (it takes a pass over W): each sample's ``dLoss/dz`` and ``dLoss/dx`` of the same loss, so
    a mean's 1/N (or 1/Σw with class weights) is in them, as in torch's ``x.grad``. ``loss`` is
    the cross-entropy when targets were given (summed or averaged likewise), else None. From
    :func:`grad_chunks`, ``z`` is None (not kept).
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


def target_indices(target: int | ArrayLike, L: Layer, ignore_index: int | None = None) -> NDArray[np.intp]:
    """The targets of layer L as class indices, one per sample (see :func:`.losses.class_indices`)."""
    return class_indices(target, L.N, L.classes, ignore_index=ignore_index)


def grad(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: Reduction = DEFAULT_REDUCTION,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    **layer: Unpack[LayerOptions],
) -> Gradient:
    """Gradient of a loss with respect to the weights, in closed form, O(N·K·n).

    Give exactly one of ``target`` (cross-entropy loss ``−log p_target``, torch's
    ``CrossEntropyLoss`` with its options) or ``upstream`` (``g = dLoss/dh`` from whatever comes
    after the layer).

    Parameters
    ----------
    W, x, b, **layer
        The layer and its choices (``layout``, ``function``, ``temperature``), as in
        :func:`~smjac.maths.layer.make_layer`.
    target : int or array_like of int, optional
        The true class, counted from 0; one per sample for a batch (or one for all).
    upstream : array_like, optional
        ``dLoss/dh``: K entries, or N×K for a batch.
    reduce : {"mean", "sum"}, default "mean"
        How the batch's gradients and losses are combined. With class weights the mean divides
        by the targets' weights ``Σ w_y``, and an ignored sample is left out of it, as torch does.
    class_weights : array_like, optional
        With ``target``: one weight per class, as torch's ``weight=``.
    ignore_index : int, optional
        With ``target``: samples of this target count for nothing (torch's default is −100; here
        none is ignored unless asked).
    label_smoothing : float, default 0
        With ``target``: ε in [0, 1], as torch's ``label_smoothing=`` (see
        :class:`~smjac.maths.losses.CrossEntropy` for the formula).

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

    A W with one output is binary logistic regression (two classes, ``p = [1 − σ(z), σ(z)]``, as
    scikit-learn stores it): targets are 0 or 1, an upstream has two entries per sample, and
    ``dLoss/dW = x (σ(z) − y)`` for the cross-entropy, in W's own n×1 (or 1×n) shape.

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

    Binary logistic regression (one output), targets 0 or 1, averaged over the batch:

    >>> grad([[1.0], [-1.0]], [[1.0, 0.0], [0.0, 1.0]], target=[1, 0]).W
    array([[-0.13447071],
           [ 0.13447071]])
    """
    L = make_layer(W, x, b, **layer_options("grad", layer))
    # one sample of a small layer: its few microseconds are not spent on the general call's keywords
    short = _short_grad(L, target, upstream, reduce, class_weights, ignore_index, label_smoothing)
    return short or layer_grad(
        L,
        target=target,
        upstream=upstream,
        reduce=reduce,
        class_weights=class_weights,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )


_NUMBERS = (int, float)
_INDICES = (int, np.int64, np.int32, np.intp)  # a class index as users give it (not a bool, not a float)


def _short_grad(
    L: Layer,
    target: Any,
    upstream: Any,
    reduce: Any,
    class_weights: Any,
    ignore_index: Any,
    label_smoothing: Any,
) -> Gradient | None:
    """One sample of a small layer and the plain cross-entropy of a valid target, by
    :func:`.small.grad`: the general path's bits, without its cost. None for anything else
    (a call :func:`layer_grad` then checks, and refuses what it must)."""
    if (
        upstream is None
        and class_weights is None
        and ignore_index is None
        and not label_smoothing
        and type(label_smoothing) in _NUMBERS
        and type(target) in _INDICES
        and type(reduce) is str
        and reduce in REDUCTIONS  # one sample: its mean is its sum
        and small.fits(L)
        and 0 <= target < L.W.shape[1]
    ):
        done = small.grad(L, int(target))
        if done is not None:
            return Gradient(*done, L)
    return None


def layer_grad(
    L: Layer,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: Reduction = DEFAULT_REDUCTION,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Gradient:
    """:func:`grad` for a :class:`Layer` (one :func:`make_layer` has already checked)."""
    short = _short_grad(L, target, upstream, reduce, class_weights, ignore_index, label_smoothing)
    if short is not None:
        return short
    check_choice("reduce", reduce, REDUCTIONS)
    if (target is None) == (upstream is None):
        raise InputError("give exactly one of target (a class index) or upstream (dLoss/dh)")
    if reduce == "mean":
        L.require_samples("their mean loss is 0/0 (torch gives NaN)", 'reduce="sum" (0)')
    ce = CrossEntropy(class_weights, ignore_index, label_smoothing)  # type: ignore[arg-type]
    if upstream is not None:
        if not ce.plain:
            raise InputError(
                f"{', '.join(ce.options())} shape the cross-entropy of a target; an upstream dLoss/dh "
                "already holds whatever weighting its loss has: give target, or leave them out"
            )
        return _grad_careful(L, Upstream.of(upstream, L), None, reduce)
    t = ce.targets(target, L)  # type: ignore[arg-type]
    if ce.reduces_to_plain(t) and not L.binary:  # the plain cross-entropy: one sweep at memory speed
        fast = _grad_target(L, t, reduce)
        if fast is not None:
            return fast
    return _grad_careful(L, ce if not ce.reduces_to_plain(t) else CrossEntropy(), t, reduce)


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
        grad_W = _weight_gradient(L, L.X, delta, scale)  # scaled after the sum: no N×n temporary
    if grad_W is None or not (math.isfinite(loss) and all_finite(grad_b)):
        return None
    return Gradient(W=grad_W, b=grad_b, z=L.out(_per_sample(delta, scale)), loss=loss, layer=L)


def _grad_careful(
    L: Layer, loss_fn: CrossEntropy | Upstream, t: NDArray[np.intp] | None, reduce: str
) -> Gradient:
    """The gradient with every guard: rescales what can be rescaled, refuses the rest with its cause.

    Any loss, any layer: the loss gives δ = dLoss/dz per sample from the class logits (``[0, z]``
    for a binary layer, whose δ is then the second column's: the first logit is the constant 0),
    and the batch is divided by the loss's denominator (N for a plain mean).
    """
    Z = class_logits(L, layer_logits(L))
    S = shifted_logits(L, Z)  # not Z / T, which overflows for a tiny T
    with np.errstate(under="ignore"):
        P = softmax(S)  # not forward_arrays: log h may be −inf where the gradient is finite
    upstream = isinstance(loss_fn, Upstream)
    if isinstance(loss_fn, Upstream):
        losses, delta, denominator = None, loss_fn.gradient(P, temperature=L.temperature), float(L.N)
    else:
        assert t is not None
        # what the mean divides by: N, or the targets' weights (refusing a mean over nothing, before any work)
        denominator = loss_fn.denominator(t, reduce)
        losses, delta = loss_fn.loss(S, t), loss_fn.gradient(P, t, L.temperature)
    if L.binary:
        delta = delta[:, 1:]
    if not all_finite(delta):  # δ is the small factor every gradient is built from: check it here
        raise InputError(
            f"the gradient overflows {delta.dtype}: δ = dLoss/dz reaches past {largest_float(delta.dtype):.3g} with "
            f"temperature={L.temperature:.3g}"
            + ("" if not upstream else " and this upstream")
            + "; raise the temperature"
            + ("" if not upstream else " or scale upstream down")
        )
    scale = 1.0 / denominator if reduce == "mean" else 1.0
    with np.errstate(over="ignore", under="ignore"):
        loss = None if losses is None else float(np.sum(losses * scale))
        X = L.X * scale if scale != 1 else L.X  # scale the small factor, not the n×K product
        grad_W = _weight_gradient(L, X, delta)
        if grad_W is None:
            what = "dLoss/dW = x δᵀ" if L.N == 1 else "dLoss/dW, summed over the batch,"
            _refuse_gradient(what, delta.dtype, reduce, L.N)
        grad_b = delta.sum(axis=0) * scale
    if not all_finite(grad_b):
        _refuse_gradient("dLoss/db, summed over the batch,", delta.dtype, reduce, L.N)
    if loss is not None and not math.isfinite(loss):
        _refuse_gradient("the cross-entropy loss", delta.dtype, reduce, L.N)
    return Gradient(W=grad_W, b=grad_b, z=L.out(_per_sample(delta, scale)), loss=loss, layer=L)


def _per_sample(delta: Array, scale: float) -> Array:
    """δ of each sample as the derivative of the reduced loss: times the mean's 1/N (or 1/Σw), as
    torch's ``z.grad`` is, so that ``Gradient.z`` and ``.x`` are of the same loss as ``.W`` and
    ``.b``. In place: δ is this call's own, and W and b were made from it already."""
    if scale != 1:
        with np.errstate(under="ignore"):
            delta *= scale
    return delta


def _weight_gradient(L: Layer, X: Array, delta: Array, scale: float = 1.0) -> Array | None:
    """``dLoss/dW = scale · Xᵀδ`` in W's own layout (:meth:`~smjac.maths.layer.Layer.weight_factors`),
    or None when an entry is past the float range.

    One sample: the outer product ``x δᵀ`` (``δ xᵀ`` out-in) written once, in place, by rows on the
    pool, at memory speed; its largest entry is checked before anything is written. A batch:
    :func:`matmul_tn`, checked where the sum is taken.
    """
    A, B = L.weight_factors(X, delta)
    if L.N == 1:
        a, c = (A[0], B[0]) if scale == 1 else (A[0] * scale, B[0])
        if not math.isfinite(peak_abs(a) * peak_abs(c)):
            return None
        out = np.empty((a.size, c.size), dtype=delta.dtype)
        outer_fill(a[None, :, None], c[None, :], out[None])
        return out
    out = matmul_tn(A, B)
    if scale != 1:
        out *= scale
    return out if all_finite(out) else None


def _refuse_gradient(what: str, dtype: np.dtype, reduce: str, N: int) -> NoReturn:
    way = ' (use reduce="mean")' if reduce == "sum" and N > 1 else ""
    raise InputError(
        f"{what} overflows {dtype} (past {largest_float(dtype):.3g}){way}; scale W, x or the upstream down"
    )


def grad_chunks(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: Reduction = DEFAULT_REDUCTION,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Callable[[int], None] | None = None,
    **layer: Unpack[LayerOptions],
) -> Gradient:
    """:func:`grad` of a batch too large to hold, a chunk of rows at a time: memory stays flat.

    ``x`` is N×n, typically a read-only ``np.memmap``, or any array-like; ``target`` is one class or N of them,
    ``upstream`` K entries or an N×K array (which may be memory-mapped too). The sums over the
    batch are taken chunk by chunk, in order, so they agree with :func:`grad` to rounding and
    have the same bits on every run. δ per sample (``Gradient.z``) is not kept. A mean divides
    once, at the end, by N or by the targets' class weights over the whole batch. ``progress``,
    if given, is called with the number of rows of each chunk once it is done.

    Examples
    --------
    >>> W, X = np.array([[0.1, 0.2], [0.3, 0.4]]), np.ones((5, 2))
    >>> g = grad_chunks(W, X, target=0, chunk_bytes=32)
    >>> bool(np.allclose(g.W, grad(W, X, target=0).W))
    True
    """
    check_choice("reduce", reduce, REDUCTIONS)
    # the layer checked on the first row says how many outputs a chunk's work holds
    layer = layer_options("grad_chunks", layer)
    x = as_batch(x)
    L = make_layer(W, first_row(x), b, **layer)
    spans = row_chunks(x, chunk_bytes, outputs=L.K)
    N = x.shape[0]
    if N == 0:  # no chunk: the gradient of no samples, as grad gives it (0), or its refusal
        return layer_grad(
            make_layer(W, np.empty((0, x.shape[1]), x.dtype), b, **layer)._replace(batched=True), target=target,
            upstream=upstream, reduce=reduce, class_weights=class_weights, ignore_index=ignore_index,
            label_smoothing=label_smoothing,
        )  # fmt: skip
    ce = CrossEntropy(class_weights, ignore_index, label_smoothing)  # type: ignore[arg-type]
    options = ce.options()
    t = None
    denominator = float(N)
    if target is not None:
        # every target at once (N numbers): the mean's denominator is the whole batch's
        t = class_indices(target, N, L.classes, ignore_index=ce.ignore_index)
        denominator = ce.denominator(t, "mean") if reduce == "mean" else 1.0
    refuse_masked(upstream, "upstream")
    g = None if upstream is None else np.asarray(upstream)
    if g is not None and g.shape not in ((L.classes,), (N, L.classes)):  # as grad refuses it, whole
        raise ShapeError(
            f"upstream has shape {g.shape} but the batch has N = {N} samples and K = {L.classes} "
            f"classes; it needs {L.classes} entries or {N}×{L.classes}"
        )
    grad_W: Array | None = None
    grad_b: Array | None = None
    loss: float | None = None if target is None else 0.0
    with np.errstate(over="ignore"):
        for r0, r1 in spans:
            del L  # the last chunk's rows go before the next chunk is read (its results went below)
            L = make_layer(W, read_rows(x, r0, r1), b, **layer)._replace(batched=True)
            part = layer_grad(
                L,
                target=None if t is None else t[r0:r1],
                upstream=None if g is None else (g if g.ndim == 1 else np.asarray(g[r0:r1])),
                reduce="sum",  # the chunks' sums add up; the mean divides once, below
                **options,
            )
            release_rows(x, r0, r1)
            if progress:
                progress(r1 - r0)
            if grad_W is None or grad_b is None:
                grad_W, grad_b = part.W, part.b  # fresh arrays of layer_grad's own: added to in place
            else:
                grad_W += part.W
                grad_b += part.b
            if loss is not None and part.loss is not None:
                loss += part.loss
            del part
        assert grad_W is not None and grad_b is not None  # N ≥ 1: one chunk at least
        if reduce == "mean":
            grad_W, grad_b = grad_W / denominator, grad_b / denominator
            loss = None if loss is None else loss / denominator
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
    refuse_masked(upstream, "upstream")
    g = np.asarray(upstream)
    rows = g.reshape(-1, g.shape[-1]) if g.ndim else g.reshape(1, 1)
    return bool(np.all(rows == rows[:, :1]))
