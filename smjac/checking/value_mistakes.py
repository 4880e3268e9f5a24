"""Mistaken values: a wrong dh/dz, or a wrong dLoss/dz, carried through the true chain rule.

Each function takes a :class:`~smjac.checking.problem.Problem` and returns the mistaken answers
(:class:`~smjac.checking.problem.Variant`) its slip makes on it, or none where the slip cannot
happen (a Jacobian of z goes through no softmax; a single sample has no batch axis to confuse).
The catalogue (:mod:`smjac.checking.mistakes`) names them and says how to fix each. The last three
are the cross-entropy's options left out: a gradient written for the plain loss.
"""

from __future__ import annotations

import numpy as np

from ..maths import Array, softmax
from ..maths.losses import CrossEntropy
from .problem import Problem, Variant, dz_variant, family_variant, one_hot


def diagonal_only(pr: Problem) -> list[Variant]:
    if not pr.through_softmax:
        return []
    P, T = pr.forward[2], pr.L.temperature
    if pr.L.function == "softmax":
        what = "dh/dz was taken as diag(h(1 − h)): the −h_t h_i terms (t ≠ i) are missing"
        return [dz_variant(pr, "diagonal-only", what, P * (1 - P), 0.0, 0.0, T)]
    what = "d log p/dz was taken as diag(1 − p): the −p_i terms (t ≠ i) are missing"
    return [dz_variant(pr, "diagonal-only", what, 1 - P, 0.0, 0.0, T)]


def log_softmax_confusion(pr: Problem) -> list[Variant]:
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


def missing_one_hot(pr: Problem) -> list[Variant]:
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


def wrong_axis(pr: Problem) -> list[Variant]:
    if pr.L.N == 1 or not pr.through_softmax:
        return []
    Z, T = pr.forward[0], pr.L.temperature
    P0 = softmax(Z / T, axis=0)
    detail = f"softmax normalised over the N = {pr.L.N} samples (axis 0) instead of the K = {pr.L.K} classes"
    if pr.kind != "jacobian" and pr.target is not None:
        return [Variant("wrong-axis", detail, delta=(P0 - one_hot(pr.target, pr.L.K, P0.dtype)) / T)]
    return [family_variant(pr, "wrong-axis", detail, P0, T, pr.L.function)]


def logits_for_probabilities(pr: Problem) -> list[Variant]:
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


def softmax_over_all(pr: Problem) -> list[Variant]:
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


def softmax_twice(pr: Problem) -> list[Variant]:
    # log-softmax is idempotent (log p already sums to 1 in exp), so only softmax can be applied twice
    if pr.L.function != "softmax" or not pr.through_softmax or pr.upstream is not None:
        return []
    P, T = pr.forward[2], pr.L.temperature
    Q = softmax(P)  # the loss's own softmax, at temperature 1
    if pr.kind == "jacobian":
        # (diag(q) − q qᵀ)(diag(h) − h hᵀ) = diag(q⊙h) − (q⊙h) hᵀ − q (q⊙h)ᵀ + (q·h) q hᵀ: no K×K needed
        qh = Q * P
        what = "dh/dz of softmax(softmax(z)): softmax applied twice, J(q)·J(h) with q = softmax(h)"
        both = -np.sum(qh, axis=1, keepdims=True) * Q
        return [dz_variant(pr, "softmax-twice", what, qh, qh, P, T, more=((Q, qh), (both, P)))]
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


def identity_backward(pr: Problem) -> list[Variant]:
    if not pr.through_softmax:
        return []
    if pr.kind == "jacobian":
        what = "dh/dz taken as the identity I: the layer's own derivative left out (dz/d… given for dh/d…)"
        return [dz_variant(pr, "identity-backward", what, 1.0, 0.0, 0.0, 1.0)]
    g = pr.dloss_dh()
    detail = "the upstream gradient dL/dh passed through unchanged as dL/dz: the layer's backward taken as the identity"
    zero_sum = sums_to(g, 0.0)
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


def sums_to(g: Array, value: float) -> bool:
    """Whether every sample's upstream sums to ``value``, up to the rounding of its terms."""
    with np.errstate(invalid="ignore", over="ignore"):
        s, size = g.sum(axis=1), np.abs(g).sum(axis=1)
        return bool(np.all(np.isfinite(size)) and np.all(np.abs(s - value) <= 1e-12 * np.maximum(1.0, size)))


def sums(v: Array) -> str:
    """The per-sample sums of an upstream gradient, in a few words."""
    s = v.sum(axis=1)
    if np.ptp(s) <= 1e-12 * max(1.0, float(np.max(np.abs(s)))):
        return f"sums to {s[0]:.4g}" + (" in every sample" if s.size > 1 else "")
    return f"sums to between {np.min(s):.4g} and {np.max(s):.4g} over the samples"


def log_softmax_nll_shortcut(pr: Problem) -> list[Variant]:
    if pr.kind == "jacobian" or pr.L.function != "log-softmax":
        return []
    g, P, T = pr.dloss_dh(), pr.forward[2], pr.L.temperature
    coincides = ""
    if sums_to(g, -1.0):
        coincides = (
            "the upstream sums to −1 in every sample (NLL's −y), where the shortcut g + exp(out) is right too: a "
            "backward written that way passes this check, and is wrong for any loss whose upstream does not sum to −1"
        )
    return [
        Variant(
            "log-softmax-nll-shortcut",
            "a log-softmax backward written as g + exp(out), which is right only when the upstream g sums to −1 in "
            f"each sample (NLL's −y); this upstream {sums(g)}",
            delta=(g + P) / T,
            coincides=coincides,
        )
    ]


def option_left_out(pr: Problem, option: str, mistake: str, detail: str) -> list[Variant]:
    """The gradient of the cross-entropy with one of its options left out (the others kept).

    Only where the option changes the answer: class weights at all, label smoothing above 0, and
    an ignore_index some target takes (one no class has, such as torch's −100, could not have
    been forgotten: the plain cross-entropy cannot index it).
    """
    loss, t = pr.loss, pr.target
    if pr.kind == "jacobian" or loss is None or t is None or pr.L.binary or option not in loss.options():
        return []
    if option == "ignore_index" and (loss.kept(t) is None or not 0 <= int(loss.ignore_index or 0) < pr.L.K):
        return []
    ce = CrossEntropy(**{k: v for k, v in loss.options().items() if k != option})
    delta = ce.gradient(pr.forward[2], t, pr.L.temperature)
    if pr.reduce == "mean":  # verify divides a mean by N: this loss divides by its own denominator
        delta = delta * (pr.L.N / ce.denominator(t, "mean"))
    return [Variant(mistake, detail, delta=delta)]


def missing_class_weights(pr: Problem) -> list[Variant]:
    weighted = "" if pr.reduce == "sum" else ", and the mean taken over the samples, not over their weights"
    detail = f"the cross-entropy's gradient without its class_weights: each sample counted once{weighted}"
    return option_left_out(pr, "class_weights", "missing-class-weights", detail)


def missing_ignore_index(pr: Problem) -> list[Variant]:
    ii = None if pr.loss is None else pr.loss.ignore_index
    taken = 0 if pr.target is None else int(np.count_nonzero(pr.target == ii))
    detail = (
        f"the {taken} sample{'s' * (taken != 1)} whose target is ignore_index={ii} counted as any other, "
        "as if nothing were ignored"
    )
    return option_left_out(pr, "ignore_index", "missing-ignore-index", detail)


def missing_label_smoothing(pr: Problem) -> list[Variant]:
    eps = 0.0 if pr.loss is None else pr.loss.label_smoothing
    detail = f"the one-hot target y where label_smoothing={eps:g} makes it (1 − ε)·y + ε/K: p − y for p − (1 − ε)y − ε/K"
    return option_left_out(pr, "label_smoothing", "missing-label-smoothing", detail)
