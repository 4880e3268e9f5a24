"""Central finite differences: the slow, independent reference ``check`` holds derivatives to.

:func:`numerical_jacobian` probes any function one entry at a time; :func:`weight_differences`
probes the weights of a one-sample layer a block of them at a time, with the same steps,
Richardson step and error estimate, entry for entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..maths import Array, Layer
from ..maths.numeric import as_float

WEIGHT_BLOCK = 4096  # weights probed together, as rows of one matrix


UNRESOLVED = 8  # a step raised to a few ulps beyond this many times the one needed resolves nothing


def numerical_jacobian(
    f: Callable[[Array], Array],
    v: ArrayLike,
    *,
    step: ArrayLike | None = None,
    noise: float | None = None,
    columns: Sequence[int] | NDArray[np.intp] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Array, Array]:
    """Central finite differences of ``f`` at ``v``: a slow reference, one column per entry of v.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``v`` to an array.
    v : array_like
        The point.
    step : array_like, optional
        How far to move each entry of v (a scalar or one per entry). By default
        ``ε^(1/3) · max(1, |v_k|)``, about 6e-6 for entries near 1 in float64.
    noise : float, optional
        How much rounding the values of f carry; ``ε · max|f(v)|`` by default. Pass more when f
        amplifies rounding in its own internals.
    columns : sequence of int, optional
        Probe only these entries of v (flat indices), in this order; all by default.
    progress : callable, optional
        Called with 4 after each entry probed: the evaluations of f it took.

    Returns
    -------
    J : ndarray
        ``J[:, k] ≈ ∂f/∂v_k``, with ``f``'s output flattened (one column per probed entry).
    error : ndarray
        An estimate of the error in each entry of J.

    Notes
    -----
    The central difference ``D(s) = (f(v + s e_k) − f(v − s e_k)) / 2s`` has an error of order
    ``s²`` from truncation and ``ε|f|/s`` from rounding. One Richardson step,
    ``(4 D(s/2) − D(s)) / 3``, cancels the ``s²`` term. The error estimate returned is
    ``|D(s/2) − D(s)| + 3 noise / s``: what is left of both kinds, generously. A given step
    is raised to at least four ulps of v_k, so every probe really moves it.

    Examples
    --------
    >>> J, err = numerical_jacobian(lambda v: v**3, np.array([2.0]))
    >>> J
    array([[12.]])
    >>> bool(err[0, 0] < 1e-8)
    True
    """
    v = as_float(v)
    flat = v.reshape(-1)
    eps = float(np.finfo(v.dtype).eps)
    if step is None:
        steps = eps ** (1 / 3) * np.maximum(1.0, np.abs(flat))
    else:
        # never a step too small to move v_k at all: a few ulps of it at least
        given = np.broadcast_to(np.asarray(step, dtype=v.dtype), v.shape).reshape(-1)
        steps = np.maximum(given, 4 * eps * np.abs(flat))
    # Where a few ulps of v_k are far more than the step it needs (a weight of 1e15 against an x
    # of 200: one ulp moves z by hundreds), differences cannot resolve that entry at all: its error
    # is the whole float range, so no tolerance pretends otherwise.
    unresolved = steps > UNRESOLVED * given if step is not None else np.zeros(flat.size, dtype=bool)
    if noise is None:
        noise = eps * float(np.max(np.abs(f(v)), initial=0.0))

    def central(k: int, s: float) -> Array:
        up, down = flat.copy(), flat.copy()
        up[k] += s
        down[k] -= s
        diff = np.ravel(f(up.reshape(v.shape))) - np.ravel(f(down.reshape(v.shape)))
        return diff / (up[k] - down[k])  # the step actually taken, after rounding

    cols, errs = [], []
    for k in range(flat.size) if columns is None else columns:  # entry by entry: the independent reference
        coarse, fine = central(k, steps[k]), central(k, steps[k] / 2)
        cols.append((4 * fine - coarse) / 3)
        # truncation and noise both show in fine − coarse; rounding of f alone, amplified by the
        # division, is about 3·noise/s in the extrapolated value: take the two together.
        with np.errstate(over="ignore"):  # past the float range it says "cannot resolve"
            big = np.finfo(v.dtype).max
            errs.append(
                np.full_like(fine, big)
                if unresolved[k]
                else np.minimum(np.abs(fine - coarse) + 3 * noise / steps[k], big)
            )
        if progress is not None:
            progress(4)
    if not cols:
        empty = np.zeros((np.size(f(v)), 0), dtype=v.dtype)
        return empty, empty.copy()
    return np.stack(cols, axis=1), np.stack(errs, axis=1)


def weight_differences(
    L: Layer,
    z: Array,
    columns: NDArray[np.intp],
    step: Array,
    f: Callable[[Array], Array],
    noise: float,
    progress: Callable[[int], None] | None = None,
) -> tuple[Array, Array]:
    """Finite differences of ``f(z)`` in each weight drawn, as :func:`numerical_jacobian` takes them.

    Parameters
    ----------
    L : Layer
        A one-sample layer; ``z`` its logits (K).
    columns : ndarray of int
        The weights probed, as columns of dh/dW: ``w[i,j]`` at ``i·n + j``.
    step : ndarray
        The step of every weight (K·n, in that order); raised to four ulps as
        :func:`numerical_jacobian` raises a step, and a weight whose ulps are far coarser than its
        step is not resolved (its error is the float range).
    f : callable
        Maps rows of logits (P × K) to rows of values (P × m).
    noise : float
        The rounding in f's values.
    progress : callable, optional
        Called after each block with its probes' evaluations (four a weight, each counted as one
        forward pass).

    Returns
    -------
    J, error : ndarray
        m × (columns probed), as :func:`numerical_jacobian` returns them.

    Notes
    -----
    ``w[i,j]`` feeds z_i alone, so a probe's logits are z with z_i taken afresh from W's column i
    with ``w[i,j]`` moved (O(n)); f then runs on a block's probes as rows of one matrix instead of
    once per probe from Python.
    """
    n, K = L.n, L.K
    x = L.X[0]
    b0 = np.zeros(K, dtype=L.W.dtype) if L.b is None else L.b
    flat_W = L.W.T.reshape(-1)  # dh/dW's columns are w[i,j] at i·n + j: Wᵀ, flattened
    eps = float(np.finfo(L.W.dtype).eps)
    big = float(np.finfo(L.W.dtype).max)

    def logits_with(k: NDArray[np.intp], moved: Array) -> Array:
        i, j = np.divmod(k, n)
        rows = np.arange(k.size)
        weights = L.W[:, i].T.copy()  # one row per probe: W's column i, w[i,j] moved
        weights[rows, j] = moved
        zv = np.broadcast_to(z, (k.size, K)).copy()
        zv[rows, i] = np.einsum("pn,n->p", weights, x) + b0[i]
        return zv

    def central(k: NDArray[np.intp], v: Array, s: Array) -> Array:
        up, down = v + s, v - s
        diff = f(logits_with(k, up)) - f(logits_with(k, down))
        return diff / (up - down)[:, None]  # the step actually taken, after rounding

    outs, errs = [], []
    for start in range(0, columns.size, WEIGHT_BLOCK):
        k = columns[start : start + WEIGHT_BLOCK]
        v = flat_W[k]
        steps = np.maximum(step[k], 4 * eps * np.abs(v))  # as numerical_jacobian raises a step
        coarse, fine = central(k, v, steps), central(k, v, steps / 2)
        outs.append(((4 * fine - coarse) / 3).T)
        with np.errstate(over="ignore"):
            err = np.minimum(np.abs(fine - coarse) + 3 * noise / steps[:, None], big)
        err[steps > UNRESOLVED * step[k]] = big  # as numerical_jacobian: ulps too coarse to probe
        errs.append(err.T)
        if progress is not None:
            progress(4 * k.size)
    if not outs:
        empty = np.zeros((np.size(f(z[None])), 0), dtype=z.dtype)
        return empty, empty.copy()
    return np.hstack(outs), np.hstack(errs)
