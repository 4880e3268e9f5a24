"""The softmax function, its log, and their Jacobians: the functions of one vector (or a stack).

``softmax_jacobian`` is the post's ``dS/dZ = diag(S) − SSᵀ``; ``dz_dW`` its ``dZ/dW``.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError, ShapeError
from .numeric import Array, as_float


def _largest(z: Array, axis: int | None) -> Array:
    """``max(z)`` along ``axis`` (kept), the shift both functions take, refusing in words an axis z
    lacks and one of no entries, as scipy.special.softmax refuses it in numpy's: no probabilities
    sum to 1 over nothing. Zero rows are zero distributions, an empty result."""
    try:
        return np.max(z, axis=axis, keepdims=True)
    except (np.exceptions.AxisError, TypeError):
        raise InputError(f"axis={axis!r} is not an axis of z, which has shape {z.shape}") from None
    except ValueError:  # numpy's "zero-size array to reduction operation maximum"
        raise InputError(
            f"z has shape {z.shape}: no logits along axis {axis}, and softmax over none is undefined "
            "(no probabilities sum to 1); give at least one"
        ) from None


def _vectors(a: Array, name: str) -> Array:
    """``a``, refused unless a vector (K) or a stack of them: a Jacobian's rows are its last axis."""
    if a.ndim == 0:
        raise ShapeError(f"{name} must be a vector (K) or a stack of them, not a number")
    return a


def softmax(z: ArrayLike, axis: int = -1) -> Array:
    """Softmax of ``z`` along ``axis``, safe from overflow.

    Parameters
    ----------
    z : array_like
        Logits.
    axis : int, optional
        The axis the probabilities sum over; it must hold one logit at least (an empty axis is
        refused, as ``scipy.special.softmax`` refuses it; zero rows give zero rows).

    Returns
    -------
    ndarray
        ``exp(z) / sum(exp(z))``, same shape as ``z``.

    Notes
    -----
    ``softmax(z) = softmax(z - c)`` for any constant c; subtracting ``c = max(z)`` makes every
    exponent ≤ 0, so nothing overflows and the largest term is exactly 1.

    Examples
    --------
    >>> softmax([1.0, 2.0, 3.0])
    array([0.09003057, 0.24472847, 0.66524096])
    >>> softmax([1e4, 0.0, -1e4])
    array([1., 0., 0.])
    """
    z = as_float(z, "z")
    e = np.exp(z - _largest(z, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: ArrayLike, axis: int = -1) -> Array:
    """``log(softmax(z))``, computed directly so no probability is rounded to 0 first; ``z`` and
    ``axis`` as in :func:`softmax`.

    Notes
    -----
    ``log softmax(z)_t = (z_t − m) − log Σ_k exp(z_k − m)`` with ``m = max(z)``.

    Examples
    --------
    >>> log_softmax([0.0, -1000.0])
    array([    0., -1000.])
    """
    z = as_float(z, "z")
    shifted = z - _largest(z, axis)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def complement(p: Array) -> Array:
    """``1 − p`` for probability vectors (last axis), keeping digits where p_t is near 1.

    Only the largest p_t can exceed ½, so only there does ``1 − p_t`` cancel; it is taken as the
    sum of the other probabilities instead, which cannot cancel.
    """
    out = np.subtract(1.0, p, order="C")
    if p.size:
        K = p.shape[-1]
        top = np.argmax(p, axis=-1)
        rest = np.where(np.arange(K) == top[..., None], 0, p).sum(axis=-1)
        # out is new and C-contiguous, so this is a view: the entries set by index, not by
        # np.put_along_axis, whose index arrays cost more than the rest at small sizes
        rows = out.reshape(-1, K)
        rows[np.arange(rows.shape[0]), top.reshape(-1)] = rest.reshape(-1)
    return out


def softmax_jacobian(h: ArrayLike) -> Array:
    """Jacobian of the softmax, ``dh/dz = diag(h) − h hᵀ`` (K×K), from its output ``h``.

    A stack of outputs (… × K) gives a stack of Jacobians (… × K × K).

    Notes
    -----
    ``∂h_t/∂z_i = h_t (δ_ti − h_i)``. The matrix is symmetric and its rows and columns sum to 0,
    because ``Σ h = 1`` whatever z is. Its diagonal ``h_t (1 − h_t)`` is computed without the
    cancellation ``1 − h_t`` suffers when h_t is near 1.

    Examples
    --------
    >>> softmax_jacobian([0.5, 0.5])
    array([[ 0.25, -0.25],
           [-0.25,  0.25]])
    """
    h = _vectors(as_float(h, "h"), "h")
    J = -h[..., :, None] * h[..., None, :]
    diag = np.arange(h.shape[-1])
    J[..., diag, diag] = h * complement(h)
    return J


def log_softmax_jacobian(p: ArrayLike) -> Array:
    """Jacobian of log-softmax, ``I − 1 pᵀ`` (K×K), from the probabilities ``p = softmax(z)``.

    Notes
    -----
    ``∂ log p_t / ∂z_i = δ_ti − p_i``: each row sums to 0, and ``pᵀ J = 0``. Unlike the softmax
    Jacobian it is not symmetric.

    Examples
    --------
    >>> log_softmax_jacobian([0.25, 0.75])
    array([[ 0.75, -0.75],
           [-0.25,  0.25]])
    """
    p = _vectors(as_float(p, "p"), "p")
    K = p.shape[-1]
    J = np.broadcast_to(-p[..., None, :], (*p.shape, K)).copy()
    diag = np.arange(K)
    J[..., diag, diag] = complement(p)
    return J


def dz_dW(x: ArrayLike, K: int) -> Array:
    """Jacobian of the logits with respect to the weights, ``dz/dW`` (K × K·n), for one sample.

    Notes
    -----
    ``∂z_k/∂w[i,j] = δ_ki x_j``: row k holds x in columns ``k·n … k·n + n − 1`` and zeros elsewhere,
    i.e. ``I_K ⊗ xᵀ``. The post prints the transpose (K·n × K).

    Examples
    --------
    >>> dz_dW([1.0, 2.0], 2)
    array([[1., 2., 0., 0.],
           [0., 0., 1., 2.]])
    """
    x = as_float(x, "x")
    if x.ndim != 1:
        raise ShapeError(f"x must be a vector (n) but has shape {x.shape}")
    if isinstance(K, bool) or not isinstance(K, numbers.Integral) or K < 1:
        raise InputError(f"K must be a whole number of outputs, at least 1, not {K!r}")
    K = int(K)
    try:
        return _dz_dW(x[None, :], K)[0]
    except (ValueError, MemoryError):  # numpy's "array is too big", or no memory for it
        raise InputError(
            f"dz/dW for K = {K:,} outputs and n = {x.size:,} inputs holds K·K·n = {K * K * x.size:,} numbers, "
            "more than this machine can hold"
        ) from None


def _dz_dW(X: Array, K: int) -> Array:
    N, n = X.shape
    J = np.zeros((N, K, K, n), dtype=X.dtype)
    J[:, np.arange(K), np.arange(K), :] = X[:, None, :]
    return J.reshape(N, K, K * n)
