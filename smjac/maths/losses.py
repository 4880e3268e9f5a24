"""Losses of the layer's logits, one class per loss, as scikit-learn's ``sklearn/_loss/loss.py``.

A loss gives, per sample, its value (:meth:`~CrossEntropy.loss`) and its gradient with respect to
the class logits z (:meth:`~CrossEntropy.gradient`), both from the probabilities
``p = softmax(z / T)`` and the shifted logits ``s = (z − max z) / T`` the forward pass already has
(the temperature is the link between z and p). The batch is combined by dividing the per-sample
sums by :meth:`~CrossEntropy.denominator`. :mod:`.gradients` takes ``δ = dLoss/dz`` from a loss
and turns it into ``dLoss/dW = x δᵀ``; a new loss is one class here.

* :class:`CrossEntropy`: torch's ``CrossEntropyLoss`` against class indices, in full: class
  weights, an ignored index and label smoothing.
* :class:`Upstream`: a loss known only by its gradient ``g = dLoss/dh`` from whatever follows the
  layer; it has no value.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError, ShapeError
from .functions import complement, log_softmax
from .layer import Layer
from .numeric import Array, all_finite, as_float, cast, largest_float, peak_abs, pow2, refuse_masked

TORCH_IGNORE_INDEX = -100  # torch's default ignore_index: a target smjac refuses unless asked to ignore it


def class_indices(
    target: int | ArrayLike, N: int, K: int, *, ignore_index: int | None = None
) -> NDArray[np.intp]:
    """The targets as N class indices from 0 to K − 1, one for every sample (one given is repeated).

    A target equal to ``ignore_index`` is kept as it is (it may lie outside 0…K−1, as torch's −100
    does); any other outside that range is refused.

    Examples
    --------
    >>> class_indices([2, 0.0], 2, 3)
    array([2, 0])
    >>> class_indices(-100, 2, 3, ignore_index=-100)
    array([-100, -100])
    """
    refuse_masked(target, "targets")
    try:
        t = np.asarray(target)
    except OverflowError:
        t = np.asarray(target, dtype=object)
    except ValueError:  # rows of different lengths
        raise ShapeError(
            "targets must be a list, one class per sample, not rows of different lengths"
        ) from None
    if t.dtype.kind == "O":  # integers past int64: out of any range
        raise InputError(f"target class {np.ravel(t)[0]} is out of range: K = {K}, so 0 ≤ target ≤ {K - 1}")
    if t.dtype == bool or t.dtype.kind not in "iuf" or (t.dtype.kind == "f" and not np.all(t == np.round(t))):
        shown = np.array2string(np.ravel(t)[:5], separator=",").replace("\n", "")
        raise InputError(
            f"targets must be whole class indices from 0, not {shown}{'…' if t.size > 5 else ''}"
        )
    if t.ndim > 1 and sum(d > 1 for d in t.shape) > 1:
        raise ShapeError(f"targets must be a list, one class per sample, not a table of shape {t.shape}")
    with np.errstate(invalid="ignore", over="ignore"):  # 2**62 overflows float16: inf, as large as it is
        if t.dtype.kind == "f" and np.any(np.abs(t) >= 2**62):
            raise InputError(f"a target class is out of range: K = {K}, so 0 ≤ target ≤ {K - 1}")
    if t.dtype.kind == "u" and t.size and int(t.max()) > np.iinfo(np.intp).max:  # would wrap negative
        raise InputError(f"target class {int(t.max())} is out of range: K = {K}, so 0 ≤ target ≤ {K - 1}")
    t = t.astype(np.intp).reshape(-1)
    if t.size == 1:
        t = np.repeat(t, N)
    if t.size != N:
        raise ShapeError(f"{t.size} targets for a batch of {N} samples; give one class per sample")
    bad = ((t < 0) | (t >= K)) & (t != ignore_index if ignore_index is not None else True)
    if np.any(bad):
        k = int(t[np.argmax(bad)])
        hint = ""
        if k == TORCH_IGNORE_INDEX and ignore_index is None:
            hint = f"; torch ignores {k} by default: pass ignore_index={k} to do the same"
        raise InputError(f"target class {k} is out of range: K = {K}, so 0 ≤ target ≤ {K - 1}{hint}")
    return t


@dataclass(frozen=True, eq=False)
class CrossEntropy:
    """Cross-entropy against class indices, as torch's ``nn.CrossEntropyLoss``.

    Parameters
    ----------
    class_weights : array_like, optional
        K weights ``w``, one per class (≥ 0); all 1 by default.
    ignore_index : int, optional
        Samples whose target is this class count for nothing, in the loss, the gradient and the
        mean. None (the default) ignores none; torch's default is −100.
    label_smoothing : float
        ε in [0, 1]: the target becomes ``(1 − ε) e_y + ε/K`` (uniform over the K classes).

    Notes
    -----
    Per sample, with ``p = softmax(z/T)``, target y and weights w (torch's formula):

    ``ℓ = (1 − ε) w_y (−log p_y) + (ε/K) Σ_k w_k (−log p_k)``

    ``dℓ/dz = ((1 − ε) w_y (p − e_y) + (ε/K)(Σ_k w_k · p − w)) / T``

    A sum adds ℓ over the samples; a mean divides that sum by ``Σ_s w_{y_s}`` over the samples not
    ignored (their number without weights), the smoothing term included, as torch does. With no
    option set it is the plain ``−log p_y``, ``δ = (p − e_y)/T`` and a mean over N.

    Examples
    --------
    >>> ce = CrossEntropy(class_weights=[1.0, 3.0])
    >>> P = np.array([[0.5, 0.5], [0.25, 0.75]])
    >>> t = np.array([1, 0])
    >>> ce.gradient(P, t)
    array([[ 1.5 , -1.5 ],
           [-0.75,  0.75]])
    >>> ce.denominator(t, "mean")
    4.0
    """

    class_weights: Array | None = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.class_weights is not None:
            w = as_float(self.class_weights, "class_weights")
            if w.ndim == 2 and 1 in w.shape:
                w = w.reshape(-1)
            if w.ndim != 1:
                raise ShapeError(
                    f"class_weights must be K numbers, one per class, not an array of shape {w.shape}"
                )
            if not all_finite(w) or np.any(w < 0):
                raise InputError("class_weights must be finite and at least 0")
            object.__setattr__(self, "class_weights", w)
        if self.ignore_index is not None:
            i = self.ignore_index
            if isinstance(i, bool | np.bool_) or not isinstance(i, numbers.Real) or not float(i).is_integer():
                raise InputError(f"ignore_index must be a whole number, not {i!r}")
            object.__setattr__(self, "ignore_index", int(i))
        eps = self.label_smoothing
        if isinstance(eps, bool) or not (isinstance(eps, int | float | np.floating) and 0 <= eps <= 1):
            raise InputError(f"label_smoothing must be a number from 0 to 1, not {eps!r}")
        object.__setattr__(self, "label_smoothing", float(eps))

    @property
    def plain(self) -> bool:
        """No option set: the plain cross-entropy, which :mod:`.gradients` takes a faster way."""
        return self.class_weights is None and self.ignore_index is None and self.label_smoothing == 0

    def options(self) -> dict[str, Any]:
        """The options as keyword arguments of :func:`smjac.grad` (those set only)."""
        out: dict[str, Any] = {}
        if self.class_weights is not None:
            out["class_weights"] = self.class_weights
        if self.ignore_index is not None:
            out["ignore_index"] = self.ignore_index
        if self.label_smoothing:
            out["label_smoothing"] = self.label_smoothing
        return out

    def targets(self, target: int | ArrayLike, L: Layer) -> NDArray[np.intp]:
        """The layer's targets, checked against its classes (and the weights against them, and
        against its dtype, where the loss casts them)."""
        K = L.classes
        if self.class_weights is not None:
            if self.class_weights.size != K:
                what = "W has one output, read as two classes" if L.binary else f"W has K = {K} outputs"
                raise ShapeError(
                    f"class_weights has {self.class_weights.size} entries but {what}; give one weight per class"
                )
            cast(self.class_weights, L.W.dtype, "class_weights")
        try:
            return class_indices(target, L.N, K, ignore_index=self.ignore_index)
        except InputError as e:
            if L.binary and "out of range" in str(e):
                raise InputError(
                    f"{e}: W has one output, read as binary logistic regression, whose classes are 0 and 1"
                ) from None
            raise

    def kept(self, t: NDArray[np.intp]) -> NDArray[np.bool_] | None:
        """Which samples count (None: all of them)."""
        if self.ignore_index is None:
            return None
        keep = t != self.ignore_index
        return None if keep.all() else keep

    def reduces_to_plain(self, t: NDArray[np.intp]) -> bool:
        """Whether these targets make it the plain cross-entropy (an ignore_index no target takes)."""
        return self.class_weights is None and self.label_smoothing == 0 and self.kept(t) is None

    def _sample_weights(self, t: NDArray[np.intp], dtype: np.dtype) -> tuple[NDArray[np.intp], Array]:
        """The targets with ignored ones set to class 0 (so they index), and each sample's ``w_y``
        (0 where ignored)."""
        keep = self.kept(t)
        safe = t if keep is None else np.where(keep, t, 0)
        w = np.ones(t.size, dtype) if self.class_weights is None else self.class_weights.astype(dtype)[safe]
        if keep is not None:
            w = np.where(keep, w, 0).astype(dtype)
        return safe, w

    def denominator(self, t: NDArray[np.intp], reduce: str) -> float:
        """What the batch's summed loss and gradient are divided by: 1 for a sum; for a mean, N,
        or ``Σ w_y`` over the samples that count. Refuses a mean over nothing (torch's NaN)."""
        if reduce == "sum":
            return 1.0
        if self.class_weights is None and self.ignore_index is None:
            return float(t.size)
        keep = t != self.ignore_index if self.ignore_index is not None else np.ones(t.size, bool)
        if not keep.any():
            raise InputError(
                f"every target is ignore_index={self.ignore_index}: no sample counts, so the mean loss is 0/0 "
                '(torch gives NaN); give at least one other target, or reduce="sum" (0)'
            )
        if self.class_weights is None:
            return float(np.count_nonzero(keep))
        try:
            total = math.fsum(self.class_weights[t[keep]].tolist())
        except OverflowError:  # the sum past the float range; the mean is the same with the weights scaled
            total = math.inf
        if math.isinf(total):
            raise InputError(
                "the targets' class_weights sum past the largest float, so the weighted mean cannot be taken; "
                'scale the weights down (the mean is the same for any scale), or reduce="sum"'
            )
        if total <= 0:
            raise InputError(
                "the targets' class_weights sum to 0: the weighted mean is 0/0 (torch gives NaN); give the "
                'targets\' classes a weight above 0, or reduce="sum"'
            )
        return total

    def loss(self, S: Array, t: NDArray[np.intp]) -> Array:
        """Each sample's loss ℓ (N) from the shifted logits ``S = (z − max z)/T`` (N×K)."""
        rows = np.arange(S.shape[0])
        with np.errstate(under="ignore"):
            logp = log_softmax(S)
        if self.plain:
            return -logp[rows, t]
        safe, w = self._sample_weights(t, S.dtype)
        eps, K = self.label_smoothing, S.shape[1]
        with np.errstate(over="ignore", invalid="ignore"):
            # a sample of weight 0 (ignored, or its class weighs 0) adds nothing, even at log p = −inf
            losses = np.where(w > 0, (1 - eps) * w * -logp[rows, safe], 0) if eps < 1 else np.zeros_like(w)
            if eps:
                cw = np.ones(K, S.dtype) if self.class_weights is None else self.class_weights.astype(S.dtype)
                # a class of weight 0 adds nothing, even where its log-probability is −inf
                smooth = np.where(cw > 0, -logp * cw, 0).sum(axis=1)
                keep = self.kept(t)
                losses = losses + (eps / K) * (smooth if keep is None else np.where(keep, smooth, 0))
        return losses

    def gradient(self, P: Array, t: NDArray[np.intp], temperature: float = 1.0) -> Array:
        """Each sample's ``dℓ/dz`` (N×K) from the probabilities P (N×K); ``1 − p_y`` is taken
        without cancelling (:func:`complement`)."""
        rows = np.arange(P.shape[0])
        if self.plain:
            delta = P.copy()
            delta[rows, t] = -complement(P)[rows, t]
        else:
            safe, w = self._sample_weights(t, P.dtype)
            eps, K = self.label_smoothing, P.shape[1]
            a = (1 - eps) * w
            delta = P * a[:, None]
            delta[rows, safe] = -complement(P)[rows, safe] * a
            if eps:
                cw = np.ones(K, P.dtype) if self.class_weights is None else self.class_weights.astype(P.dtype)
                smooth = (eps / K) * (cw.sum() * P - cw)
                keep = self.kept(t)
                delta += smooth if keep is None else smooth * keep[:, None]
        with np.errstate(over="ignore", under="ignore"):
            return delta / temperature if temperature != 1 else delta

    def target_distribution(self, t: NDArray[np.intp], K: int, dtype: np.dtype) -> Array:
        """The weighted target q of each sample (N×K), with ``ℓ = −Σ_k q_k log p_k``: what
        ``dLoss/dh = −q / h`` is made of (0 for an ignored sample)."""
        safe, w = self._sample_weights(t, np.dtype(dtype))
        Q = np.zeros((t.size, K), dtype)
        Q[np.arange(t.size), safe] = (1 - self.label_smoothing) * w
        if self.label_smoothing:
            cw = np.ones(K, dtype) if self.class_weights is None else self.class_weights.astype(dtype)
            keep = self.kept(t)
            Q += (self.label_smoothing / K) * (cw if keep is None else cw * keep[:, None])
        return Q


@dataclass(frozen=True, eq=False)
class Upstream:
    """A loss known only by its gradient ``g = dLoss/dh`` (K entries, or N×K), from whatever
    follows the layer. It has no value of its own (:meth:`loss` is None).

    Notes
    -----
    ``δ = (dh/dz)ᵀ g``: for the softmax ``p ⊙ (g − pᵀg) / T``, for log-softmax ``(g − p Σg) / T``.
    """

    g: Array
    function: str = "softmax"

    @staticmethod
    def of(upstream: ArrayLike, L: Layer) -> Upstream:
        """The upstream for layer L, checked: its shape against the classes, every entry finite,
        and cast to L's dtype (as the gradient is made in it)."""
        g = as_float(upstream, "upstream")
        K = L.classes
        if g.ndim == 2 and not L.batched and 1 in g.shape:
            g = g.reshape(-1)
        if g.shape not in ((K,), (L.N, K)):
            want = f"{K} entries" + (f" or {L.N}×{K}" if L.batched else "")
            what = "W has one output, read as two classes" if L.binary else f"the layer has K = {K} outputs"
            raise ShapeError(f"upstream has shape {g.shape} but {what}; it needs {want}")
        if not all_finite(g):
            raise InputError("upstream holds a NaN or infinite value")
        return Upstream(np.broadcast_to(cast(g, L.W.dtype, "upstream"), (L.N, K)), L.function)

    def loss(self, S: Array, t: Any = None) -> None:
        return None

    def gradient(self, P: Array, t: Any = None, temperature: float = 1.0) -> Array:
        """``δ = dLoss/dz`` per sample (N×K)."""
        g = self.g
        # g − pᵀg (or Σg) can overflow for a g near the float's limit where δ does not: take δ of
        # g scaled by a power of two (exact) and scale back below.
        g_scale = pow2(peak_abs(g)) if peak_abs(g) > largest_float(g.dtype) / (4 * g.shape[1]) else 1.0
        g = g / g_scale if g_scale != 1 else g
        if self.function == "softmax":
            # dh/dz annihilates constants, so shift g by one of its own entries first: a constant
            # g then gives an exact zero instead of the rounding error of 1 − Σp.
            g = g - np.max(g, axis=1, keepdims=True)
            delta = P * (g - np.sum(P * g, axis=1, keepdims=True))
        else:
            delta = g - P * np.sum(g, axis=1, keepdims=True)
        T = temperature / g_scale  # δ·g_scale/T in one division (a tiny T alone could overflow it first)
        with np.errstate(over="ignore", under="ignore"):
            return delta / T if T != 1 else delta
