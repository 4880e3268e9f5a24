"""One sample through a small layer, at the cost of the numpy calls it needs.

Below :data:`~smjac.maths._parallel.ONE_BLAS_THREAD_FROM` multiply-adds,
:func:`~smjac.maths.forward_pass.softmax_rows` works on one span in the calling thread. These are
that span's operations, in the same order on arrays of the same shapes, and so the same bits,
without the machinery around them (spans, a closure, a scan for infinities after each step, the
thread pool's checks), which at this size costs ten times the arithmetic: ``smjac.grad`` on a
64×10 layer took about 110 µs for 8 µs of numpy. ``tests/test_api.py`` holds the two to the same
bits.

No guard is weakened: each function scans its results once at the end, and returns None when
any number on the way is not finite; the caller then takes the general path, which rescales what
it can and refuses the rest with its message.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._parallel import ONE_BLAS_THREAD_FROM
from .layer import Layer
from .numeric import Array


def fits(L: Layer) -> bool:
    """Whether L is one sample of a small layer with K > 1 outputs (a binary layer's two classes
    take the general path)."""
    W = L.W  # N, n and K are properties: reading the shapes once costs less than calling them
    return L.X.shape[0] == 1 and W.size < ONE_BLAS_THREAD_FROM and W.shape[1] > 1


# np.sum and np.max are these reductions behind a Python wrapper that costs more than they do
# here; the axis is passed by position, which numpy parses faster
_sum, _max, _min = np.add.reduce, np.maximum.reduce, np.minimum.reduce
_matmul, _subtract, _exp, _log, _multiply = np.matmul, np.subtract, np.exp, np.log, np.multiply
_count, _isfinite = np.count_nonzero, np.isfinite


# Each short path runs whole under this floating-point context: what overflows or is not a number is
# looked at once, at the end, and sends the call to the general path. As a decorator: thread-safe,
# and half the cost of a with-block, which makes an errstate object on every call.
_quiet = np.errstate(all="ignore")


def _logits_finite(Z: Array, top: Any) -> bool:
    # NaN and +inf show in the largest; −inf in the least, as softmax_rows reads them, or here in
    # z·z (squares cannot cancel an infinity; a dot costs 0.3 µs less than a reduction), which
    # only a finite z past 1e154 overflows: its least entry is then looked at
    z = Z[0]
    return math.isfinite(top) and (math.isfinite(z.dot(z)) or math.isfinite(_min(Z, None)))


def _finite(a: Array) -> bool:
    # counted, not summed: no Python wrapper (np.all), no overflow of a sum of finite numbers
    return _count(_isfinite(a)) == a.size


@_quiet
def forward(L: Layer, log_h: bool | None = None) -> tuple[Array, Array, Array] | None:
    """``Z, H, P`` (each 1×K) of :func:`fits` layer L, as ``forward_arrays`` gives them, or None.

    ``log_h=False`` leaves log h out (H is P) whatever the layer's function: P alone is what
    ``layer_probabilities`` gives, and all a derivative needs.
    """
    if log_h is None:
        log_h = L.function == "log-softmax"
    Z = _matmul(L.X, L.W)
    if L.b is not None:
        Z += L.b
    top = _max(Z, None)  # one row, so one max
    if not _logits_finite(Z, top):
        return None
    P = _subtract(Z, top)  # (z − max z)/T: see shifted_logits
    if L.temperature != 1:
        P /= L.temperature
    H = P.copy() if log_h else None
    _exp(P, out=P)
    total = _sum(P, None)  # one row: the row's sum, as a scalar
    if H is not None:
        H -= _log(total)
    P /= total
    if H is not None and not _finite(H):
        return None
    return Z, P if H is None else H, P


@_quiet
def grad(L: Layer, t: int) -> tuple[Array, Array, Array, float] | None:
    """``dLoss/dW`` (in W's layout), ``dLoss/db``, ``δ`` (1×K, or K for a vector x) and the loss of the cross-entropy
    of class ``t`` (0 ≤ t < K) for :func:`fits` layer L, as the general path gives them, or None."""
    X, T = L.X, L.temperature
    Z = _matmul(X, L.W)
    if L.b is not None:
        Z += L.b
    top = _max(Z, None)
    if not _logits_finite(Z, top):
        return None
    P = _subtract(Z, top)
    if T != 1:
        P /= T
    s_t = P[0, t]
    _exp(P, out=P)
    total = _sum(P, None)
    P /= total
    loss = float(_log(total) - s_t)  # log Σ − s_t ≥ 0: summing the one term changes nothing
    p = P[0]
    # δ_t = −(1 − p_t); where t is the likeliest class, the sum of the others (no cancellation)
    if p.argmax() == t:
        others = P[0:1].copy()
        others[0, t] = 0
        rest: Any = _sum(others, 1)[0]
    else:
        rest = 1.0 - p[t]
    p[t] = -rest
    if T != 1:
        P /= T
    # dLoss/db is the general path's sum over one row, 0 + δ: δ's one −0 (δ_t, where p_t is 1) is 0
    # there, and a copy with that entry set costs less than the sum
    grad_b = p.copy()
    if grad_b[t] == 0:
        grad_b[t] = 0.0
    a, c = L.weight_factors(X, P)
    grad_W = _multiply(a.T, c)  # x δᵀ (or δ xᵀ) as a column times a row: no 1-D views to make
    # with T = 1, |δ| ≤ 1 and x is finite (make_layer), so x δᵀ is too: no scan
    if not ((T == 1 or _finite(grad_W)) and math.isfinite(loss)):
        return None
    return grad_W, grad_b, P if L.batched else p, loss
