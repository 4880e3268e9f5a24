"""The catalogue of known mistakes in a softmax layer's derivatives, which :func:`smjac.verify` names.

Each :class:`Mistake` holds a stable id (it appears in ``smjac verify``'s JSON, for a script to
match on), what a mistaken answer is, a one-sentence fix, and ``variants(problem)``: the mistaken
answers the mistake produces on the layer being verified. Adding a mistake is one function and
one row of ``_CATALOGUE``. A variant is one of

* a mistaken ``dh/dz`` carried through the true chain rule: ``A`` (N×K×K) for a Jacobian, or for a
  gradient only its product with the upstream (:func:`dz_variant` makes either from
  ``diag(a) − b cᵀ``, so a gradient never forms K×K per sample);
* a mistaken ``dLoss/dz`` (``delta``, N×K, before the batch reduction), for gradients;
* the truth times a ``factor`` (sign −1, a ratio N of the batch, a power of T, 0);
* the truth's own entries in another arrangement (``frame``: ``"T"`` transposed, ``"co"`` the
  columns of dh/dW in ``j·K + i`` order);
* a ``term`` added with a fitted coefficient (``l2-term``'s λW).

verify tries every arrangement × every value (the truth or a value variant) × every factor and
product of factors, and a gradient also with the term on top: two slips at once (a ``sign`` on a
``wrong-axis``, a ``batch-reduction`` on a ``missing-one-hot``) are named together, in that order.
A candidate matches when ``max|answer − candidate| ≤ atol + rtol·max|candidate|``: the residual
after undoing the mistakes is within the tolerance the truth itself is held to. ``scale`` has no
variants of its own: verify fits the constant ``c = ⟨a, r⟩ / ⟨r, r⟩`` on each value and reports it
only when no named mistake explains the answer; :func:`scale_reading` says what c likely is (2,
½, 1/K, N, a learning rate), and a negative c is read as ``sign`` and ``scale``. ``non-finite``
and ``shape`` are read off the answer itself. A variant's ``coincides`` says when it is also the
right answer on this problem (an identity backward under a zero-sum upstream for log-softmax):
a right answer then carries a note that the check cannot tell the two apart.

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
* ``identity-backward`` and ``log-softmax-confusion`` for softmax: under an upstream that sums to 0
  in each sample (a squared error after softmax), passing it through unchanged *is*
  log-softmax's backward ``g − p·Σg``. Both are reported, and a note says the readings agree.
* ``log-softmax-nll-shortcut`` (``g + exp(out)``) is log-softmax's backward exactly when the
  upstream sums to −1 (NLL's −y): there it is right, and only a note says so.
* ``logits-for-probabilities`` with a target: ``h_t(δ_ti − z_i)`` through the chain rule is the
  ``x (z − y)ᵀ`` of a gradient written without its softmax, so one variant covers both.
* ``softmax-over-all`` and ``wrong-axis`` need a batch; over one sample the first is the truth.
  ``softmax-twice`` is softmax's alone: log-softmax applied to log-probabilities changes nothing.
* ``l2-term`` and ``scale``: λW is not a multiple of the gradient, so they are never confused
  unless the gradient is itself a multiple of W; λ ≈ 0 is the candidate without it.
* When several candidates of the fewest mistakes match equally (a layer with K = 1, a zero input),
  all of them are reported: the answer really is consistent with each, and a note says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from ..maths import DEFAULT_REDUCTION, Array, Layer, softmax
from ..maths.forward_pass import forward_arrays
from ..maths.losses import CrossEntropy


@dataclass(frozen=True)
class Problem:
    """What is being verified: a checked layer, which derivative, and the loss for gradients.

    ``kind`` is ``"jacobian"`` (of ``of`` with respect to ``wrt``), ``"grad"`` (dLoss/dW) or
    ``"grad_b"`` (dLoss/db). ``target`` (N class indices) or ``upstream`` (N×K, dLoss/dh) define
    the loss of a gradient; ``reduce`` combines the batch; ``loss`` is the cross-entropy's options
    (class weights, an ignored index, label smoothing), None for the plain one.
    """

    L: Layer
    kind: str
    of: str = "h"
    wrt: str = "W"
    target: NDArray[np.intp] | None = None
    upstream: Array | None = None
    reduce: str = DEFAULT_REDUCTION
    loss: CrossEntropy | None = None

    @property
    def plain(self) -> bool:
        """Whether every mistake of the catalogue applies: they are written for the plain
        cross-entropy (or an upstream) through a softmax of K ≥ 2 outputs. With class weights,
        an ignored index or label smoothing, or a binary layer, only :data:`LOSS_FREE` do."""
        return (self.loss is None or self.loss.plain) and not self.L.binary

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


@dataclass(frozen=True)
class Variant:
    """One mistaken answer a mistake produces; exactly one of A, delta, factor, frame or term is set.

    ``fix`` replaces the mistake's own fix where this variant needs another. ``coincides`` is set
    when, on this problem, the variant's answer is also the right one (then a right answer is
    said to be consistent with it too: the check cannot tell them apart).
    """

    mistake: str
    detail: str
    A: Array | None = None
    delta: Array | None = None
    factor: float | None = None
    frame: str | None = None
    term: Array | None = None
    fix: str | None = None
    coincides: str = ""


@dataclass(frozen=True)
class Mistake:
    """A catalogue entry: id, what the mistaken answer is, the fix, and how to produce it."""

    id: str
    what: str
    fix: str
    variants: Callable[[Problem], list[Variant]] = field(default=lambda pr: [], repr=False)


def dz_variant(
    pr: Problem, mistake: str, detail: str, a: Array | float, b: Array | float, c: Array | float, T: float
) -> Variant:
    """A mistaken dh/dz of the form ``(diag(a) − b cᵀ) / T`` per sample (each of a, b, c N×K or a number).

    Softmax's is a = b = c = p; log-softmax's a = 1, b = 1, c = p; the slips change one of them.
    For a Jacobian it is made whole (N×K×K); for a gradient only ``dLoss/dz = gᵀ·dh/dz`` is made,
    ``(g ⊙ a − c·(g·b)) / T``, so no K×K matrix is formed.
    """
    N, K = pr.L.N, pr.L.K
    a, b, c = (np.broadcast_to(np.asarray(v, dtype=pr.forward[2].dtype), (N, K)) for v in (a, b, c))
    if pr.kind == "jacobian":
        A = -b[:, :, None] * c[:, None, :]
        k = np.arange(K)
        A[:, k, k] += a
        return Variant(mistake, detail, A=A / T)
    g = pr.dloss_dh()
    with np.errstate(
        invalid="ignore", over="ignore"
    ):  # −y/p where p underflowed: said by the truth's NaN too
        delta = (g * a - c * np.sum(g * b, axis=1, keepdims=True)) / T
    return Variant(mistake, detail, delta=delta)


def family_variant(pr: Problem, mistake: str, detail: str, P: Array, T: float, function: str) -> Variant:
    """The Jacobian of ``function`` (softmax or log-softmax) at probabilities P, as :func:`dz_variant`."""
    if function == "softmax":
        return dz_variant(pr, mistake, detail, P, P, P, T)
    return dz_variant(pr, mistake, detail, 1.0, 1.0, P, T)


def _diagonal_only(pr: Problem) -> list[Variant]:
    if not pr.through_softmax:
        return []
    P, T = pr.forward[2], pr.L.temperature
    if pr.L.function == "softmax":
        what = "dh/dz was taken as diag(h(1 − h)): the −h_t h_i terms (t ≠ i) are missing"
        return [dz_variant(pr, "diagonal-only", what, P * (1 - P), 0.0, 0.0, T)]
    what = "d log p/dz was taken as diag(1 − p): the −p_i terms (t ≠ i) are missing"
    return [dz_variant(pr, "diagonal-only", what, 1 - P, 0.0, 0.0, T)]


def _log_softmax_confusion(pr: Problem) -> list[Variant]:
    if not pr.through_softmax:
        return []
    P, T = pr.forward[2], pr.L.temperature
    if pr.L.function == "log-softmax":
        what = "softmax's Jacobian diag(p) − p pᵀ where log-softmax's I − 1 pᵀ was asked for"
        return [family_variant(pr, "log-softmax-confusion", what, P, T, "softmax")]
    return [
        family_variant(
            pr,
            "log-softmax-confusion",
            "log-softmax's Jacobian I − 1 pᵀ where softmax's diag(h) − h hᵀ was asked for",
            P,
            T,
            "log-softmax",
        ),
        dz_variant(
            pr,
            "log-softmax-confusion",
            "1 − p taken elementwise (the diagonal of log-softmax's Jacobian) as softmax's derivative",
            1 - P,
            0.0,
            0.0,
            T,
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
            fix=(
                f"If this is distillation's soft loss, the T² is deliberate (Hinton et al. scale it so that its "
                f"gradients keep their size as T changes) and your derivative is right for that loss: divide it "
                f"by T² = {T * T:g} to verify it. Otherwise drop the T²: softmax(z/T) brings exactly one 1/T."
            ),
        ),
    ]
    Z = pr.forward[0]
    P1 = softmax(Z)
    detail = "softmax taken of z, not z/T: the temperature left out of the forward pass and its derivative"
    if pr.kind != "jacobian" and pr.target is not None:
        out.append(Variant("temperature", detail, delta=P1 - one_hot(pr.target, pr.L.K, P1.dtype)))
    else:
        out.append(family_variant(pr, "temperature", detail, P1, 1.0, pr.L.function))
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
        'y − h where h − y was due, the "delta" convention of darknet, DL4J and neuroph'
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
    return [family_variant(pr, "wrong-axis", detail, P0, T, pr.L.function)]


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


def _logits_for_probabilities(pr: Problem) -> list[Variant]:
    if not pr.through_softmax:
        return []
    Z, P, T = pr.forward[0], pr.forward[2], pr.L.temperature
    mid = "logits-for-probabilities"
    if pr.L.function == "log-softmax":
        what = (
            "built from the logits z where the probabilities p = softmax(z) were due: I − 1 zᵀ for I − 1 pᵀ"
        )
        return [family_variant(pr, mid, what, Z, T, "log-softmax")]
    if pr.kind != "jacobian" and pr.target is not None:
        inner = (
            "x (z − y)ᵀ where x (h − y)ᵀ was due: the logits z in place of the probabilities h = softmax(z)"
        )
    else:
        inner = "dh/dz built as h_t(δ_ti − z_i) where h_t(δ_ti − h_i) was due: z in place of h = softmax(z)"
    outer = "dh/dz built from the logits as diag(z) − z zᵀ where diag(h) − h hᵀ, h = softmax(z), was due"
    return [dz_variant(pr, mid, inner, P, P, Z, T), family_variant(pr, mid, outer, Z, T, "softmax")]


def _softmax_over_all(pr: Problem) -> list[Variant]:
    if pr.L.N == 1 or not pr.through_softmax:
        return []
    Z, T = pr.forward[0], pr.L.temperature
    E = np.exp(Z / T - np.max(Z / T))
    P = E / E.sum()
    detail = (
        f"probabilities normalised over the whole N×K = {pr.L.N}×{pr.L.K} array (one sum over every sample and "
        f"class, as exp(Z) / exp(Z).sum() takes it) instead of each sample over its K classes"
    )
    if pr.kind != "jacobian" and pr.target is not None:
        return [Variant("softmax-over-all", detail, delta=(P - one_hot(pr.target, pr.L.K, P.dtype)) / T)]
    return [family_variant(pr, "softmax-over-all", detail, P, T, pr.L.function)]


def _softmax_twice(pr: Problem) -> list[Variant]:
    # log-softmax is idempotent (log p already sums to 1 in exp), so only softmax can be applied twice
    if pr.L.function != "softmax" or not pr.through_softmax or pr.upstream is not None:
        return []
    P, T = pr.forward[2], pr.L.temperature
    Q = softmax(P)  # the loss's own softmax, at temperature 1
    if pr.kind == "jacobian":
        return [
            Variant(
                "softmax-twice",
                "dh/dz of softmax(softmax(z)): softmax applied twice, J(q)·J(h) with q = softmax(h)",
                A=np.einsum("sta,sai->sti", softmax_dz(Q, 1.0), softmax_dz(P, T)),
            )
        ]
    assert pr.target is not None
    u = Q - one_hot(pr.target, pr.L.K, Q.dtype)  # the loss's gradient with respect to h, J(h)ᵀ applied below
    return [
        Variant(
            "softmax-twice",
            "the probabilities h fed to a loss that applies softmax again (CrossEntropyLoss after a softmax "
            "layer): Jᵀ(softmax(h) − y) where h − y was due",
            delta=P * (u - np.sum(u * P, axis=1, keepdims=True)) / T,
        )
    ]


def _identity_backward(pr: Problem) -> list[Variant]:
    if not pr.through_softmax:
        return []
    if pr.kind == "jacobian":
        what = "dh/dz taken as the identity I: the layer's own derivative left out (dz/d… given for dh/d…)"
        return [dz_variant(pr, "identity-backward", what, 1.0, 0.0, 0.0, 1.0)]
    g = pr.dloss_dh()
    detail = "the upstream gradient dL/dh passed through unchanged as dL/dz: the layer's backward taken as the identity"
    zero_sum = _sums_to(g, 0.0)
    if zero_sum and pr.L.function == "softmax":
        detail += (
            "; the upstream sums to 0 in every sample (as a squared error after softmax makes it), where this is "
            "also log-softmax's backward g − p·Σg: the two readings agree"
        )
    coincides = ""
    if pr.L.function == "log-softmax" and pr.L.temperature == 1 and zero_sum:
        coincides = (
            "the upstream sums to 0 over the classes in every sample, and then log-softmax's backward "
            "g − p·Σg is g itself: a backward that passes the upstream through unchanged gives this same "
            "answer, so this check cannot tell the two apart; verify again with an upstream that does not sum to 0"
        )
    return [
        Variant(
            "identity-backward",
            detail,
            delta=g,
            coincides=coincides,
        )
    ]


def _sums_to(g: Array, value: float) -> bool:
    """Whether every sample's upstream sums to ``value``, up to the rounding of its terms."""
    with np.errstate(invalid="ignore", over="ignore"):
        s, size = g.sum(axis=1), np.abs(g).sum(axis=1)
        return bool(np.all(np.isfinite(size)) and np.all(np.abs(s - value) <= 1e-12 * np.maximum(1.0, size)))


def _sums(v: Array) -> str:
    """The per-sample sums of an upstream gradient, in a few words."""
    s = v.sum(axis=1)
    if np.ptp(s) <= 1e-12 * max(1.0, float(np.max(np.abs(s)))):
        return f"sums to {s[0]:.4g}" + (" in every sample" if s.size > 1 else "")
    return f"sums to between {np.min(s):.4g} and {np.max(s):.4g} over the samples"


def _log_softmax_nll_shortcut(pr: Problem) -> list[Variant]:
    if pr.kind == "jacobian" or pr.L.function != "log-softmax":
        return []
    g, P, T = pr.dloss_dh(), pr.forward[2], pr.L.temperature
    coincides = ""
    if _sums_to(g, -1.0):
        coincides = (
            "the upstream sums to −1 in every sample (NLL's −y), where the shortcut g + exp(out) is right too: a "
            "backward written that way passes this check, and is wrong for any loss whose upstream does not sum to −1"
        )
    return [
        Variant(
            "log-softmax-nll-shortcut",
            "a log-softmax backward written as g + exp(out), which is right only when the upstream g sums to −1 in "
            f"each sample (NLL's −y); this upstream {_sums(g)}",
            delta=(g + P) / T,
            coincides=coincides,
        )
    ]


def _l2_term(pr: Problem) -> list[Variant]:
    if pr.kind == "grad":
        what, term = "W", pr.L.W if pr.L.layout == "in-out" else pr.L.W.T  # in W's shape as given
    elif pr.kind == "grad_b" and pr.L.b is not None:
        what, term = "b", pr.L.b[None, :]
    else:
        return []
    return [
        Variant(
            "l2-term",
            f"the gradient carries λ{what}: weight decay (or an L2 penalty ½λ‖{what}‖²) folded into dL/d{what}",
            term=term,
        )
    ]


def scale_reading(pr: Problem, c: float) -> tuple[str, str]:
    """What a fitted factor c most likely is, and its fix: 2, ½, 1/K, K, N, 1/N, a learning rate.

    One of those alone is read first; then a round number below 1 as a learning rate; then a
    product of two (2/K is a squared error averaged over the classes, 1/(N·K) a mean over every
    entry of the batch). Where a learning rate and a product both fit, both are said.

    >>> from smjac import make_layer
    >>> pr = Problem(make_layer(np.ones((3, 5)), np.ones(3)), "grad")
    >>> scale_reading(pr, 0.2)[0]
    'the truth times 0.2 = 1/K: averaged over the K = 5 classes as well as the samples'
    >>> scale_reading(pr, 0.4)[0]
    'the truth times 0.4 = a learning rate lr = 0.4 folded in (lr·g, the size of a step, not the gradient g) or 2/K: a squared loss differentiated without its ½ (d(a − y)²/da = 2(a − y)); averaged over the K = 5 classes as well as the samples'
    """
    L, r = pr.L, abs(c)
    parts = {
        "2": (
            2.0,
            "a squared loss differentiated without its ½ (d(a − y)²/da = 2(a − y))",
            "drop the stray 2",
        ),
        "½": (0.5, "a ½ too many (the ½ of ½‖a − y‖² where the loss has none)", "drop the stray ½"),
        "1/K": (
            1 / L.K,
            f"averaged over the K = {L.K} classes as well as the samples",
            "average over the samples only: sum each sample's loss over its classes, then take the mean over "
            "the batch (loss.sum(dim=1).mean(), not loss.mean())",
        ),
        "K": (float(L.K), f"summed over the K = {L.K} classes where they were averaged", "divide by K"),
        "N": (float(L.N), f"multiplied by the batch size N = {L.N}", "divide by N"),
        "1/N": (1 / L.N, f"divided by the batch size N = {L.N}", "multiply by N"),
    }
    if L.K <= 2:
        del parts["K"], parts["1/K"]  # 1/K would be 1 or ½: those are said instead
    if L.N == 1:
        del parts["N"], parts["1/N"]
    near = lambda a, b: abs(a - b) <= 1e-5 * abs(b)  # noqa: E731
    head = f"the truth times {c:.6g}"
    sign = "−" if c < 0 else ""
    readings: list[tuple[str, str]] = []

    def product(names: list[str]) -> tuple[str, str]:
        num = [f for f in names if f in ("2", "K", "N")]
        den = [{"½": "2", "1/K": "K", "1/N": "N"}[f] for f in names if f not in num]
        ratio = "·".join(num) or "1"
        if den:
            ratio += "/" + (den[0] if len(den) == 1 else f"({'·'.join(den)})")
        what = f"{sign}{'½' if names == ['½'] else ratio}: " + "; ".join(parts[f][1] for f in names)
        return what, "remove the factor: " + "; ".join(parts[f][2] for f in names)

    singles = [name for name, (v, _, _) in parts.items() if near(r, v)]
    if singles:
        readings.append(product(singles[:1]))
    else:
        if r < 1 and near(r, float(f"{r:.1g}")):
            step = "the update −lr·g a descent step applies" if c < 0 else "lr·g, the size of a step"
            readings.append(
                (
                    f"a learning rate lr = {r:.1g} folded in ({step}, not the gradient g)",
                    f"verify the gradient itself, taken before the optimizer step: divide by lr = {r:.1g}",
                )
            )
        opposite = ({"K", "1/K"}, {"N", "1/N"}, {"2", "½"})
        for (a, (va, _, _)), (b, (vb, _, _)) in itertools.combinations(parts.items(), 2):
            if {a, b} not in opposite and near(r, va * vb):
                readings.append(product([a, b]))
                break
    if not readings:
        return head, MISTAKES["scale"].fix
    detail = f"{head} = " + " or ".join(w for w, _ in readings)
    fix = "; or ".join(f for _, f in readings)
    return detail, fix[0].upper() + fix[1:] + "."


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
        "identity-backward",
        "the upstream gradient passed through unchanged: the layer's backward (dh/dz) taken as the identity",
        "Multiply the upstream g by the layer's Jacobian: dL/dz = h ⊙ (g − h·g) for softmax, g − h·Σg for "
        "log-softmax (which is g only when g sums to 0).",
        _identity_backward,
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
        'Flip the sign: the cross-entropy gradient is h − y, and a descent step subtracts it; a "delta" y − h '
        "(darknet, DL4J, neuroph) is the negative gradient.",
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
        "logits-for-probabilities",
        "built from the logits z where the probabilities h = softmax(z) were due: h_t(δ_ti − z_i), diag(z) − z zᵀ, z − y",
        "Apply softmax first and build the derivative from h = softmax(z): diag(h) − h hᵀ, and h − y for the "
        "cross-entropy gradient.",
        _logits_for_probabilities,
    ),
    Mistake(
        "softmax-over-all",
        "for a batch, probabilities normalised over the whole N×K array instead of each sample",
        "Normalise each sample over its own classes: exp(Z − Z.max(axis=1, keepdims=True)) divided by its sum over "
        "axis=1 (keepdims=True); a sum without an axis adds up the whole batch.",
        _softmax_over_all,
    ),
    Mistake(
        "softmax-twice",
        "softmax applied twice: probabilities fed to a loss that applies softmax again",
        "Give CrossEntropyLoss the logits z (it applies log-softmax itself) and drop the softmax before it, or keep "
        "the softmax and use NLLLoss on log h; the gradient with respect to z is then h − y.",
        _softmax_twice,
    ),
    Mistake(
        "log-softmax-nll-shortcut",
        "a log-softmax backward written as g + exp(out), right only when the upstream sums to −1 (NLL)",
        "Write log-softmax's backward for any upstream: g − exp(out)·Σg (PyTorch's grad − exp(out) * "
        "grad.sum(dim, keepdim=True)); g + exp(out) holds only where g sums to −1, as NLL's −y does.",
        _log_softmax_nll_shortcut,
    ),
    Mistake(
        "l2-term",
        "the gradient plus λW: weight decay or an L2 penalty folded in (reports λ)",
        "Verify the loss's own gradient: leave weight decay to the optimizer (or subtract λW, the L2 penalty's "
        "gradient) before comparing.",
        _l2_term,
    ),
    Mistake(
        "scale",
        "the truth times a constant not explained above (says when it is 2, ½, 1/K, N or a learning rate)",
        "Find the stray constant factor: a 2 from a squared loss, a ½, a mean over the classes, or a learning rate "
        "folded into the gradient.",
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
>>> MISTAKES["l2-term"].what
'the gradient plus λW: weight decay or an L2 penalty folded in (reports λ)'
"""


# The mistakes that do not depend on the loss's form or the number of classes: all verify looks for
# when the cross-entropy has options or the layer is binary (Problem.plain).
LOSS_FREE = ("sign", "zero-update", "transposed", "column-order", "l2-term")


def variants(pr: Problem) -> list[Variant]:
    """Every mistaken answer the catalogue produces on this problem, in the catalogue's order."""
    return [v for m in _CATALOGUE if pr.plain or m.id in LOSS_FREE for v in m.variants(pr)]
