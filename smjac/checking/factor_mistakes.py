"""The truth itself, slipped: times a factor, rearranged, or with a term added.

A factor (a lost sign, a ratio N of the batch, a power of T, 0) is tried on the truth and on
every mistaken value, alone and in products; an arrangement (transposed, another column order)
is a way of reading the answer's entries; a term (λW) has its coefficient fitted. A factor no
mistake names is fitted too (``scale``), and :func:`scale_reading` says what it likely is.
"""

from __future__ import annotations

import itertools

from ..maths import softmax
from .problem import Problem, Variant, family_variant, one_hot


def temperature(pr: Problem) -> list[Variant]:
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


def batch_reduction(pr: Problem) -> list[Variant]:
    N = pr.L.N
    if pr.kind == "jacobian" or N == 1:
        return []
    if pr.reduce == "mean":
        return [
            Variant(
                "batch-reduction",
                f'summed over the N = {N} samples where reduce="mean" averages them: {N} times too large',
                factor=float(N),
            )
        ]
    return [
        Variant(
            "batch-reduction",
            f'averaged over the N = {N} samples where reduce="sum" sums them: {N} times too small',
            factor=1 / N,
        )
    ]


def sign(pr: Problem) -> list[Variant]:
    what = (
        'y − h where h − y was due, the "delta" convention of darknet, DL4J and neuroph'
        if pr.kind != "jacobian" and pr.target is not None
        else "a lost minus sign"
    )
    return [Variant("sign", f"the negation of the truth ({what})", factor=-1.0)]


def zero_update(pr: Problem) -> list[Variant]:
    return [
        Variant(
            "zero-update",
            "all zeros: what summing the columns of dh/dW gives, since each column of softmax's Jacobian sums to 0",
            factor=0.0,
        )
    ]


def transposed(pr: Problem) -> list[Variant]:
    if pr.kind == "jacobian":
        what = "the transpose of the truth: one row per input and one column per output (as the post prints dh/dW)"
    elif pr.kind == "grad":
        other = "out-in (K×n)" if pr.L.layout == "in-out" else "in-out (n×K)"
        what = f"the truth transposed, i.e. in the other layout, {other}"
    else:
        return []
    return [Variant("transposed", what, frame="T")]


def column_order(pr: Problem) -> list[Variant]:
    if pr.kind != "jacobian" or not pr.wrt_target.factored or pr.L.n == 1 or pr.L.K == 1:
        return []
    return [
        Variant(
            "column-order",
            "dh/dW with w[i,j] at column j·K + i (a row-major flatten of W in-out) instead of i·n + j",
            frame="co",
        )
    ]


def l2_term(pr: Problem) -> list[Variant]:
    if pr.kind == "grad":
        what, term = "W", pr.L.as_given(pr.L.W)  # in W's shape as given
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


def scale_reading(pr: Problem, c: float) -> tuple[str, str | None]:
    """What a fitted factor c most likely is, and its fix: 2, ½, 1/K, K, N, 1/N, a learning rate.

    One of those alone is read first; then a round number below 1 as a learning rate; then a
    product of two (2/K is a squared error averaged over the classes, 1/(N·K) a mean over every
    entry of the batch). Where a learning rate and a product both fit, both are said.

    >>> import numpy as np
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
        return head, None
    detail = f"{head} = " + " or ".join(w for w, _ in readings)
    fix = "; or ".join(f for _, f in readings)
    return detail, fix[0].upper() + fix[1:] + "."
