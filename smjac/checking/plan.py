"""What a check will cost and whether it can be done, known before any work.

:func:`check_plan` counts the weights moved, the forward passes and the memory (from
:func:`smjac.maths.estimate_bytes`) and refuses a check over its limits;
:func:`check_temperature` refuses a temperature finite differences cannot resolve.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..budget import checked, format_size
from ..errors import InputError
from ..maths import Layer, estimate_bytes
from .loss_check import two_class_layer

EIGEN_MAX_K = 512  # above it the K³ eigenvalue check would outweigh every other check: it is left out


def forward_passes(L: Layer, probes: int | None = None) -> int:
    """How many times :func:`~smjac.checking.checks.check` evaluates the layer for its finite differences.

    Four per variable probed (two steps, each both ways) among z (K), W (K·n, for h and again for
    the cross-entropy loss) and x (n), per sample; each pass costs O(K·n) in turn.
    """
    K, Kn, n = (size if probes is None else min(probes, size) for size in (L.K, L.K * L.n, L.n))
    return 4 * (2 * Kn + n + K) * L.N


def loss_passes(L: Layer, probes: int | None = None) -> int:
    """Forward passes of the batch's loss-gradient check (:mod:`.loss_check`): four losses of the
    whole batch (N samples) per weight moved, and per bias."""
    moved = L.K * L.n if probes is None else min(probes, L.K * L.n)
    return 4 * (moved + (0 if L.b is None else L.K)) * L.N


def check_passes(L: Layer, probes: int | None = None, *, target: bool = False) -> int:
    """Every forward pass :func:`~smjac.checking.checks.layer_check` makes, as its ``progress``
    counts them: each sample's (:func:`forward_passes` of the layer checked, a binary layer's
    two-class one) and, with a ``target`` (or a binary layer), the batch loss's (:func:`loss_passes`).

    >>> from smjac.maths import make_layer
    >>> check_passes(make_layer(np.ones((2, 3)), [1.0, 2.0]))  # 4·(2·6 + 2 + 3)
    68
    """
    checked = two_class_layer(L) if L.binary else L
    return forward_passes(checked, probes) + (loss_passes(L, probes) if target or L.binary else 0)


@dataclass(frozen=True)
class CheckPlan:
    """What :func:`~smjac.checking.checks.layer_check` will cost, known before it starts.

    ``weights`` are the weights moved in all (per sample, times the samples), ``passes`` the
    forward-pass-equivalents finite differences make (:func:`forward_passes`; a weight's probe
    costs O(K + n), counted as one), ``work`` an operation count (multiply-adds, roughly) and
    ``memory`` the peak bytes (:func:`smjac.maths.estimate_bytes` with ``"check"``).
    """

    weights: int
    passes: int
    work: int
    memory: int


def check_plan(
    L: Layer,
    probes: int | None = None,
    *,
    max_weights: int = 0,
    max_memory: int | None = None,
) -> CheckPlan:
    """The cost of checking ``L`` with ``probes``, refusing one over ``max_weights`` (0: no limit)
    or ``max_memory`` bytes (None: no limit), with the way on (``probes``).

    Raises
    ------
    InputError
        Over a limit; the message names ``probes`` and the limit to raise, as parameters
        (``probes=N``, ``max_weights``): the command line spells them as its flags.

    Examples
    --------
    >>> from smjac.maths import make_layer
    >>> check_plan(make_layer(np.ones((2, 3)), [1.0, 2.0])).weights
    6
    >>> check_plan(make_layer(np.ones((100, 1000)), np.ones(100)), max_weights=50_000)
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: K·n = 100,000 weights over max_weights=50000: finite differences would take about 804,400 forward passes. Check a random few with probes=N (1000, say), or raise max_weights (0: no limit) to wait
    """
    if probes is not None and (
        isinstance(probes, bool | np.bool_) or not isinstance(probes, numbers.Integral)
    ):
        raise InputError(f"probes must be a whole number, not {probes!r}")
    if probes is not None and probes < 1:
        raise InputError(f"probes must be at least 1, not {probes}")
    max_memory = checked(max_memory)
    K, n, N = L.K, L.n, L.N
    moved = min(K * n, probes or K * n)
    passes = forward_passes(L, probes)
    m_z, m_x = (size if probes is None else min(probes, size) for size in (K, n))
    # per sample: weights O(K + n) a probe; logits and inputs a full pass, O(K·n); dh/dz's K² and
    # its eigenvalues, K³; the Jacobians compared, K·(columns)
    eigen = K**3 if K <= EIGEN_MAX_K else 0
    work = N * (8 * moved * (K + n) + 4 * (m_z + m_x) * K * n + eigen + 4 * K * moved + 4 * K * n)
    memory = estimate_bytes(L, "check", probes=probes)
    if max_weights and moved * N > max_weights:
        what = f"K·n = {K * n:,} weights" if moved == K * n else f"probes={moved} weights"
        samples = f" and {N} samples, {moved * N:,} in all," if L.batched else ""
        raise InputError(
            f"{what}{samples} over max_weights={max_weights}: finite differences would take about "
            f"{passes:,} forward passes. Check a random few with probes=N (1000, say), "
            "or raise max_weights (0: no limit) to wait"
        )
    if max_memory is not None and memory > max_memory:
        raise InputError(
            f"check would take about {format_size(memory)} ({moved:,} weights probed against K = {K:,} "
            f"outputs; dh/dz alone is K×K, {format_size(K * K * L.W.dtype.itemsize)}), over the memory "
            f"budget of {format_size(max_memory)} (max_memory). Probe fewer weights with probes=N, "
            "or raise max_memory"
        )
    return CheckPlan(weights=moved * N, passes=passes, work=work, memory=memory)


def check_temperature(L: Layer) -> None:
    """Refuse a temperature too small for finite differences to resolve (before any work).

    A probe moves z by about ``T·ε^(1/3)``; below the smallest normal number that step loses its
    digits (and at T < 1/max it is 0, and p/T overflows), so every comparison would be noise.
    """
    info = np.finfo(L.W.dtype)
    least = float(info.tiny) / float(info.eps) ** (1 / 3)
    if L.temperature < least:
        raise InputError(
            f"check cannot resolve finite differences at temperature={L.temperature:.3g}: a probe moves z "
            f"by about T·ε^(1/3), below {L.W.dtype}'s smallest normal number {float(info.tiny):.3g}; "
            f"use T ≥ {least * 1.05:.2g} (forward, jacobian and grad take smaller ones)"
        )
