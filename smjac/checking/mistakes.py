"""The catalogue of known mistakes in a softmax layer's derivatives, which :func:`smjac.verify` names.

Each :class:`Mistake` holds a stable id (it appears in ``smjac verify``'s JSON, for a script to
match on), what a mistaken answer is, a one-sentence fix, and ``variants(problem)``: the mistaken
answers the mistake produces on the layer being verified. Adding a mistake is one function (in
:mod:`.value_mistakes` for a wrong value, :mod:`.factor_mistakes` for the truth slipped) and one
row of ``_CATALOGUE``; :mod:`.problem` holds what they are made from. A variant is one of

* a mistaken ``dh/dz`` carried through the true chain rule: ``dz``, a diagonal and a few rank-one
  terms (:class:`Dz`, O(N·K)) for a Jacobian, or for a gradient only its product with the upstream
  (:func:`dz_variant` makes either from ``diag(a) − b cᵀ``, so no K×K matrix is ever formed);
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

from collections.abc import Callable
from dataclasses import dataclass, field

from . import factor_mistakes as factor
from . import value_mistakes as value
from .factor_mistakes import scale_reading
from .problem import Dz, Problem, Variant, dz_variant, family_variant, one_hot

# the ground the catalogue stands on and its readings live beside it; their names stay importable here
__all__ = [
    "LOSS_FREE",
    "LOSS_OPTIONS",
    "MISTAKES",
    "Dz",
    "Mistake",
    "Problem",
    "Variant",
    "dz_variant",
    "family_variant",
    "one_hot",
    "scale_reading",
    "variants",
]


@dataclass(frozen=True)
class Mistake:
    """A catalogue entry: id, what the mistaken answer is, the fix, and how to produce it."""

    id: str
    what: str
    fix: str
    variants: Callable[[Problem], list[Variant]] = field(default=lambda pr: [], repr=False)


_CATALOGUE = (
    Mistake(
        "diagonal-only",
        "built from dh/dz with only h(1−h) on its diagonal: the −h_i h_j terms dropped",
        "Use the whole Jacobian diag(h) − h hᵀ, ∂h_t/∂z_i = h_t(δ_ti − h_i), including the −h_t h_i terms for t ≠ i.",
        value.diagonal_only,
    ),
    Mistake(
        "transposed",
        "the truth transposed, or in the other layout (n×K for K×n)",
        "Transpose it: a Jacobian has one row per output and one column per input, and a gradient has W's own shape.",
        factor.transposed,
    ),
    Mistake(
        "column-order",
        "dh/dW with columns in j·K + i order instead of i·n + j",
        "Put w[i,j] at column i·n + j, PyTorch's weight.flatten() order: flatten W out-in (K×n), or Wᵀ in-out.",
        factor.column_order,
    ),
    Mistake(
        "batch-reduction",
        "summed where the reduction averages, or the reverse (a ratio of N)",
        'Your code may be right: tell verify how it combines the batch. Pass reduce="sum" if it '
        "sums the samples' gradients (loss.sum(), reduction='sum'), reduce=\"mean\" if it averages them (the "
        "default, as torch's CrossEntropyLoss, Keras and scikit-learn do).",
        factor.batch_reduction,
    ),
    Mistake(
        "temperature",
        "missing the 1/T, with an extra 1/T, scaled by T², or softmax of z instead of z/T",
        "Differentiate through z/T: each derivative of softmax(z/T) carries exactly one factor 1/T.",
        factor.temperature,
    ),
    Mistake(
        "identity-backward",
        "the upstream gradient passed through unchanged: the layer's backward (dh/dz) taken as the identity",
        "Multiply the upstream g by the layer's Jacobian: dL/dz = h ⊙ (g − h·g) for softmax, g − h·Σg for "
        "log-softmax (which is g only when g sums to 0).",
        value.identity_backward,
    ),
    Mistake(
        "log-softmax-confusion",
        "softmax's Jacobian where log-softmax's was asked for, the reverse, or 1 − p taken elementwise",
        "Use ∂log p_t/∂z_i = δ_ti − p_i for log-softmax and ∂p_t/∂z_i = p_t(δ_ti − p_i) for softmax.",
        value.log_softmax_confusion,
    ),
    Mistake(
        "missing-one-hot",
        "the cross-entropy gradient without the target's one-hot subtracted: x hᵀ for x (h − y)ᵀ",
        "Subtract the one-hot target: the cross-entropy gradient is x (h − y)ᵀ, not x hᵀ.",
        value.missing_one_hot,
    ),
    Mistake(
        "sign",
        "the negation of the truth (y − h for h − y)",
        'Flip the sign: the cross-entropy gradient is h − y, and a descent step subtracts it; a "delta" y − h '
        "(darknet, DL4J, neuroph) is the negative gradient.",
        factor.sign,
    ),
    Mistake(
        "wrong-axis",
        "for a batch, softmax normalised over the samples instead of the classes",
        "Normalise each sample over its K classes: softmax along the last axis (dim=-1), not over the batch.",
        value.wrong_axis,
    ),
    Mistake(
        "zero-update",
        "all zeros: the column sums of dh/dW, as the post ends by suggesting",
        "Weight dh/dW by the upstream gradient dLoss/dh instead of summing its columns, which are 0 for softmax.",
        factor.zero_update,
    ),
    Mistake(
        "logits-for-probabilities",
        "built from the logits z where the probabilities h = softmax(z) were due: h_t(δ_ti − z_i), diag(z) − z zᵀ, z − y",
        "Apply softmax first and build the derivative from h = softmax(z): diag(h) − h hᵀ, and h − y for the "
        "cross-entropy gradient.",
        value.logits_for_probabilities,
    ),
    Mistake(
        "softmax-over-all",
        "for a batch, probabilities normalised over the whole N×K array instead of each sample",
        "Normalise each sample over its own classes: exp(Z − Z.max(axis=1, keepdims=True)) divided by its sum over "
        "axis=1 (keepdims=True); a sum without an axis adds up the whole batch.",
        value.softmax_over_all,
    ),
    Mistake(
        "softmax-twice",
        "softmax applied twice: probabilities fed to a loss that applies softmax again",
        "Give CrossEntropyLoss the logits z (it applies log-softmax itself) and drop the softmax before it, or keep "
        "the softmax and use NLLLoss on log h; the gradient with respect to z is then h − y.",
        value.softmax_twice,
    ),
    Mistake(
        "log-softmax-nll-shortcut",
        "a log-softmax backward written as g + exp(out), right only when the upstream sums to −1 (NLL)",
        "Write log-softmax's backward for any upstream: g − exp(out)·Σg (PyTorch's grad − exp(out) * "
        "grad.sum(dim, keepdim=True)); g + exp(out) holds only where g sums to −1, as NLL's −y does.",
        value.log_softmax_nll_shortcut,
    ),
    Mistake(
        "l2-term",
        "the gradient plus λW: weight decay or an L2 penalty folded in (reports λ)",
        "Verify the loss's own gradient: leave weight decay to the optimizer (or subtract λW, the L2 penalty's "
        "gradient) before comparing.",
        factor.l2_term,
    ),
    Mistake(
        "missing-class-weights",
        "the plain cross-entropy's gradient where the loss has class weights",
        "Weight each sample's p − y by its class's weight w_y, and for a mean divide by Σ w_y over the "
        "samples, not by N (torch's CrossEntropyLoss(weight=w)).",
        value.missing_class_weights,
    ),
    Mistake(
        "missing-ignore-index",
        "the plain cross-entropy's gradient where the loss ignores a class: its samples counted",
        "Leave out the samples whose target is ignore_index: they add nothing to the gradient, and a mean "
        "divides by the number of the others (torch's ignore_index).",
        value.missing_ignore_index,
    ),
    Mistake(
        "missing-label-smoothing",
        "the plain cross-entropy's gradient where the loss smooths its labels",
        "Smooth the target before subtracting it: (1 − ε)·y + ε/K, so the gradient is p − (1 − ε)y − ε/K "
        "(weighted by the class weights as torch does when there are any).",
        value.missing_label_smoothing,
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
        "Give the derivative in the shape verify expects, or tell verify what you computed: which derivative, "
        "and for a Jacobian what of and with respect to what (of, wrt).",
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
# The cross-entropy's options left out: looked for only when the loss has them.
LOSS_OPTIONS = ("missing-class-weights", "missing-ignore-index", "missing-label-smoothing")


def variants(pr: Problem) -> list[Variant]:
    """Every mistaken answer the catalogue produces on this problem, in the catalogue's order."""
    return [
        v for m in _CATALOGUE if pr.plain or m.id in LOSS_FREE or m.id in LOSS_OPTIONS for v in m.variants(pr)
    ]
