"""The maths of a softmax layer: forward pass, Jacobians, gradients and a checker.

Pure numpy; no I/O and no printing. The layout is the blog post's throughout:

* ``W`` is n×K (n inputs, K outputs) and ``z = Wᵀx (+ b)``, ``h = softmax(z)``;
* a Jacobian has one row per output and one column per input;
* the weight ``w[i,j]`` joining input j to output i is ``W[j, i]`` and sits at column ``i·n + j``
  of ``dh/dW`` and ``dz/dW``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import InputError, ShapeError

Array = NDArray[np.floating]
Of = Literal["h", "z"]
Wrt = Literal["W", "z", "x", "b"]
Method = Literal["shortcut", "chain"]

OFS: tuple[str, ...] = ("h", "z")
WRTS: tuple[str, ...] = ("W", "z", "x", "b")
METHODS: tuple[str, ...] = ("shortcut", "chain")


def _as_float(a: ArrayLike) -> Array:
    """Float arrays keep their precision; anything else becomes float64."""
    arr = np.asarray(a)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def softmax(z: ArrayLike, axis: int = -1) -> Array:
    """Softmax of ``z`` along ``axis``, safe from overflow.

    Parameters
    ----------
    z : array_like
        Logits.
    axis : int, optional
        The axis the probabilities sum over.

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
    z = _as_float(z)
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: ArrayLike, axis: int = -1) -> Array:
    """``log(softmax(z))`` computed without taking the log of a rounded-to-zero probability.

    Examples
    --------
    >>> log_softmax([0.0, -1000.0])
    array([    0., -1000.])
    """
    z = _as_float(z)
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def validate_layer(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    names: tuple[str, str, str] = ("W", "x", "b"),
) -> tuple[Array, Array, Array | None]:
    """Check that W (n×K), x (n) and b (K) fit together and are finite; return them as floats.

    ``names`` label the arrays in error messages (the CLI passes file names).

    Raises
    ------
    ShapeError
        When a dimension is wrong; the message names both shapes and the fix.
    InputError
        When a value is NaN or infinite.

    Examples
    --------
    >>> validate_layer(np.ones((3, 5)), np.ones(4))
    Traceback (most recent call last):
    ...
    smjac.errors.ShapeError: W has shape (3, 5) but x has 4 entries; W is n×K (one row per input), so x needs 3 entries or W 4 rows
    """
    W, x = _as_float(W), _as_float(x)
    wn, xn, bn = names
    if W.ndim != 2:
        raise ShapeError(f"{wn} must be a matrix (n inputs × K outputs) but has shape {W.shape}")
    if W.size == 0:
        raise ShapeError(f"{wn} is empty (shape {W.shape})")
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)  # a vector written as one row or one column
    if x.ndim != 1:
        raise ShapeError(f"{xn} must be a vector but has shape {x.shape}")
    n, K = W.shape
    if x.size != n:
        hint = f"W is n×K (one row per input), so {xn} needs {n} entries or {wn} {x.size} rows"
        if x.size == K:
            hint = f"{wn} looks transposed: it must be n×K (inputs × outputs), here ({K}, {n})"
        raise ShapeError(f"{wn} has shape {W.shape} but {xn} has {x.size} entries; {hint}")
    arrays = [(wn, W), (xn, x)]
    if b is not None:
        b = _as_float(b).reshape(-1) if np.ndim(b) == 2 and 1 in np.shape(b) else _as_float(b)
        if b.shape != (K,):
            raise ShapeError(f"{bn} has shape {b.shape} but W has K = {K} outputs; b needs {K} entries")
        arrays.append((bn, b))
    for name, arr in arrays:
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} holds a NaN or infinite value")
    return W, x, b


@dataclass(frozen=True)
class Forward:
    """The forward pass of a softmax layer: logits ``z`` and probabilities ``h``."""

    z: Array
    h: Array


def forward(W: ArrayLike, x: ArrayLike, b: ArrayLike | None = None) -> Forward:
    """Run the layer forward: ``z = Wᵀx + b``, ``h = softmax(z)``.

    Parameters
    ----------
    W : array_like, shape (n, K)
        Weights, one row per input and one column per output (the post's layout).
    x : array_like, shape (n,)
        Input vector.
    b : array_like, shape (K,), optional
        Bias; none by default, as in the post.

    Returns
    -------
    Forward
        ``z`` and ``h``, each of shape (K,).

    Examples
    --------
    The post's example:

    >>> W = [[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 0.1], [0.11, 0.12, 0.13, 0.14, 0.15]]
    >>> forward(W, [0.1, 0.5, 0.4]).h
    array([0.19091352, 0.20353145, 0.21698333, 0.23132428, 0.15724743])
    """
    W, x, b = validate_layer(W, x, b)
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in words
        z = W.T @ x
        if b is not None:
            z = z + b
    if not np.all(np.isfinite(z)):
        raise InputError(
            f"z = Wᵀx overflows {z.dtype} (its largest value is {np.finfo(z.dtype).max:.3g}); "
            "scale W or x down"
        )
    return Forward(z=z, h=softmax(z))


def _one_minus(h: Array) -> Array:
    """``1 − h`` for a probability vector, keeping its digits where h_t is within rounding of 1.

    Only the largest h_t can exceed ½, so only there does ``1 − h_t`` cancel; it is taken as the
    sum of the other probabilities instead, which has no cancellation at all.
    """
    out = 1.0 - h
    if h.size:
        k = int(np.argmax(h))
        out[k] = np.sum(h[:k]) + np.sum(h[k + 1 :])
    return out


def softmax_jacobian(h: ArrayLike) -> Array:
    """Jacobian of the softmax, ``dh/dz = diag(h) − h hᵀ`` (K×K), from its output ``h``.

    Notes
    -----
    ``∂h_t/∂z_i = h_t (δ_ti − h_i)``. The matrix is symmetric and its rows and columns sum to 0,
    because ``Σ h = 1`` whatever z is.

    Examples
    --------
    >>> softmax_jacobian([0.5, 0.5])
    array([[ 0.25, -0.25],
           [-0.25,  0.25]])
    """
    h = _as_float(h)
    J = -np.outer(h, h)
    J[np.diag_indices_from(J)] = h * _one_minus(h)  # h_t(1 − h_t) without cancelling
    return J


def dz_dW(x: ArrayLike, K: int) -> Array:
    """Jacobian of the logits with respect to the weights, ``dz/dW`` (K × K·n).

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
    x = _as_float(x)
    n = x.size
    J = np.zeros((K, K, n), dtype=x.dtype)
    J[np.arange(K), np.arange(K), :] = x
    return J.reshape(K, K * n)


def _layer_shortcut(h: Array, x: Array) -> Array:
    """``∂h_t/∂w[i,j] = h_t (δ_ti − h_i) x_j`` straight from h and x, the post's shortcut."""
    K, n = h.size, x.size
    return (softmax_jacobian(h)[:, :, None] * x[None, None, :]).reshape(K, K * n)


def jacobian(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    of: Of = "h",
    wrt: Wrt = "W",
    method: Method = "shortcut",
) -> Array:
    """Jacobian of the layer's output ``of`` with respect to ``wrt``.

    Parameters
    ----------
    W, x, b : array_like
        The layer, as in :func:`forward`.
    of : {"h", "z"}
        Differentiate the probabilities h (default) or the logits z.
    wrt : {"W", "z", "x", "b"}
        With respect to the weights (default), the logits, the input or the bias.
    method : {"shortcut", "chain"}
        ``"chain"`` multiplies the factor matrices, ``dh/dz · dz/dwrt``, as the post does first;
        ``"shortcut"`` (default) evaluates the closed form of each entry. They agree to rounding.

    Returns
    -------
    ndarray
        Rows are the K outputs; columns are the entries of ``wrt``: K·n for W (weight ``w[i,j]`` at
        column ``i·n + j``), n for x, K for z and b.

    Notes
    -----
    With ``S = h``:

    * ``dh/dz[t, i] = S_t (δ_ti − S_i)``; ``dh/db`` is the same matrix, since ``dz/db = I``.
    * ``dh/dW[t, i·n + j] = S_t (δ_ti − S_i) x_j``, i.e. ``dh/dz ⊗ xᵀ``.
    * ``dh/dx[t, j] = S_t (W[j, t] − Σ_i S_i W[j, i])``, i.e. ``dh/dz · Wᵀ``.
    * ``dz/dW = I ⊗ xᵀ``, ``dz/dx = Wᵀ``, ``dz/dz = dz/db = I``.

    Examples
    --------
    >>> J = jacobian([[1.0, 0.0]], [2.0])
    >>> J.shape
    (2, 2)
    >>> J.sum(axis=0)  # every column sums to zero
    array([0., 0.])
    """
    if of not in OFS:
        raise InputError(f"of must be one of {', '.join(OFS)}, not {of!r}")
    if wrt not in WRTS:
        raise InputError(f"wrt must be one of {', '.join(WRTS)}, not {wrt!r}")
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    W, x, b = validate_layer(W, x, b)
    K = W.shape[1]
    if of == "z":
        if wrt == "W":
            return dz_dW(x, K)
        if wrt == "x":
            return W.T.copy()
        return np.eye(K, dtype=W.dtype)
    h = forward(W, x, b).h
    if method == "chain":
        factor = {"W": lambda: dz_dW(x, K), "x": lambda: W.T, "z": lambda: np.eye(K), "b": lambda: np.eye(K)}
        return softmax_jacobian(h) @ factor[wrt]()
    if wrt == "W":
        return _layer_shortcut(h, x)
    if wrt == "x":
        return h[:, None] * (W.T - (W @ h)[None, :])
    return softmax_jacobian(h)


@dataclass(frozen=True)
class Gradient:
    """Gradients of a scalar loss through the layer.

    ``W`` has W's own shape (n×K), ``b`` and ``z`` have K entries, ``x`` has n; ``loss`` is the
    cross-entropy when a target was given, else None.
    """

    W: Array
    b: Array
    z: Array
    x: Array
    loss: float | None


def grad(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    target: int | None = None,
    upstream: ArrayLike | None = None,
) -> Gradient:
    """Gradient of a loss with respect to the weights, in closed form, O(K·n).

    Give exactly one of ``target`` (cross-entropy loss ``−log h_target``) or ``upstream``
    (``g = dLoss/dh`` from whatever comes after the layer).

    Parameters
    ----------
    W, x, b : array_like
        The layer, as in :func:`forward`.
    target : int, optional
        The true class, counted from 0.
    upstream : array_like, shape (K,), optional
        ``dLoss/dh``.

    Returns
    -------
    Gradient
        ``Gradient.W`` is ``dLoss/dW`` in W's shape (n×K).

    Notes
    -----
    The update is ``gᵀ · dh/dW``, which never needs the K × K·n Jacobian: with
    ``δ = dh/dzᵀ g = h ⊙ (g − hᵀg)`` it is ``x δᵀ``. The post's last sentence says to sum the columns
    of ``dh/dW``, i.e. ``g = 1``; but every column sums to 0, so that update is zero. For
    cross-entropy, ``g = −e_k / h_k`` and ``δ = h − e_k``.

    Examples
    --------
    >>> W = np.array([[0.1, 0.2], [0.3, 0.4]])
    >>> g = grad(W, [1.0, 2.0], target=0)
    >>> g.W
    array([[-0.57444252,  0.57444252],
           [-1.14888503,  1.14888503]])
    >>> round(g.loss, 6)
    0.854355
    >>> grad(W, [1.0, 2.0], upstream=[1.0, 1.0]).W
    array([[0., 0.],
           [0., 0.]])
    """
    W, x, b = validate_layer(W, x, b)
    K = W.shape[1]
    if (target is None) == (upstream is None):
        raise InputError("give exactly one of target (a class index) or upstream (dLoss/dh)")
    fwd = forward(W, x, b)
    h, z = fwd.h, fwd.z
    loss: float | None = None
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
            raise InputError(f"target must be a class index, not {target!r}")
        if not 0 <= target < K:
            raise InputError(f"target class {target} is out of range: K = {K}, so 0 ≤ target ≤ {K - 1}")
        delta = h.copy()  # h − e_k
        delta[target] = -_one_minus(h)[target]
        m = np.max(z)
        loss = float(m + np.log(np.sum(np.exp(z - m))) - z[target])
    else:
        assert upstream is not None
        g = _as_float(upstream)
        if g.ndim == 2 and 1 in g.shape:
            g = g.reshape(-1)
        if g.shape != (K,):
            raise ShapeError(f"upstream has shape {g.shape} but the layer has K = {K} outputs")
        if not np.all(np.isfinite(g)):
            raise InputError("upstream holds a NaN or infinite value")
        # dh/dz annihilates constants, so shift g by one of its own entries first: a constant g then
        # gives an exact zero instead of the rounding error of 1 − Σh.
        g = g - np.max(g)
        delta = h * (g - h @ g)
    return Gradient(W=np.outer(x, delta), b=delta, z=delta, x=W @ delta, loss=loss)


def numerical_jacobian(
    f: Callable[[Array], Array],
    v: ArrayLike,
    *,
    step: ArrayLike | None = None,
    noise: float | None = None,
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

    Returns
    -------
    J : ndarray
        ``J[:, k] ≈ ∂f/∂v_k``, with ``f``'s output flattened.
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
    v = _as_float(v)
    flat = v.reshape(-1)
    eps = float(np.finfo(v.dtype).eps)
    if step is None:
        steps = eps ** (1 / 3) * np.maximum(1.0, np.abs(flat))
    else:
        # never a step too small to move v_k at all: a few ulps of it at least
        given = np.broadcast_to(np.asarray(step, dtype=v.dtype), v.shape).reshape(-1)
        steps = np.maximum(given, 4 * eps * np.abs(flat))
    if noise is None:
        noise = eps * float(np.max(np.abs(f(v)), initial=0.0))

    def central(k: int, s: float) -> Array:
        up, down = flat.copy(), flat.copy()
        up[k] += s
        down[k] -= s
        diff = np.ravel(f(up.reshape(v.shape))) - np.ravel(f(down.reshape(v.shape)))
        return diff / (up[k] - down[k])  # the step actually taken, after rounding

    cols, errs = [], []
    for k in range(flat.size):  # deliberately entry by entry: this is the independent reference
        coarse, fine = central(k, steps[k]), central(k, steps[k] / 2)
        cols.append((4 * fine - coarse) / 3)
        # truncation and noise both show in fine − coarse; rounding of f alone, amplified by the
        # division, is about 3·noise/s in the extrapolated value: take the two together.
        with np.errstate(over="ignore"):  # past the float range it says "cannot resolve"
            errs.append(np.minimum(np.abs(fine - coarse) + 3 * noise / steps[k], np.finfo(v.dtype).max))
    return np.stack(cols, axis=1), np.stack(errs, axis=1)


@dataclass(frozen=True)
class Check:
    """One line of a check report: ``ok`` when ``max_error ≤ tolerance``."""

    name: str
    max_error: float
    tolerance: float
    ok: bool


@dataclass(frozen=True)
class CheckReport:
    """All the checks :func:`check` ran; ``ok`` when every one holds."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def check(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
) -> CheckReport:
    """Cross-check the layer's derivatives against each other, finite differences and identities.

    Each check compares two things, ``a`` and a reference ``r``, and holds when
    ``max|a − r| ≤ atol + rtol · max|r|``. For an identity such as "rows sum to 0", ``max|r|`` is
    taken over the sums of the absolute terms, the size the rounding error scales with. Against
    finite differences, the tolerance also holds the differences' own error estimate (see
    :func:`numerical_jacobian`), so a badly scaled layer is not blamed for what finite differences
    cannot resolve; a wrong derivative is still far outside it.

    Returns
    -------
    CheckReport
        The checks in order, each with its max error and the tolerance it was held to.

    Examples
    --------
    >>> report = check([[0.1, 0.2], [0.3, 0.4]], [1.0, 2.0])
    >>> report.ok, len(report.checks)
    (True, 10)
    """
    W, x, b = validate_layer(W, x, b)
    n, K = W.shape
    b0 = np.zeros(K, dtype=W.dtype) if b is None else b
    fwd = forward(W, x, b0)
    h = fwd.h
    dhdz = softmax_jacobian(h)
    chain = jacobian(W, x, b0, method="chain")
    short = jacobian(W, x, b0, method="shortcut")

    def h_of_W(flatW: Array) -> Array:
        # flatW is ordered like dh/dW's columns: w[i,j] at i·n + j, i.e. Wᵀ flattened.
        return forward(flatW.reshape(K, n).T, x, b0).h

    def ce_loss(flatW: Array) -> Array:
        return -log_softmax(flatW.reshape(K, n) @ x + b0)[:1]

    results: list[Check] = []

    def compare(
        name: str, a: Array, ref: Array, scale: Array | None = None, slack: Array | None = None
    ) -> None:
        err = float(np.max(np.abs(a - ref))) if a.size else 0.0
        size = float(np.max(np.abs(ref if scale is None else scale))) if a.size else 0.0
        tol = atol + rtol * size + (float(np.max(slack)) if slack is not None and slack.size else 0.0)
        results.append(Check(name, err, tol, err <= tol))

    def against_fd(name: str, a: Array, fd: tuple[Array, Array]) -> None:
        compare(name, a, fd[0], slack=fd[1])  # held to rtol and atol, plus what FD itself can resolve

    zeros_K = np.zeros(K)
    compare("sum of h is 1", np.array([np.sum(h)]), np.ones(1))
    compare("dh/dz rows sum to 0", dhdz.sum(axis=1), zeros_K, np.abs(dhdz).sum(axis=1))
    compare("dh/dz columns sum to 0", dhdz.sum(axis=0), zeros_K, np.abs(dhdz).sum(axis=0))
    compare("dh/dz is symmetric", dhdz, dhdz.T)
    compare("dh/dW columns sum to 0", short.sum(axis=0), np.zeros(K * n), np.abs(short).sum(axis=0))
    compare("dh/dW shortcut = chain rule", short, chain)

    # Softmax responds to each logit on a scale of 1, and z_i carries rounding of ε times the size
    # of its terms; a probe that moves z_i by δ_i = (ε·size_i)^(1/3) balances that rounding
    # against truncation. Each variable moves by whatever shifts the logits it feeds by δ.
    eps = float(np.finfo(W.dtype).eps)
    big = np.finfo(W.dtype).max
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # extremes are capped below
        terms = np.minimum(np.abs(W).T @ np.abs(x) + np.abs(b0), big)
        z_noise = eps * np.maximum(1.0, terms)  # rounding in each z_i
        delta = z_noise ** (1 / 3)
        # rounding in z_i reaches h through ∂h/∂z_i, of size h_i(1 − h_i): a saturated logit's is lost
        h_noise = eps + 2 * float(np.sum(h * _one_minus(h) * z_noise))
        w_step = (delta[:, None] / np.abs(x)[None, :]).reshape(-1)  # w[i,j] feeds z_i through x_j
        x_step = np.min(delta[None, :] / np.abs(W), axis=1)  # x_j feeds every z_i through W[j,i]
    # x_j = 0 or a zero row of W: h ignores that variable, so any modest step will do.
    w_step = np.where(np.isfinite(w_step), w_step, float(delta.min()))
    x_step = np.where(np.isfinite(x_step), x_step, float(delta.min()))
    flat_W = W.T.reshape(-1)
    fd_z = numerical_jacobian(softmax, fwd.z, step=delta, noise=h_noise)
    fd_W = numerical_jacobian(h_of_W, flat_W, step=w_step, noise=h_noise)
    fd_x = numerical_jacobian(lambda v: forward(W, v, b0).h, x, step=x_step, noise=h_noise)
    loss = float(ce_loss(flat_W)[0])
    fd_loss = numerical_jacobian(ce_loss, flat_W, step=w_step, noise=h_noise + eps * abs(loss))
    against_fd("dh/dz = finite differences", dhdz, fd_z)
    against_fd("dh/dW = finite differences", short, fd_W)
    against_fd("dh/dx = finite differences", jacobian(W, x, b0, wrt="x"), fd_x)
    against_fd(
        "cross-entropy grad = finite differences", grad(W, x, b0, target=0).W.T.reshape(1, -1), fd_loss
    )
    return CheckReport(tuple(results))
