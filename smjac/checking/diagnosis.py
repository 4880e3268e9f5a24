"""The candidates verify tries, and the reading of those the answer matches.

:func:`candidates` builds every candidate mistake in every arrangement the answer's shape allows;
after the comparison, :func:`diagnose` names the simplest that match (fewest mistakes, named ones
before a fitted scale), with the fix, and :func:`agreeing` what a right answer cannot be told
apart from.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..maths import BLOCK_BYTES
from . import mistakes as cat
from .comparison import Stats, Trial
from .sources import FRAME_IDS, Dense, Source, source
from .verdict import Diagnosis

Part = tuple[tuple[str, ...], tuple[str, ...], tuple[str | None, ...]]  # ids, details, fixes


def named_factors(variants: list[cat.Variant]) -> list[tuple[Part, float]]:
    """The named factors and their products, at most one of each mistake, in the catalogue's order.

    The empty product (1) comes first. A product of 1 (T = N with ``temperature`` against
    ``batch-reduction``) would be the candidate itself and is left out; 0 (``zero-update``) stands alone.
    """
    by_mistake: dict[str, list[cat.Variant]] = {}
    for v in variants:
        if v.factor is not None:
            by_mistake.setdefault(v.mistake, []).append(v)
    out: list[tuple[Part, float]] = []
    for pick in itertools.product(*([None, *vs] for vs in by_mistake.values())):
        chosen = [v for v in pick if v is not None]
        value = float(np.prod([float(v.factor or 0.0) for v in chosen]))
        if chosen and (value == 1.0 or (value == 0.0 and len(chosen) > 1)):
            continue
        out.append(
            (
                (
                    tuple(v.mistake for v in chosen),
                    tuple(v.detail for v in chosen),
                    tuple(v.fix for v in chosen),
                ),
                value,
            )
        )
    return out


def candidates(
    pr: cat.Problem,
    fitting: list[str],
    truth: Source,
    atol: float,
    rtol: float,
    variants: list[cat.Variant],
    block_bytes: int = BLOCK_BYTES,
) -> list[Trial]:
    """Every candidate in every arrangement the answer's shape allows: arrangement × value × factor.

    A value is the truth or a mistake's own answer; on each, every named factor and product of
    them (``sign``, ``batch-reduction``, ``temperature``) is tried, then a fitted factor
    (``scale``), and for a gradient a fitted ``l2-term`` on top of each. Ids run in that order:
    arrangement, value, factors, scale, l2-term. ``variants`` are the catalogue's on this problem
    (:func:`smjac.checking.mistakes.variants`); a value made by blocks of rows takes one pass of
    ``block_bytes`` blocks for its largest entry.
    """
    values: list[tuple[Part, Source | None, float, tuple[str, ...]]] = [
        (((), (), ()), None, truth.max_abs, ())
    ]
    terms: list[tuple[Part, Source]] = []
    for v in variants:
        part = ((v.mistake,), (v.detail,), (v.fix,))
        if v.term is not None:
            terms.append((part, Dense(np.asarray(v.term, dtype=np.float64)[None])))
        elif v.dz is not None or v.delta is not None:
            made = source(pr, dz=v.dz, delta=v.delta, block_bytes=block_bytes)
            values.append((part, made, made.max_abs, (f"{v.mistake}: {v.coincides}",) if v.coincides else ()))
    factors = named_factors(variants)
    arrangement = {v.mistake: (v.mistake, v.detail, v.fix) for v in variants if v.frame is not None}
    out = []
    for f in fitting:
        fids = FRAME_IDS[f]
        framed: Part = (fids, tuple(arrangement[i][1] for i in fids), tuple(arrangement[i][2] for i in fids))
        for (vids, vdet, vfix), src, size, notes in values:
            own_tol = atol + rtol * size  # a fitted number that moves the candidate less is no mistake
            for (cids, cdet, cfix), c in factors:
                if src is not None and c == 0.0:
                    continue  # zeros twice over
                ids, details, fixes = (
                    (*framed[0], *vids, *cids),
                    (*framed[1], *vdet, *cdet),
                    (*framed[2], *vfix, *cfix),
                )
                if ids:  # not the truth as it stands: the stats judge that
                    note = notes if not cids and f == "std" else ()
                    out.append(
                        Trial(
                            ids,
                            details,
                            fixes,
                            f,
                            src,
                            size,
                            c,
                            atol=atol,
                            rtol=rtol,
                            unit_tol=own_tol,
                            notes=note,
                        )
                    )
                for (tids, tdet, tfix), term in terms:
                    if c != 0.0:
                        out.append(
                            Trial(
                                (*ids, *tids), (*details, *tdet), (*fixes, *tfix), f, src, size, c,
                                term=term, term_max=term.max_abs, atol=atol, rtol=rtol, unit_tol=own_tol,
                            )
                        )  # fmt: skip
            out.append(
                Trial(
                    (*framed[0], *vids, "scale"), (*framed[1], *vdet, ""), (*framed[2], *vfix, None), f, src, size,
                    None, fit=True, atol=atol, rtol=rtol, unit_tol=own_tol,
                )
            )  # fmt: skip
    return out


def read_trial(pr: cat.Problem, t: Trial) -> list[tuple[str, str, str | None]]:
    """A matched trial's mistakes as (id, detail, fix), with its fitted numbers said in words.

    A fitted negative factor is read as ``sign`` and a positive ``scale``; λ is the multiple of W
    the answer holds, its sign taken with the whole under a ``sign`` mistake (``−(g + λW)``).
    """
    out: list[tuple[str, str, str | None]] = []
    for mid, detail, fix in zip(t.ids, t.details, t.fixes, strict=True):
        if mid == "scale":
            assert t.factor is not None
            if t.factor < 0:
                out.append(("sign", cat.MISTAKES["sign"].variants(pr)[0].detail, None))
            detail, fix = cat.scale_reading(pr, t.factor)
        elif mid == "l2-term" and t.coef is not None:
            # as the answer holds it: a sign mistake flips the whole −(g + λW), other factors only g
            detail = f"{detail}, λ = {t.coef * np.sign(t.factor or 1.0):.6g}"
        out.append((mid, detail, fix))
    return out


def diagnose(
    pr: cat.Problem, trials: list[Trial], stats: Stats, dtype: np.dtype, a: np.ndarray
) -> tuple[tuple[Diagnosis, ...], tuple[str, ...]]:
    """The simplest matching explanations: fewest mistakes, named ones before a fitted scale.

    Where explanations of the same size all match, each is reported, and a note says that the
    numbers cannot tell them apart.
    """
    out: list[Diagnosis] = []
    if stats.non_finite:
        out.append(non_finite(pr, stats, dtype, a.size))
    matched = [(t, read_trial(pr, t)) for t in trials if t.alive and t.ids]
    named = [m for m in matched if "scale" not in m[0].ids]
    pool = named or matched
    notes: list[str] = []
    if pool:
        fewest = min(len(r) for _, r in pool)
        chosen = [(t, r) for t, r in pool if len(r) == fewest]
        seen: set[str] = set()
        for t, readings in chosen:
            for mid, detail, fix in readings:
                with_others = [o for o, _, _ in readings if o != mid]
                if with_others:
                    detail += f" (together with {', '.join(with_others)})"
                key = f"{mid}: {detail}"
                if key not in seen:
                    seen.add(key)
                    out.append(
                        Diagnosis(
                            mid,
                            detail + f"; residual after undoing it {t.residual:.3g} ≤ {t.tol:.3g}",
                            fix or cat.MISTAKES[mid].fix,
                        )
                    )
        groups = list(dict.fromkeys(" + ".join(m for m, _, _ in r) for _, r in chosen))
        if len(groups) > 1:
            notes.append(
                f"these readings agree on this answer: {'; '.join(groups)}; the numbers cannot tell them apart"
            )
    return tuple(out), tuple(notes)


def agreeing(trials: list[Trial]) -> tuple[str, ...]:
    """For a right answer: the mistakes that give the same answer on this problem, and why."""
    return tuple(dict.fromkeys(n for t in trials if t.alive for n in t.notes))


def non_finite(pr: cat.Problem, stats: Stats, dtype: np.dtype, a_size: int) -> Diagnosis:
    Z = pr.forward[0] / pr.L.temperature
    limit = float(np.log(np.finfo(dtype).max))
    top = float(np.max(Z))
    spread = float(np.max(np.max(Z, axis=1) - np.min(Z, axis=1)))
    if top > limit:
        cause = (
            f"likely a softmax without the max shift: exp(z) overflows {dtype} past z ≈ {limit:.4g}, and this "
            f"layer's largest logit is {top:.4g}, so exp(z)/Σexp(z) is inf/inf = NaN"
        )
    elif spread > -float(np.log(np.finfo(dtype).tiny)):
        cause = (
            f"likely a probability that underflowed to 0 (the logits span {spread:.4g}) and was then divided by "
            "or taken the log of: 1/0 = inf, log 0 = −inf"
        )
    else:
        cause = "this layer's logits neither overflow nor underflow exp: look for a division by zero or 0·inf"
    return Diagnosis(
        "non-finite",
        f"{stats.non_finite} of {a_size} entries are NaN or infinite; {cause}",
        cat.MISTAKES["non-finite"].fix,
    )
