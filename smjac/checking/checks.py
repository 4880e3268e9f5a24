"""Cross-examine a layer's derivatives: against each other, finite differences and identities.

Pure numpy, like :mod:`smjac.maths`; :func:`check` is what ``smjac check`` runs. Finite
differences are :mod:`.finite_differences`; what a check costs, and the refusals before it starts,
:mod:`.plan`; the batch's loss gradient, :mod:`.loss_check`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError
from ..maths import (
    DEFAULT_REDUCTION,
    REDUCTIONS,
    Array,
    Layer,
    LayerOptions,
    Reduction,
    grad,
    layer_factors,
    layer_jacobian,
    layer_options,
    log_softmax,
    make_layer,
)
from ..maths.forward_pass import check_finite_W, forward_arrays
from ..maths.functions import complement
from ..maths.jacobians import dh_dz
from ..maths.losses import CrossEntropy
from ..maths.numeric import check_choice
from .finite_differences import numerical_jacobian, weight_differences
from .loss_check import loss_gradient_check, two_class_layer
from .plan import EIGEN_MAX_K, CheckPlan, check_passes, check_plan, check_temperature, forward_passes
from .tolerances import CHECK_ATOL, default_rtol, given
from .verdict import SCHEMA

if TYPE_CHECKING:
    from ..maths.layer import Unpack

# finite differences and the plan live in their own modules; their names stay importable from here
__all__ = [
    "EIGEN_MAX_K",
    "Check",
    "CheckPlan",
    "CheckReport",
    "check",
    "check_passes",
    "check_plan",
    "forward_passes",
    "layer_check",
    "numerical_jacobian",
]


@dataclass(frozen=True)
class Check:
    """One line of a check report: ``ok`` when ``max_error ≤ tolerance`` for every sample.

    ``max_error`` and ``tolerance`` are those of the sample that came closest to failing,
    ``sample`` (None for a single input); ``failed`` lists every sample that failed.
    """

    name: str
    max_error: float
    tolerance: float
    ok: bool
    sample: int | None = None
    failed: tuple[int, ...] = ()
    id: str = ""  # stable, for scripts: the name changes with the function and with probes, the id does not

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "max_error": self.max_error,
            "tolerance": self.tolerance,
            "ok": self.ok,
            **({} if self.sample is None else {"sample": self.sample, "failed": list(self.failed)}),
        }


@dataclass(frozen=True)
class CheckReport:
    """All the checks :func:`check` ran; ``ok`` when every one holds."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``smjac check``: schema, ok, and each check with its stable id.

        >>> [c["id"] for c in check([[0.1, 0.2], [0.3, 0.4]], [1.0, 2.0]).to_dict()["checks"]][:2]
        ['sums-to-one', 'dh-dz-rows-sum-to-zero']
        """
        return {"schema": SCHEMA, "ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


def _probe(size: int, probes: int | None, rng: np.random.Generator) -> NDArray[np.intp]:
    """All of ``range(size)``, or ``probes`` of them drawn at random (sorted)."""
    if probes is None or probes >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, probes, replace=False))


def _sample_checks(
    L: Layer,
    rtol: float,
    atol: float,
    probes: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[tuple[str, str, float, float]]:
    """(id, name, max error, tolerance) of each check, for a one-sample layer.

    With ``probes``, finite differences move at most that many of the logits, the weights and the
    inputs each, drawn at random from ``seed``, and dh/dW is compared column by column on the
    weights drawn, without its K²n whole.
    """
    n, K, T = L.n, L.K, L.temperature
    soft = L.function == "softmax"
    b0 = np.zeros(K, dtype=L.W.dtype) if L.b is None else L.b
    x = L.X[0]
    Z, H, P = forward_arrays(L)
    z, p = Z[0], P[0]
    A = dh_dz(L, P)[0]
    rng = np.random.default_rng(seed)
    zi, wi, xi = (_probe(size, probes, rng) for size in (K, K * n, n))
    if wi.size == K * n:
        short = layer_jacobian(L, method="shortcut")[0]
        chain = layer_jacobian(L, method="chain")[0]
    else:  # the columns drawn: smjac's factored form, and A times those columns of dz/dW
        F = layer_factors(L)
        short = F.A[:, wi // n] * F.x[wi % n]
        dz_dw = np.zeros((K, wi.size), dtype=A.dtype)
        dz_dw[wi // n, np.arange(wi.size)] = x[wi % n]  # column i·n + j of dz/dW: x_j in row i
        chain = A @ dz_dw
    out: list[tuple[str, str, float, float]] = []

    def of(name: str, drawn: NDArray[np.intp], size: int) -> str:
        return name if drawn.size == size else f"{name} ({drawn.size:,} of {size:,} columns)"

    def compare(
        cid: str, name: str, a: Array, ref: Array, scale: Array | None = None, slack: float = 0.0
    ) -> None:
        err = float(np.max(np.abs(a - ref))) if a.size else 0.0
        size = float(np.max(np.abs(ref if scale is None else scale))) if a.size else 0.0
        out.append((cid, name, err, atol + rtol * size + slack))

    # identities: what softmax guarantees whatever the numbers are
    weights = np.ones(K) if soft else p  # softmax: columns sum to 0; log-softmax: pᵀJ = 0
    cols = "columns sum to 0" if soft else "columns weighted by p sum to 0"
    compare(
        "sums-to-one", "sum of p is 1" if not soft else "sum of h is 1", np.array([np.sum(p)]), np.ones(1)
    )
    compare(
        "dh-dz-rows-sum-to-zero", "dh/dz rows sum to 0", A.sum(axis=1), np.zeros(K), np.abs(A).sum(axis=1)
    )
    compare("dh-dz-columns-sum-to-zero", f"dh/dz {cols}", weights @ A, np.zeros(K), weights @ np.abs(A))
    if soft:
        compare("dh-dz-symmetric", "dh/dz is symmetric", A, A.T)
    if K <= EIGEN_MAX_K and soft:
        # diag(p) − ppᵀ is a rank-one downdate of a diagonal: its eigenvalues interlace the sorted
        # p, the smallest is 0 and, since every p_t > 0, only that one: rank K − 1.
        mu, q = np.linalg.eigvalsh(A), np.sort(p) / T
        above = np.concatenate([[0.0], q[:-1]])  # μ_1 = 0, q_{i−1} ≤ μ_i ≤ q_i
        gap = np.maximum(np.maximum(mu - q, above - mu), 0.0)
        gap[0] = abs(mu[0])
        compare("dh-dz-rank", "dh/dz has rank K−1 (eigenvalues interlace h)", gap, np.zeros(K), q)
    elif K <= EIGEN_MAX_K:
        ev = np.linalg.eigvals(A)
        ev = ev[np.argsort(ev.real)]
        expect = np.concatenate([[0.0], np.full(K - 1, 1.0 / T)])
        compare(
            "dh-dz-rank",
            "dh/dz has rank K−1 (eigenvalues 0 and 1/T)",
            np.abs(ev - expect),
            np.zeros(K),
            expect,
        )
    compare(
        "dh-dW-columns-sum-to-zero",
        of(f"dh/dW {cols}", wi, K * n),
        weights @ short,
        np.zeros(wi.size),
        weights @ np.abs(short),
    )
    compare("dh-dW-shortcut-vs-chain", of("dh/dW shortcut = chain rule", wi, K * n), short, chain)
    compare(
        "dh-dx-shortcut-vs-chain",
        "dh/dx shortcut = chain rule",
        layer_jacobian(L, wrt="x")[0],
        layer_jacobian(L, wrt="x", method="chain")[0],
        # the chain rule's product A·Wᵀ sums terms that may cancel: it rounds on their scale
        np.abs(A) @ np.abs(L.W).T,
    )

    # finite differences. Softmax responds to each logit on a scale of T, and z_i carries rounding of
    # ε times the size of its terms; a probe that moves z_i/T by δ_i = (ε·size_i/T)^(1/3) balances
    # that rounding against truncation. Each variable moves by whatever shifts the logits it feeds
    # by T·δ.
    eps = float(np.finfo(L.W.dtype).eps)
    big = float(np.finfo(L.W.dtype).max)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # extremes are capped below
        terms = np.minimum(np.abs(L.W).T @ np.abs(x) + np.abs(b0), big)
        z_noise = eps * np.maximum(1.0, terms / T)  # rounding in each z_i / T
        delta = T * z_noise ** (1 / 3)  # in units of z
        # rounding in z_i reaches h through ∂h/∂z_i: p_i(1 − p_i) for softmax, up to 1 for log-softmax
        reach = p * complement(p) if soft else np.ones(K)
        h_noise = eps * (1.0 + float(np.max(np.abs(H)))) + 2 * float(np.sum(reach * z_noise))
        w_step = (delta[:, None] / np.abs(x)[None, :]).reshape(-1)  # w[i,j] feeds z_i through x_j
        x_step = np.min(delta[None, :] / np.abs(L.W), axis=1)  # x_j feeds every z_i through W[j,i]
    # x_j = 0 or a zero row of W: h ignores that variable, so any modest step will do.
    w_step = np.where(np.isfinite(w_step), w_step, float(delta.min()))
    x_step = np.where(np.isfinite(x_step), x_step, float(delta.min()))

    def h_at(W: Array | None = None, xv: Array | None = None, zv: Array | None = None) -> Array:
        if zv is not None:
            zt = (zv - np.max(zv)) / T  # as the forward pass takes it: no overflow at a tiny T
            return (np.exp(log_softmax(zt)) if soft else log_softmax(zt)).reshape(-1)
        M = L.W if W is None else W
        v = x if xv is None else xv
        Lp = make_layer(M, v, b0, function=L.function, temperature=T)
        return forward_arrays(Lp)[1][0]

    def h_rows(zv: Array) -> Array:
        zt = (zv - np.max(zv, axis=-1, keepdims=True)) / T  # as h_at takes it
        return np.exp(log_softmax(zt)) if soft else log_softmax(zt)

    def ce_of_z(zv: Array) -> Array:
        return -log_softmax((zv - np.max(zv, axis=-1, keepdims=True)) / T)[..., :1]

    loss = float(ce_of_z(z)[0])
    fds = [
        (
            "dh-dz-vs-finite-differences",
            of("dh/dz = finite differences", zi, K),
            A[:, zi],
            numerical_jacobian(
                lambda v: h_at(zv=v), z, step=delta, noise=h_noise, columns=zi, progress=progress
            ),
        ),
        (
            "dh-dW-vs-finite-differences",
            of("dh/dW = finite differences", wi, K * n),
            short,
            weight_differences(L, z, wi, w_step, h_rows, h_noise, progress),
        ),
        (
            "dh-dx-vs-finite-differences",
            of("dh/dx = finite differences", xi, n),
            layer_jacobian(L, wrt="x")[0][:, xi],
            numerical_jacobian(
                lambda v: h_at(xv=v), x, step=x_step, noise=h_noise, columns=xi, progress=progress
            ),
        ),
        (
            "cross-entropy-grad-vs-finite-differences",
            of("cross-entropy grad = finite differences", wi, K * n),
            grad(L.W, x, b0, target=0, temperature=T).W.T.reshape(1, -1)[:, wi],
            # the loss moves with the logits one for one (|∂L/∂z_i| ≤ 1), so it carries their rounding
            weight_differences(
                L, z, wi, w_step, ce_of_z, eps * abs(loss) + 2 * float(np.max(z_noise)), progress
            ),
        ),
    ]
    for cid, name, analytic, (fd, fd_err) in fds:
        # entries whose variable a few ulps already move too far cannot be probed: left out, and said
        probed = np.all(fd_err < big, axis=0)
        if not probed.all():
            name += f" ({int((~probed).sum())} of {probed.size} too coarse in ulps to probe, left out)"
            analytic, fd, fd_err = analytic[:, probed], fd[:, probed], fd_err[:, probed]
        # held to rtol and atol, plus what finite differences themselves can resolve
        compare(cid, name, analytic, fd, slack=float(np.max(fd_err)) if fd_err.size else 0.0)
    return out


def check(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    rtol: float | None = None,
    atol: float = CHECK_ATOL,
    probes: int | None = None,
    seed: int = 0,
    max_memory: int | None = None,
    target: int | ArrayLike | None = None,
    reduce: Reduction = DEFAULT_REDUCTION,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    **layer: Unpack[LayerOptions],
) -> CheckReport:
    """Cross-check the layer's derivatives against each other, finite differences and identities.

    Each check compares two things, ``a`` and a reference ``r``, and holds when
    ``max|a − r| ≤ atol + rtol · max|r|``. For an identity such as "rows sum to 0", ``max|r|`` is
    taken over the sums of the absolute terms, the size the rounding error scales with. Against
    finite differences, the tolerance also holds the differences' own error estimate (see
    :func:`numerical_jacobian`), so a badly scaled layer is not blamed for what finite differences
    cannot resolve; a wrong derivative is still far outside it. A batch is checked sample by sample.

    Parameters
    ----------
    W, x, b, **layer
        The layer and its choices (``layout``, ``function``, ``temperature``), as in
        :func:`~smjac.maths.layer.make_layer`.
    rtol : float, optional
        Relative tolerance; 1e-6 in float64 and ``100 ε`` in coarser types by default.
    atol : float
        Absolute tolerance.
    probes : int, optional
        Finite differences move every logit, weight and input one at a time, so their work grows
        as (K·n)². With ``probes``, at most that many of each are drawn at random (from ``seed``,
        the same draw for every sample), and dh/dW is compared on the weights drawn without
        forming its K²n entries; the checks' names say how many were probed.
    seed : int
        Seeds the draw.
    max_memory : int, optional
        Bytes the check may take (None: no limit); a check that would take more is refused
        before any work, with the figure and the way on (``probes``), as :func:`check_plan` says.
    target, reduce, class_weights, ignore_index, label_smoothing
        A loss, as in :func:`smjac.grad`: with a target, the batch's loss gradient (its options
        included) is also checked against finite differences of the batch's loss. A binary layer
        (one output) is checked as the two-class softmax it is read as (W with a first column of
        zeros), and its own n×1 gradient against finite differences (target 0 unless given).

    Returns
    -------
    CheckReport
        The checks in order (for K above :data:`EIGEN_MAX_K` without the K³ check of dh/dz's
        eigenvalues), each with its max error and the tolerance it was held to.

    Examples
    --------
    >>> report = check([[0.1, 0.2], [0.3, 0.4]], [1.0, 2.0])
    >>> report.ok, len(report.checks)
    (True, 12)
    """
    L = make_layer(W, x, b, **layer_options("check", layer))
    return layer_check(
        L, rtol=rtol, atol=atol, probes=probes, seed=seed, max_memory=max_memory, target=target,
        reduce=reduce, class_weights=class_weights, ignore_index=ignore_index, label_smoothing=label_smoothing,
    )  # fmt: skip


def layer_check(
    L: Layer,
    *,
    rtol: float | None = None,
    atol: float = CHECK_ATOL,
    probes: int | None = None,
    seed: int = 0,
    max_weights: int = 0,
    max_memory: int | None = None,
    target: int | ArrayLike | None = None,
    reduce: Reduction = DEFAULT_REDUCTION,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> CheckReport:
    """:func:`check` for a :class:`~smjac.maths.Layer` (one ``make_layer`` has already checked).

    ``max_weights`` and ``max_memory`` are the limits of :func:`check_plan`, refused before any work.
    ``progress`` is called as finite differences go with the forward passes they took, which add
    up to :func:`check_passes` (a weight's probe, O(K + n), counted as one).
    """
    ce = CrossEntropy(class_weights, ignore_index, label_smoothing)  # type: ignore[arg-type]
    if target is None and not ce.plain:
        raise InputError(f"{', '.join(ce.options())} shape the cross-entropy of a target: give target too")
    check_choice("reduce", reduce, REDUCTIONS)
    L.require_samples("there is nothing to check")
    targets = None if target is None and not L.binary else ce.targets(0 if target is None else target, L)
    if targets is not None:
        ce.denominator(targets, reduce)  # a mean over no sample is refused before any work
    whole = L
    L = two_class_layer(L) if L.binary else L  # the two-class softmax a binary layer is read as
    check_plan(L, probes, max_weights=max_weights, max_memory=max_memory)
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a whole number, at least 0, not {seed!r}")
    check_temperature(L)
    check_finite_W(L)  # the checks read W itself, not only z
    tol = given("rtol", rtol, default_rtol(L.W.dtype))
    atol = given("atol", atol, CHECK_ATOL)
    per_sample = []
    with np.errstate(all="ignore"):  # an overflow is found below, and said, not warned about
        for s in range(L.N):
            one = Layer(L.W, L.X[s : s + 1], L.b, False, "in-out", L.function, L.temperature)
            per_sample.append(_sample_checks(one, tol, atol, probes, seed, progress))
    for s, sample in enumerate(per_sample):
        for _, name, err, t in sample:
            if not (np.isfinite(err) and np.isfinite(t)):
                where = f" for sample {s}" if L.batched else ""
                raise InputError(
                    f"cannot check this layer: '{name}' overflows{where} (its error or tolerance is "
                    f"not finite): entries of W or x near the float limit ({np.finfo(L.W.dtype).max:.3g}) "
                    "make finite differences overflow; scale the layer down to check it"
                )
    checks = []
    for i, (cid, name, _, _) in enumerate(per_sample[0]):
        rows = [sample[i] for sample in per_sample]
        ratio = [err / t if t > 0 else (np.inf if err > 0 else 0.0) for _, _, err, t in rows]
        worst = int(np.argmax(ratio))
        failed = tuple(s for s, (_, _, err, t) in enumerate(rows) if not err <= t)
        _, _, err, t = rows[worst]
        checks.append(Check(name, err, t, not failed, worst if L.batched else None, failed, cid))
    if targets is not None:  # the batch's loss gradient, in the layer's own shape (a binary layer's n×1)
        with np.errstate(all="ignore"):
            cid, name, err, tl = loss_gradient_check(
                whole,
                targets,
                ce,
                reduce=reduce,
                rtol=tol,
                atol=atol,
                probes=probes,
                seed=seed,
                given=target is not None,
                progress=progress,
            )
        checks.append(Check(name, err, tl, bool(err <= tl), None, (), cid))
    return CheckReport(tuple(checks))
