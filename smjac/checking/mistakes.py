"""The catalogue of known mistakes in a softmax layer's derivatives, which :func:`smjac.verify` names.

Each :class:`Mistake` holds a stable id (it appears in ``smjac verify``'s JSON), what a mistaken
answer is, a one-sentence fix, and ``variants(problem)``: the mistaken answers the mistake produces
on the layer being verified. A variant is one of

* a mistaken ``dh/dz`` (``A``, N×K×K) carried through the true chain rule;
* a mistaken ``dLoss/dz`` (``delta``, N×K, before the batch reduction), for gradients;
* the truth times a ``factor`` (sign −1, a ratio N of the batch, a power of T, 0);
* the truth's own entries in another arrangement (``frame``: ``"T"`` transposed, ``"co"`` the
  columns of dh/dW in ``j·K + i`` order).

verify compares the user's answer with every variant, and with every arrangement combined with
every value (so ``transposed`` is recognised together with each of the others). A variant
matches when ``max|answer − variant| ≤ atol + rtol·max|variant|``: the residual after undoing
the mistake is within the tolerance the truth itself is held to. ``scale`` has no variants of its
own: verify fits the constant ``c = ⟨a, r⟩ / ⟨r, r⟩`` and reports it only when no named mistake
explains the answer. ``non-finite`` and ``shape`` are read off the answer itself.

Mistakes that can be confused, and how verify tells them apart
--------------------------------------------------------------
* ``sign`` and ``scale`` with c = −1: the same answer; a named factor wins, so it is ``sign``.
* ``batch-reduction`` and ``scale`` (N = 2 gives a factor 2 or ½): the named one wins whenever the
  factor is exactly N or 1/N and the answer is a batch gradient; on a Jacobian (per sample, never
  reduced) the same factor is ``scale``.
* ``temperature`` and ``scale``: factors T, 1/T and T² are ``temperature``; when T = 1 there is
  nothing to miss and a factor is ``scale``. With T = 2 and N = 2, or T² = N, a factor can be both
  ``temperature`` and ``batch-reduction``: verify reports both, since the numbers cannot decide.
  "softmax of z, not z/T" changes p itself, not a factor, so it is never confused with a scale.
* ``zero-update`` is the factor 0: an all-zero answer. When the truth is itself zero (an upstream
  gradient that is constant over the classes) the zero answer is right and nothing is reported.
* ``transposed`` on a square matrix: the shape cannot tell, the values must. Softmax's dh/dz is
  symmetric, so its transpose *is* the truth and is accepted; log-softmax's is not. Where both
  the plain and the transposed reading match, the plain one (fewer mistakes) is reported.
* ``diagonal-only`` and ``log-softmax-confusion``: for log-softmax, keeping only the diagonal of
  ``I − 1pᵀ`` gives ``diag(1 − p)``, which is also "1 − p taken elementwise"; it is reported as
  ``diagonal-only`` there. For softmax the two differ (``h(1 − h)`` against ``1 − p``).
* ``wrong-axis`` needs a batch (N > 1): over one sample every probability is 1 and it would be
  another mistake. It changes p, so no factor imitates it.
* When several variants match equally (a layer with K = 1, a zero input), all of them are
  reported: the answer really is consistent with each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from ..maths import DEFAULT_REDUCTION, Array, Layer, softmax
from ..maths.forward_pass import forward_arrays


@dataclass(frozen=True)
class Problem:
    """What is being verified: a checked layer, which derivative, and the loss for gradients.

    ``kind`` is ``"jacobian"`` (of ``of`` with respect to ``wrt``), ``"grad"`` (dLoss/dW) or
    ``"grad_b"`` (dLoss/db). ``target`` (N class indices) or ``upstream`` (N×K, dLoss/dh) define
    the loss of a gradient; ``reduce`` combines the batch.
    """

    L: Layer
    kind: str
    of: str = "h"
    wrt: str = "W"
    target: NDArray[np.intp] | None = None
    upstream: Array | None = None
    reduce: str = DEFAULT_REDUCTION

    @cached_property
    def forward(self) -> tuple[Array, Array, Array]:
        """Z, H, P (each N×K) as smjac computes them."""
        return forward_arrays(self.L)

    @property
    def through_softmax(self) -> bool:
        """Whether the derivative goes through softmax (not dz/d…): only then can dh/dz be wrong."""
        return self.kind != "jacobian" or self.of == "h"

    def dloss_dh(self) -> Array:
        """``g = dLoss/dh`` per sample (N×K): the upstream, or that of the cross-entropy."""
        if self.upstream is not None:
            return self.upstream
        assert self.target is not None
        P = self.forward[2]
        Y = one_hot(self.target, self.L.K, P.dtype)
        if self.L.function == "log-softmax":  # loss = −h_k
            return -Y
        with np.errstate(divide="ignore", invalid="ignore"):  # loss = −log h_k
            return -Y / P


def one_hot(target: NDArray[np.intp], K: int, dtype: np.dtype) -> Array:
    """N×K rows of zeros with a 1 at each sample's class."""
    Y = np.zeros((target.size, K), dtype=dtype)
    Y[np.arange(target.size), target] = 1
    return Y


def softmax_dz(P: Array, T: float) -> Array:
    """``(diag(p) − p pᵀ) / T`` for each row of P (N×K → N×K×K)."""
    K = P.shape[-1]
    return P[..., :, None] * (np.eye(K, dtype=P.dtype) - P[..., None, :]) / T


def log_softmax_dz(P: Array, T: float) -> Array:
    """``(I − 1 pᵀ) / T`` for each row of P (N×K → N×K×K)."""
    K = P.shape[-1]
    return (np.eye(K, dtype=P.dtype) - P[..., None, :]) / T


def diagonal(v: Array) -> Array:
    """N×K → N×K×K with v on each diagonal."""
    out = np.zeros((*v.shape, v.shape[-1]), dtype=v.dtype)
    k = np.arange(v.shape[-1])
    out[:, k, k] = v
    return out


@dataclass(frozen=True)
class Variant:
    """One mistaken answer a mistake produces; exactly one of A, delta, factor or frame is set."""

    mistake: str
    detail: str
    A: Array | None = None
    delta: Array | None = None
    factor: float | None = None
    frame: str | None = None


@dataclass(frozen=True)
class Mistake:
    """A catalogue entry: id, what the mistaken answer is, the fix, and how to produce it."""

    id: str
    what: str
    fix: str
    variants: Callable[[Problem], list[Variant]] = field(default=lambda pr: [], repr=False)


def _dh_dz_variant(pr: Problem, mistake: str, detail: str, A: Array) -> Variant:
    return Variant(mistake, detail, A=A)


def _diagonal_only(pr: Problem) -> list[Variant]:
    if not pr.through_softmax:
        return []
    P, T = pr.forward[2], pr.L.temperature
    if pr.L.function == "softmax":
        A, what = (
            diagonal(P * (1 - P)) / T,
            "dh/dz was taken as diag(h(1 − h)): the −h_t h_i terms (t ≠ i) are missing",
        )
    else:
        A, what = (
            diagonal(1 - P) / T,
            "d log p/dz was taken as diag(1 − p): the −p_i terms (t ≠ i) are missing",
        )
    return [_dh_dz_variant(pr, "diagonal-only", what, A)]


def _log_softmax_confusion(pr: Problem) -> list[Variant]:
    if not pr.through_softmax:
        return []
    P, T = pr.forward[2], pr.L.temperature
    if pr.L.function == "log-softmax":
        return [
            Variant(
                "log-softmax-confusion",
                "softmax's Jacobian diag(p) − p pᵀ where log-softmax's I − 1 pᵀ was asked for",
                A=softmax_dz(P, T),
            )
        ]
    return [
        Variant(
            "log-softmax-confusion",
            "log-softmax's Jacobian I − 1 pᵀ where softmax's diag(h) − h hᵀ was asked for",
            A=log_softmax_dz(P, T),
        ),
        Variant(
            "log-softmax-confusion",
            "1 − p taken elementwise (the diagonal of log-softmax's Jacobian) as softmax's derivative",
            A=diagonal(1 - P) / T,
        ),
    ]


def _temperature(pr: Problem) -> list[Variant]:
    T = pr.L.temperature
    if T == 1 or not pr.through_softmax:
        return []
    out = [
        Variant(
            "temperature",
            f"missing the 1/T of the chain rule through z/T (the truth times T = {T:g})",
            factor=T,
        ),
        Variant("temperature", f"divided by T twice (the truth times 1/T = {1 / T:g})", factor=1 / T),
        Variant(
            "temperature",
            f"scaled by T² = {T * T:g}, as distillation code scales its soft loss",
            factor=T * T,
        ),
    ]
    Z = pr.forward[0]
    P1 = softmax(Z)
    soft = pr.L.function == "softmax"
    detail = "softmax taken of z, not z/T: the temperature left out of the forward pass and its derivative"
    if pr.kind != "jacobian" and pr.target is not None:
        out.append(Variant("temperature", detail, delta=P1 - one_hot(pr.target, pr.L.K, P1.dtype)))
    else:
        out.append(Variant("temperature", detail, A=softmax_dz(P1, 1.0) if soft else log_softmax_dz(P1, 1.0)))
    return out


def _batch_reduction(pr: Problem) -> list[Variant]:
    N = pr.L.N
    if pr.kind == "jacobian" or N == 1:
        return []
    if pr.reduce == "mean":
        return [
            Variant(
                "batch-reduction",
                f"summed over the N = {N} samples where --reduce mean averages them: {N} times too large",
                factor=float(N),
            )
        ]
    return [
        Variant(
            "batch-reduction",
            f"averaged over the N = {N} samples where --reduce sum sums them: {N} times too small",
            factor=1 / N,
        )
    ]


def _missing_one_hot(pr: Problem) -> list[Variant]:
    if pr.kind == "jacobian" or pr.target is None:
        return []
    P = pr.forward[2]
    return [
        Variant(
            "missing-one-hot",
            "the one-hot target was not subtracted: x hᵀ where x (h − y)ᵀ was due",
            delta=P / pr.L.temperature,
        )
    ]


def _sign(pr: Problem) -> list[Variant]:
    what = (
        "y − h where h − y was due"
        if pr.kind != "jacobian" and pr.target is not None
        else "a lost minus sign"
    )
    return [Variant("sign", f"the negation of the truth ({what})", factor=-1.0)]


def _wrong_axis(pr: Problem) -> list[Variant]:
    if pr.L.N == 1 or not pr.through_softmax:
        return []
    Z, T = pr.forward[0], pr.L.temperature
    P0 = softmax(Z / T, axis=0)
    detail = f"softmax normalised over the N = {pr.L.N} samples (axis 0) instead of the K = {pr.L.K} classes"
    if pr.kind != "jacobian" and pr.target is not None:
        return [Variant("wrong-axis", detail, delta=(P0 - one_hot(pr.target, pr.L.K, P0.dtype)) / T)]
    A = softmax_dz(P0, T) if pr.L.function == "softmax" else log_softmax_dz(P0, T)
    return [Variant("wrong-axis", detail, A=A)]


def _zero_update(pr: Problem) -> list[Variant]:
    return [
        Variant(
            "zero-update",
            "all zeros: what summing the columns of dh/dW gives, since each column of softmax's Jacobian sums to 0",
            factor=0.0,
        )
    ]


def _transposed(pr: Problem) -> list[Variant]:
    if pr.kind == "jacobian":
        what = "the transpose of the truth: one row per input and one column per output (as the post prints dh/dW)"
    elif pr.kind == "grad":
        other = "out-in (K×n)" if pr.L.layout == "in-out" else "in-out (n×K)"
        what = f"the truth transposed, i.e. in the other layout, {other}"
    else:
        return []
    return [Variant("transposed", what, frame="T")]


def _column_order(pr: Problem) -> list[Variant]:
    if pr.kind != "jacobian" or pr.wrt != "W" or pr.L.n == 1 or pr.L.K == 1:
        return []
    return [
        Variant(
            "column-order",
            "dh/dW with w[i,j] at column j·K + i (a row-major flatten of W in-out) instead of i·n + j",
            frame="co",
        )
    ]


_CATALOGUE = (
    Mistake(
        "diagonal-only",
        "built from dh/dz with only h(1−h) on its diagonal: the −h_i h_j terms dropped",
        "Use the whole Jacobian diag(h) − h hᵀ, ∂h_t/∂z_i = h_t(δ_ti − h_i), including the −h_t h_i terms for t ≠ i.",
        _diagonal_only,
    ),
    Mistake(
        "transposed",
        "the truth transposed, or in the other layout (n×K for K×n)",
        "Transpose it: a Jacobian has one row per output and one column per input, and a gradient has W's own shape.",
        _transposed,
    ),
    Mistake(
        "column-order",
        "dh/dW with columns in j·K + i order instead of i·n + j",
        "Put w[i,j] at column i·n + j, PyTorch's weight.flatten() order: flatten W out-in (K×n), or Wᵀ in-out.",
        _column_order,
    ),
    Mistake(
        "batch-reduction",
        "summed where the reduction averages, or the reverse (a ratio of N)",
        "Your code may be right: tell verify how it combines the batch. Pass --reduce sum if it sums "
        "the samples' gradients (loss.sum(), reduction='sum'), --reduce mean if it averages them (the "
        "default, as torch's CrossEntropyLoss, Keras and scikit-learn do).",
        _batch_reduction,
    ),
    Mistake(
        "temperature",
        "missing the 1/T, with an extra 1/T, scaled by T², or softmax of z instead of z/T",
        "Differentiate through z/T: each derivative of softmax(z/T) carries exactly one factor 1/T.",
        _temperature,
    ),
    Mistake(
        "log-softmax-confusion",
        "softmax's Jacobian where log-softmax's was asked for, the reverse, or 1 − p taken elementwise",
        "Use ∂log p_t/∂z_i = δ_ti − p_i for log-softmax and ∂p_t/∂z_i = p_t(δ_ti − p_i) for softmax.",
        _log_softmax_confusion,
    ),
    Mistake(
        "missing-one-hot",
        "the cross-entropy gradient without the target's one-hot subtracted: x hᵀ for x (h − y)ᵀ",
        "Subtract the one-hot target: the cross-entropy gradient is x (h − y)ᵀ, not x hᵀ.",
        _missing_one_hot,
    ),
    Mistake(
        "sign",
        "the negation of the truth (y − h for h − y)",
        "Flip the sign: the cross-entropy gradient is h − y, and a descent step subtracts it.",
        _sign,
    ),
    Mistake(
        "wrong-axis",
        "for a batch, softmax normalised over the samples instead of the classes",
        "Normalise each sample over its K classes: softmax along the last axis (dim=-1), not over the batch.",
        _wrong_axis,
    ),
    Mistake(
        "zero-update",
        "all zeros: the column sums of dh/dW, as the post ends by suggesting",
        "Weight dh/dW by the upstream gradient dLoss/dh instead of summing its columns, which are 0 for softmax.",
        _zero_update,
    ),
    Mistake(
        "scale",
        "the truth times a constant not explained above",
        "Find the stray constant factor: a 2 from a squared loss, a ½, or a learning rate folded into the gradient.",
    ),
    Mistake(
        "non-finite",
        "holding NaN or inf",
        "Subtract max(z) before exp, as softmax(z) = softmax(z − max z), and compute log-softmax directly, never log(softmax).",
    ),
    Mistake(
        "shape",
        "a shape no layout gives",
        "Give the derivative in the shape verify expects, or the options (--grad, --of, --wrt) for what you computed.",
    ),
)

MISTAKES: dict[str, Mistake] = {m.id: m for m in _CATALOGUE}
"""The catalogue, by id, in the order of the issue's table.

Examples
--------
>>> list(MISTAKES)[:3]
['diagonal-only', 'transposed', 'column-order']
>>> MISTAKES["sign"].fix
'Flip the sign: the cross-entropy gradient is h − y, and a descent step subtracts it.'
"""


def variants(pr: Problem) -> list[Variant]:
    """Every mistaken answer the catalogue produces on this problem, in the catalogue's order."""
    return [v for m in _CATALOGUE for v in m.variants(pr)]
