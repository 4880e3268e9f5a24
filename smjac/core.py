"""The maths of a softmax layer: forward pass, Jacobians and gradients.

Pure numpy; no I/O and no printing. The blog post's conventions hold throughout:

* ``z = Wᵀx + b`` with W n×K (``layout="in-out"``, the default), or ``z = Wx + b`` with W K×n
  (``layout="out-in"``, PyTorch's ``nn.Linear``); then ``h = softmax(z / T)`` or its log;
* a Jacobian has one row per output and one column per input;
* the weight ``w[i,j]`` joining input j to output i sits at column ``i·n + j`` of ``dh/dW`` and
  ``dz/dW`` in both layouts (it is ``W[j, i]`` in-out and ``W[i, j]`` out-in, so the order is
  PyTorch's ``weight.flatten()``);
* x may be one sample (n entries) or a batch (N×n); a batch gives one Jacobian per sample,
  stacked (N × K × …), never the block-diagonal N·K × N·K matrix.

The checker, with its finite-difference reference, is in :mod:`smjac.checks`.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import InputError, ShapeError

Array = NDArray[np.floating]

# Each choice is declared once, here; the command line takes its options from these.
Of = Literal["h", "z"]
Wrt = Literal["W", "z", "x", "b"]
Method = Literal["shortcut", "chain"]
LayoutName = Literal["in-out", "out-in"]
FunctionName = Literal["softmax", "log-softmax"]
Reduction = Literal["sum", "mean"]
DTypeName = Literal["float64", "float32"]
OFS, WRTS, METHODS = get_args(Of), get_args(Wrt), get_args(Method)
LAYOUTS, FUNCTIONS, REDUCTIONS = get_args(LayoutName), get_args(FunctionName), get_args(Reduction)


def _as_float(a: ArrayLike) -> Array:
    """Float arrays keep their precision; anything else becomes float64."""
    arr = np.asarray(a)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def all_finite(a: Array) -> bool:
    """Whether every entry is finite, in one pass and without a boolean array the size of ``a``.

    A NaN or infinity makes the sum NaN or infinite; a finite sum therefore clears them all. Only
    a sum that overflows needs the entry-by-entry look.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(a)):
            return True
    return bool(np.all(np.isfinite(a)))


def _fmax(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).max)


def _max_abs(a: Array) -> float:
    """``max|a|`` as a Python float (0 for an empty array)."""
    return float(np.max(np.abs(a), initial=0.0))


def _at_least(v: float) -> str:
    """``v`` rounded up to two significant digits: a bound that is safe to quote as "use T ≥ …"."""
    text = f"{v:.2g}"
    return text if float(text) >= v else f"{v * 1.05:.2g}"


def _pow2(a: float) -> float:
    """A power of two near ``a`` (≤ 2|a|, never infinite): dividing by it is exact and keeps digits."""
    return math.ldexp(1.0, math.frexp(a)[1] - 1) if a > 0 else 1.0


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


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
    """``log(softmax(z))``, computed directly so no probability is rounded to 0 first.

    Notes
    -----
    ``log softmax(z)_t = (z_t − m) − log Σ_k exp(z_k − m)`` with ``m = max(z)``.

    Examples
    --------
    >>> log_softmax([0.0, -1000.0])
    array([    0., -1000.])
    """
    z = _as_float(z)
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _one_minus(p: Array) -> Array:
    """``1 − p`` for probability vectors (last axis), keeping digits where p_t is near 1.

    Only the largest p_t can exceed ½, so only there does ``1 − p_t`` cancel; it is taken as the
    sum of the other probabilities instead, which cannot cancel.
    """
    out = 1.0 - p
    if p.size:
        top = np.argmax(p, axis=-1)[..., None]
        rest = np.where(np.arange(p.shape[-1]) == top, 0, p).sum(axis=-1, keepdims=True)
        np.put_along_axis(out, top, rest, axis=-1)
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
    h = _as_float(h)
    J = -h[..., :, None] * h[..., None, :]
    diag = np.arange(h.shape[-1])
    J[..., diag, diag] = h * _one_minus(h)
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
    p = _as_float(p)
    K = p.shape[-1]
    J = np.broadcast_to(-p[..., None, :], (*p.shape, K)).copy()
    diag = np.arange(K)
    J[..., diag, diag] = _one_minus(p)
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
    x = _as_float(x)
    return _dz_dW(x[None, :], K)[0]


def _dz_dW(X: Array, K: int) -> Array:
    N, n = X.shape
    J = np.zeros((N, K, K, n), dtype=X.dtype)
    J[:, np.arange(K), np.arange(K), :] = X[:, None, :]
    return J.reshape(N, K, K * n)


class Layer(NamedTuple):
    """A softmax layer and its input, checked and put in the post's layout.

    ``W`` is n×K whatever layout it was given in, ``X`` is N×n (one row per sample, N = 1 for a
    single vector) and ``batched`` says whether results keep the sample axis.
    """

    W: Array
    X: Array
    b: Array | None
    batched: bool
    layout: str = "in-out"
    function: str = "softmax"
    temperature: float = 1.0

    @property
    def n(self) -> int:
        return self.W.shape[0]

    @property
    def K(self) -> int:
        return self.W.shape[1]

    @property
    def N(self) -> int:
        return self.X.shape[0]

    def out(self, a: Array) -> Array:
        """Drop the sample axis of a per-sample result when x was a single vector."""
        return a if self.batched else a[0]


def make_layer(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
    names: tuple[str, str, str] = ("W", "x", "b"),
) -> Layer:
    """Check that W, x and b fit together and that x and b are finite, and put them in the post's layout.

    W is not scanned here (a second full read of the largest input): a NaN or infinity in W is
    refused by the first computation that meets it (see the comment in the body).

    ``names`` label the arrays in error messages (the command line passes file names).

    Raises
    ------
    ShapeError
        When a dimension is wrong; the message names the shapes and the fix.
    InputError
        When a value is NaN or infinite, or an option is not known.

    Examples
    --------
    >>> make_layer(np.ones((3, 5)), np.ones(4))
    Traceback (most recent call last):
    ...
    smjac.errors.ShapeError: W has shape (3, 5) but x has 4 entries; with --layout in-out W is n×K (one row per input), so x needs 3 entries or W 4 rows
    """
    _choice("layout", layout, LAYOUTS)
    _choice("function", function, FUNCTIONS)
    if not (np.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be a positive number, not {temperature}")
    wn, xn, bn = names
    W, x = _as_float(W), _as_float(x)
    if W.ndim != 2:
        shape = "n inputs × K outputs" if layout == "in-out" else "K outputs × n inputs"
        swapped = W.ndim == 1 and x.ndim == 2 and x.shape[0] > 1 and W.shape[0] in x.shape
        hint = f"; {wn} and {xn} look swapped: -W takes the matrix, -x the input vector" if swapped else ""
        raise ShapeError(f"{wn} must be a matrix ({shape}) but has shape {W.shape}{hint}")
    if W.size == 0:
        raise ShapeError(f"{wn} is empty (shape {W.shape})")
    Wio = W if layout == "in-out" else W.T
    n, K = Wio.shape
    if x.ndim == 1 or (x.ndim == 2 and x.shape == (n, 1) and n != 1) or (x.ndim == 2 and x.shape[0] == 1):
        X, batched = x.reshape(1, -1), False  # one sample, written as a vector, a row or a column
    elif x.ndim == 2:
        X, batched = x, True
    else:
        raise ShapeError(f"{xn} must be a vector (n) or a batch (N×n) but has shape {x.shape}")
    if X.shape[1] != n:
        entries = f"{X.shape[1]} entries" + (
            f" per sample (shape {x.shape}, read as a batch of {X.shape[0]} samples)" if batched else ""
        )
        other = "out-in" if layout == "in-out" else "in-out"
        if W.shape[layout == "in-out"] == X.shape[1]:  # the other axis would fit
            hint = f"{wn} fits --layout {other}" + (
                " (K×n, as PyTorch stores nn.Linear)" if other == "out-in" else " (n×K, as in the post)"
            )
        elif layout == "in-out":
            hint = f"with --layout in-out W is n×K (one row per input), so {xn} needs {n} entries or {wn} {X.shape[1]} rows"
        else:
            hint = f"with --layout out-in W is K×n (one column per input), so {xn} needs {n} entries or {wn} {X.shape[1]} columns"
        raise ShapeError(f"{wn} has shape {W.shape} but {xn} has {entries}; {hint}")
    if b is not None:
        b = _as_float(b)
        if b.ndim == 2 and 1 in b.shape:
            b = b.reshape(-1)
        if b.shape != (K,):
            raise ShapeError(f"{bn} has shape {b.shape} but {wn} has K = {K} outputs; {bn} needs {K} entries")
    # W is not scanned here: a second full read of the largest input would cost a third of a
    # gradient. A non-finite entry of W that reaches z is refused there (_logits); one that cannot
    # (multiplied by an x_j of 0, where a BLAS may skip it) changes no result built from z and x,
    # and whatever reads W itself again (dh/dx, dLoss/dx, check) scans it first (_finite_W). A
    # memory-mapped x is checked chunk by chunk as it is read (grad_chunks, forward_chunks).
    for name, arr in ((xn, x), (bn, b)):
        if arr is not None and not isinstance(arr, np.memmap) and not all_finite(arr):
            raise InputError(f"{name} holds a NaN or infinite value")
    dtype = np.result_type(W, X, *([] if b is None else [b]))
    return Layer(
        W=Wio.astype(dtype, copy=False),
        X=X.astype(dtype, copy=False),
        b=None if b is None else b.astype(dtype, copy=False),
        batched=batched,
        layout=layout,
        function=function,
        temperature=float(temperature),
    )


class _OneBlasThread:
    """A context in which BLAS runs in one thread, shared by smjac's threads and its callers'.

    The limit is process-wide (OpenBLAS keeps one thread pool), so concurrent users share it:
    the first to enter sets it, the last to leave restores the caller's setting. threadpoolctl's
    own context managers would, entered from two threads at once, restore each other's values,
    and since threadpoolctl 3.8 its OpenBLAS setter obeys only the first Python thread that used
    it and silently ignores the rest: a call from a worker thread after one from the main thread
    ran BLAS on every core and changed the last bits. So threadpoolctl only finds the libraries;
    the count is set with each library's own setter, from whichever thread enters.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._libs: list[Any] | None = None
        self._saved: list[Any] = []
        self._callers = 1

    def __enter__(self) -> int:
        """Returns the number of BLAS threads the caller had set (what smjac may use instead)."""
        with self._lock:
            if self._users == 0:
                if self._libs is None:
                    from threadpoolctl import ThreadpoolController  # only for large layers

                    self._libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
                self._saved = [lib.get_num_threads() for lib in self._libs]
                self._callers = max((n for n in self._saved if n), default=_workers())
                for lib in self._libs:
                    _set_blas_threads(lib, 1)
            self._users += 1
            return self._callers

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for lib, threads in zip(self._libs or [], self._saved, strict=True):
                    if threads:
                        _set_blas_threads(lib, threads)


def _set_blas_threads(lib: Any, threads: int) -> None:
    """The library's own setter: threadpoolctl's ``set_num_threads`` for OpenBLAS (3.8 and later)
    does nothing unless called from the first thread that called it."""
    getattr(lib, "_real_set_num_threads", lib.set_num_threads)(threads)


_one_blas_thread = _OneBlasThread()
ONE_BLAS_THREAD_FROM = 2**13  # N·n·K; OpenBLAS keeps smaller products in one thread itself
POOL_FROM = 2**21  # multiply-adds (about a millisecond here) before spans go to the pool
SPAN_BYTES = 4 * 2**20  # rows of a product per task: large enough for BLAS, small enough to stay in cache
MATVEC_COLUMNS = 4096  # columns of W per task for a single sample's z = Wᵀx

_pool_lock = threading.Lock()
_pool: Any = None


def _executor() -> Any:
    """One pool of worker threads for the process, started on first use and kept: starting
    threads for every call costs more than a small product."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(_workers(), thread_name_prefix="smjac")
        return _pool


def _spans(total: int, step: int) -> list[tuple[int, int]]:
    step = max(1, step)
    return [(a, min(total, a + step)) for a in range(0, total, step)]


def _row_spans(rows: int, row_bytes: int, parts: int = 4, least: int = 64) -> list[tuple[int, int]]:
    """Spans of rows for products and row-wise passes, of about SPAN_BYTES and at least ``parts``
    of them when there are rows enough. They depend on the shape alone, never on the number of
    threads: that is what gives the same bits on any machine (see :func:`_in_spans`)."""
    step = min(SPAN_BYTES // max(1, row_bytes), -(-rows // parts))
    return _spans(rows, max(step, least))


def _in_spans(work: Callable[[Any], Any], spans: Sequence[Any], size: int) -> list[Any]:
    """Run ``work`` on each span, on the shared pool, each BLAS call inside it in one BLAS thread.

    The same bits whatever the number of cores: every span is a fixed part of the output (whole
    rows or columns), computed by one single-threaded BLAS call, so which thread runs it, and how
    many run at once, cannot change a digit. The caller's BLAS thread count sets how many spans
    run at once (OPENBLAS_NUM_THREADS=1 keeps smjac to the calling thread). Work of fewer than
    POOL_FROM multiply-adds (``size``) runs its spans in the calling thread: handing a span to
    another thread and waiting for it costs tens of microseconds, more than such a span takes.
    """
    with _one_blas_thread as threads:
        if size >= POOL_FROM and threads > 1 and len(spans) > 1 and _workers() > 1:
            return list(_executor().map(work, spans))
        return [work(span) for span in spans]


def _product(A: Array, B: Array, out: Array | None = None) -> Array:
    """``A @ B`` (2-D), split into fixed spans of output rows, or of columns for a single row.

    Small products (OpenBLAS keeps them in one thread itself) are one call in the calling thread.
    """
    (M, k), C = A.shape, B.shape[1]
    if out is None:
        out = np.empty((M, C), dtype=np.result_type(A, B))
    if M * k * C < ONE_BLAS_THREAD_FROM:
        return np.matmul(A, B, out=out)
    if M == 1:  # a matrix-vector product: each span owns whole entries of the result

        def columns(span: tuple[int, int]) -> None:
            np.matmul(A[0], B[:, span[0] : span[1]], out=out[0, span[0] : span[1]])

        _in_spans(columns, _spans(C, MATVEC_COLUMNS), k * C)
    else:

        def rows(span: tuple[int, int]) -> None:
            np.matmul(A[span[0] : span[1]], B, out=out[span[0] : span[1]])

        _in_spans(rows, _row_spans(M, C * out.itemsize, parts=2, least=32), M * k * C)
    return out


def _products(A: Array, B: Array, out: Array | None = None) -> Array:
    """``A[s] @ B`` for each s of a stack A (N×R×C), each by :func:`_product`."""
    if out is None:
        out = np.empty((A.shape[0], A.shape[1], B.shape[1]), dtype=np.result_type(A, B))
    for s in range(A.shape[0]):
        _product(A[s], B, out=out[s])
    return out


def _logits(L: Layer) -> Array:
    """``Z = X W + b`` (N×K), refusing logits that overflow rather than returning NaN.

    The product is split into fixed spans of rows (columns of W for one sample), each in one BLAS
    thread on smjac's pool (:func:`_in_spans`): all cores, and the same digits whatever their
    number. One thread per core and no BLAS threads of its own also means no OpenBLAS worker left
    spinning after the call to take a core from what follows (the Jacobian's fill).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        Z: Array = _product(L.X, L.W)
        if L.b is not None:
            Z += L.b
    if not all_finite(Z):
        Z = _logits_rescaled(L)
    return Z


def _finite_W(L: Layer) -> None:
    """Refuse a W with a NaN or infinity, for what reads W again after z (make_layer does not scan
    it; see there)."""
    if not all_finite(L.W):
        raise InputError("W holds a NaN or infinite value")


def _logits_rescaled(L: Layer) -> Array:
    """The logits again, with W and x scaled by powers of two (exact), for when a partial sum
    overflowed although z itself may not; refuses only a z that is truly past the float range."""
    _finite_W(L)  # make_layer leaves W to here: a NaN in W is the likeliest cause
    sw, sx = _pow2(_max_abs(L.W)), _pow2(_max_abs(L.X))
    fmax = _fmax(L.W.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        Z = _product(L.X / sx, L.W / sw)  # every term ≤ 4 in size: no partial sum can overflow
        big = _max_abs(Z) * sx * sw  # in Python floats: the size z really reaches
        Z = Z * sx * sw
        if L.b is not None:
            Z = Z + L.b
    if not all_finite(Z):
        reach = f"about {big:.3g}" if math.isfinite(big) else "more than that"
        raise InputError(
            f"z = Wᵀx overflows {Z.dtype} (its largest value is {fmax:.3g}; z reaches {reach}); "
            "scale W or x down"
        )
    return Z


def _shifted(L: Layer, Z: Array) -> Array:
    """``(z − max z) / T``, what the softmax is taken of: equal to ``z / T`` up to a constant,
    which the softmax ignores, and at most 0, so a tiny T cannot overflow the largest term.

    An entry may still reach −inf (z_i far below max z, or T tiny); its probability is then an
    exact 0, as it truly is to the float's precision. Only log-softmax must refuse it.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        S = Z - np.max(Z, axis=-1, keepdims=True)
        return S / L.temperature if L.temperature != 1 else S


def _log_softmax_or_refuse(L: Layer, Z: Array, S: Array) -> Array:
    """log-softmax of the shifted logits ``S``, refusing a log-probability past the float range."""
    with np.errstate(under="ignore"):
        H = log_softmax(S)
    if not all_finite(H):
        fmax, T = _fmax(Z.dtype), L.temperature
        spread = float(np.max(Z / fmax) - np.min(Z / fmax))  # (max z − min z) / fmax, without overflow
        span = f"{spread * fmax:.3g}" if spread <= 1 else f"more than {fmax:.3g}"
        raise InputError(
            f"--temperature {T:.3g} overflows log-softmax: z spans {span}, so (min z − max z)/T is past "
            f"−{fmax:.3g} and log h would be −inf; use T ≥ {_at_least(spread)} (or --function softmax)"
        )
    return H


class Forward(NamedTuple):
    """The forward pass: logits ``z``, outputs ``h`` and probabilities ``p = softmax(z / T)``.

    For the softmax ``h`` and ``p`` are the same; for log-softmax ``h = log p``. Each has K
    entries, or N×K for a batch.
    """

    z: Array
    h: Array
    p: Array


class _Rows(NamedTuple):
    """What one pass over the rows gives: z (unless not kept), p or δ, log h, and for a target the
    losses and the column sums of δ, span by span."""

    Z: Array | None
    P: Array
    H: Array | None
    losses: Array | None
    sums: Array | None


def _softmax_rows(
    L: Layer, *, keep_z: bool = True, log_h: bool = False, t: NDArray[np.intp] | None = None
) -> _Rows | None:
    """The forward pass in one sweep over fixed spans of rows, each finished while in cache.

    Per span: ``z = xW + b`` (its own product, in one BLAS thread, when the batch has several
    spans), ``p = softmax((z − max z)/T)`` in place, and log h (``log_h``) or, for targets ``t``,
    the cross-entropy's ``δ = (p − e_t)/T`` in place of p, its loss ``log Σexp − s_t`` from the
    same sum, and δ's column sums. No temporary the size of the batch: the results are the only
    N×K arrays. The operations, and so the bits, are those of :func:`_forward` and the careful
    gradient, span by span.

    Returns None when a span meets a non-finite number; the caller then takes the careful path,
    which rescales where it can and otherwise says why it refuses.
    """
    (N, n), K, dtype, T = L.X.shape, L.K, L.W.dtype, L.temperature
    P = np.empty((N, K), dtype)
    Z = np.empty((N, K), dtype) if keep_z else P  # without z, each span's z becomes its p in place
    H = np.empty((N, K), dtype) if log_h else None
    spans = _row_spans(N, K * P.itemsize, least=max(64, POOL_FROM // (n * K)))  # small: one span
    fused = len(spans) > 1
    losses = np.empty(N, dtype) if t is not None else None
    sums = np.empty((len(spans), K), dtype) if t is not None else None
    if not fused:  # one span: the product alone can use every core (columns of W for one sample)
        with np.errstate(over="ignore", invalid="ignore"):
            _product(L.X, L.W, out=Z)

    def work(i: int) -> bool:
        r0, r1 = spans[i]
        z, p = Z[r0:r1], P[r0:r1]
        if fused:
            np.matmul(L.X[r0:r1], L.W, out=z)
        if L.b is not None:
            z += L.b
        if not all_finite(z):
            return False
        np.subtract(z, np.max(z, axis=1, keepdims=True), out=p)  # s = (z − max z)/T: see _shifted
        if T != 1:
            p /= T
        if H is not None:
            H[r0:r1] = p
        if t is not None:
            rows, tt = np.arange(r1 - r0), t[r0:r1]
            s_t = p[rows, tt]
        np.exp(p, out=p)
        total = np.sum(p, axis=1, keepdims=True)
        if H is not None:
            h = H[r0:r1]
            h -= np.log(total)
            if not all_finite(h):
                return False
        p /= total
        if t is not None and losses is not None and sums is not None:
            losses[r0:r1] = np.log(total[:, 0]) - s_t
            # δ_t = −(1 − p_t); where t is the likeliest class 1 − p_t cancels, and the sum of the
            # other probabilities is taken instead (as _one_minus does, the same bits)
            rest = 1.0 - p[rows, tt]
            hit = np.flatnonzero(np.argmax(p, axis=1) == tt)
            if hit.size:
                others = p[hit]
                others[np.arange(hit.size), tt[hit]] = 0
                rest[hit] = others.sum(axis=1)
            p[rows, tt] = -rest
            if T != 1:
                p /= T
            if not all_finite(p):
                return False
            sums[i] = p.sum(axis=0)
        return True

    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if N * n * K < ONE_BLAS_THREAD_FROM:
            done = [work(i) for i in range(len(spans))]
        else:
            done = _in_spans(work, range(len(spans)), N * n * K)
    if not all(done):
        return None
    return _Rows(Z if keep_z else None, P, H, losses, sums)


def _forward(L: Layer) -> tuple[Array, Array, Array]:
    rows = _softmax_rows(L, log_h=L.function == "log-softmax")
    if rows is not None and rows.Z is not None:
        return rows.Z, rows.P if rows.H is None else rows.H, rows.P
    return _forward_careful(L)


def _forward_careful(L: Layer) -> tuple[Array, Array, Array]:
    Z = _logits(L)
    S = _shifted(L, Z)  # not Z / T: that overflows for a tiny T where p is still finite
    with np.errstate(under="ignore"):
        P = softmax(S)
    H = P if L.function == "softmax" else _log_softmax_or_refuse(L, Z, S)
    return Z, H, P


def _probabilities(L: Layer, Z: Array | None = None) -> Array:
    """``p = softmax(z / T)`` (N×K), all a derivative needs: log h may be past the float range
    (log-softmax at a tiny T) while its derivatives are not."""
    if Z is None:
        rows = _softmax_rows(L, keep_z=False)
        if rows is not None:
            return rows.P
        Z = _logits(L)
    with np.errstate(under="ignore"):
        return softmax(_shifted(L, Z))


def forward(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
) -> Forward:
    """Run the layer forward: ``z = Wᵀx + b``, ``h = softmax(z / T)`` (or its log).

    Parameters
    ----------
    W : array_like
        Weights: n×K (``layout="in-out"``, the post's) or K×n (``"out-in"``, PyTorch's).
    x : array_like
        One input (n) or a batch (N×n).
    b : array_like, optional
        Bias, K entries; none by default, as in the post.
    layout : {"in-out", "out-in"}
    function : {"softmax", "log-softmax"}
    temperature : float
        T > 0; the logits are divided by it.

    Returns
    -------
    Forward
        ``z``, ``h`` and ``p``, each K (or N×K).

    Examples
    --------
    The post's example:

    >>> W = [[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 0.1], [0.11, 0.12, 0.13, 0.14, 0.15]]
    >>> forward(W, [0.1, 0.5, 0.4]).h
    array([0.19091352, 0.20353145, 0.21698333, 0.23132428, 0.15724743])
    """
    return layer_forward(make_layer(W, x, b, layout=layout, function=function, temperature=temperature))


def layer_forward(L: Layer) -> Forward:
    """:func:`forward` for a :class:`Layer` (one :func:`make_layer` has already checked)."""
    Z, H, P = _forward(L)
    return Forward(z=L.out(Z), h=L.out(H), p=L.out(P))


def _dh_dz(L: Layer, P: Array) -> Array:
    """Per-sample Jacobian of h with respect to z (N×K×K), temperature included."""
    _dh_dz_scale(L, P)  # refuses a dh/dz past the float range before its K² entries are made
    J = softmax_jacobian(P) if L.function == "softmax" else log_softmax_jacobian(P)
    return J / L.temperature if L.temperature != 1 else J


def _dh_dz_scale(L: Layer, P: Array) -> Array:
    """``max|dh/dz|`` of each sample (N), temperature included, from p in O(N·K).

    Every entry of dh/dz, and so of dh/dW and the factors, is bounded by it; checking it here
    keeps a K² (or K²n) result from ever being scanned for infinities. The largest entry of
    ``diag(p) − ppᵀ`` is on the diagonal, ``p_t (1 − p_t)``; of ``I − 1pᵀ`` it is the larger of
    ``1 − p_t`` and an off-diagonal ``p_i``. The bound is the very float the largest entry is.
    """
    one_minus = _one_minus(P)
    if L.function == "softmax":
        top = np.max(P * one_minus, axis=-1)
    else:
        top = np.max(one_minus, axis=-1)
        if L.K > 1:
            top = np.maximum(top, np.max(P, axis=-1))
    T = L.temperature
    with np.errstate(over="ignore"):
        scale = top / T if T != 1 else top
    if not all_finite(scale):
        worst, fmax = float(np.max(top)), _fmax(P.dtype)
        raise InputError(
            f"--temperature {T:.3g} overflows dh/dz: its largest entry is {worst:.3g}/T, past "
            f"{P.dtype}'s {fmax:.3g}; use T ≥ {_at_least(worst / fmax)}"
        )
    return scale


def _guard_dW(L: Layer, of: str, P: Array | None) -> None:
    """Refuse a dh/dW (or dz/dW) past the float range: its largest entry is max|dh/dz|·max|x|."""
    if of == "z":
        return  # dz/dW holds x itself
    assert P is not None
    scale = _dh_dz_scale(L, P)
    xmax = np.max(np.abs(L.X), axis=1)
    with np.errstate(over="ignore"):
        top = scale * xmax
    if not all_finite(top):
        s = int(np.argmax(~np.isfinite(top)))
        raise InputError(
            f"dh/dW = dh/dz ⊗ x overflows {L.W.dtype}: max|dh/dz| = {scale[s]:.3g} and max|x| = "
            f"{xmax[s]:.3g}"
            + (f" (sample {s})" if L.batched else "")
            + "; scale x down or raise the temperature"
        )


BLOCK_BYTES = 16 * 2**20  # row blocks of about this size: large enough to stream, small enough to share
Progress = Callable[[int], None]  # called with the number of bytes just written


def _row_blocks(rows: int, row_bytes: int, block_bytes: int = BLOCK_BYTES) -> list[tuple[int, int]]:
    step = max(1, block_bytes // max(1, row_bytes))
    return [(r, min(rows, r + step)) for r in range(0, rows, step)]


@functools.cache
def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))  # asked once: os.cpu_count() reads /sys each time


def _run(
    work: Callable[[Any], int], tasks: Sequence[Any], progress: Progress | None, threads: bool = True
) -> None:
    if threads and len(tasks) > 1 and _workers() > 1:
        for done in _executor().map(work, tasks):
            if progress:
                progress(done)
    else:
        for task in tasks:
            done = work(task)
            if progress:
                progress(done)


def _bufsize_for_rows(m: int) -> int:
    """numpy's ufunc buffer size (in elements) for an outer product with rows of m numbers.

    When rows are shorter than the buffer (8192 by default), numpy 2 copies both broadcast
    operands through its buffers to make longer inner loops, and the product runs at a third of
    the memory's speed. A buffer no longer than a row lets the ufunc write each row in place:
    measured here, 2–3× faster for rows of 128 to 2048 numbers. Below about 128 the copies pay
    for themselves, so the setting is left alone there.
    """
    current = np.getbufsize()
    return m - m % 16 if 128 <= m < current else current


def _shortcut_dW(A: Array, X: Array, out: Array, progress: Progress | None = None) -> Array:
    """``out[s, t, i·n + j] = A[s, t, i] x[s, j]``: the post's closed form, ``A ⊗ xᵀ``, in place."""
    return _outer_fill(A, X, out, progress)


def _outer_fill(A: Array, X: Array, out: Array, progress: Progress | None = None) -> Array:
    """``out[s, r, c·m + j] = A[s, r, c] X[s, j]`` for A of shape N×R×C and X of N×m.

    The output is written in row blocks straight into ``out`` (no temporary of its size), by a
    few threads at once: numpy lets go of the GIL inside the multiplication, and memory bandwidth,
    not arithmetic, is what limits it. With C = 1 it is an outer product, as the gradient uses it.
    """
    (N, R, C), m = A.shape, X.shape[1]
    out4 = out.reshape(N, R, C, m)
    tasks = [(s, r0, r1) for s in range(N) for r0, r1 in _row_blocks(R, C * m * out.itemsize)]
    bufsize = _bufsize_for_rows(m)

    def fill(task: tuple[int, int, int]) -> int:
        s, r0, r1 = task
        previous = np.setbufsize(bufsize)  # per thread; restored, so the caller's setting stands
        try:
            np.multiply(A[s, r0:r1, :, None], X[s, None, None, :], out=out4[s, r0:r1])
        finally:
            np.setbufsize(previous)
        return (r1 - r0) * C * m * out.itemsize

    _run(fill, tasks, progress)
    return out


def _chain_dW(A: Array, X: Array, out: Array, progress: Progress | None = None) -> Array:
    """``out = A · dz/dW`` for each sample, the post's chain rule, using the shape of dz/dW.

    dz/dW is block diagonal: its row i holds x in columns ``i·n … i·n + n − 1`` and nothing else,
    so the block of columns for output i is ``A · dz/dW[:, block i] = A[:, i] · xᵀ``, a K×1 by
    1×n product. That costs K²n in all, not the K³n of multiplying by the dense matrix.
    """
    (N, R, K), n = A.shape, X.shape[1]  # R rows of A: all K, or a block of them
    out4 = out.reshape(N, R, K, n)
    tasks = [(s, i) for s in range(N) for i in range(K)]

    def product(task: tuple[int, int]) -> int:
        s, i = task
        np.matmul(A[s, :, i : i + 1], X[s, None, :], out=out4[s, :, i, :])
        return R * n * out.itemsize

    # each product writes R·n numbers; below about a megabyte threads cost more than they save
    _run(product, tasks, progress, threads=R * n * out.itemsize >= 2**20)
    return out


def jacobian_shape(L: Layer, *, of: str = "h", wrt: str = "W") -> tuple[int, int, int]:
    """The per-sample Jacobian's shape, N × K × columns, without computing it."""
    _choice("of", of, OFS)
    _choice("wrt", wrt, WRTS)
    cols = {"W": L.K * L.n, "x": L.n, "z": L.K, "b": L.K}[wrt]
    return (L.N, L.K, cols)


def _dfdz_or_identity(L: Layer, of: str, P: Array | None = None) -> Array:
    if of == "z":
        return np.broadcast_to(np.eye(L.K, dtype=L.W.dtype), (L.N, L.K, L.K))
    return _dh_dz(L, _probabilities(L) if P is None else P)


def layer_jacobian(
    L: Layer,
    *,
    of: str = "h",
    wrt: str = "W",
    method: str = "shortcut",
    out: Array | None = None,
    progress: Progress | None = None,
) -> Array:
    """:func:`jacobian` for a :class:`Layer`: always per sample, N × K × (columns).

    ``out``, if given, receives the result (shape from :func:`jacobian_shape`, the layer's dtype).
    ``progress`` is called with each block's bytes as they are written.
    """
    _choice("method", method, METHODS)
    shape = jacobian_shape(L, of=of, wrt=wrt)
    if out is None:
        out = np.empty(shape, dtype=L.W.dtype)
    elif out.shape != shape or out.dtype != L.W.dtype:
        raise ShapeError(f"out has shape {out.shape} and dtype {out.dtype}; it needs {shape} and {L.W.dtype}")
    P = _probabilities(L) if of == "h" else None
    A = _dfdz_or_identity(L, of, P)
    if wrt == "W":
        _guard_dW(L, of, P)
        fill = _chain_dW if method == "chain" else _shortcut_dW
        return fill(A, L.X, out, progress)
    if wrt == "x":
        _finite_W(L)  # dh/dx reads W itself
    if wrt in ("z", "b"):
        out[...] = A
    elif of == "z":
        out[...] = L.W.T
    elif method == "chain":
        _chain_dx(L, A, P, out)
    else:
        assert P is not None  # of == "h"
        out[...] = _shortcut_dx(L, P)
    if progress:
        progress(out.nbytes)
    return out


def _dx_scale(L: Layer, bound: float) -> float | None:
    """None when dh/dx's partial results cannot overflow (``bound``·max|W| well inside the float
    range), else a power of two to divide W by first, so that they cannot."""
    wmax = _max_abs(L.W)
    return _pow2(wmax) if bound * wmax > _fmax(L.W.dtype) / 4 else None


def _rescale_dx(L: Layer, J: Array, factor: float, T: float = 1.0) -> Array:
    """``J · factor / T``, refusing a dh/dx past the float range."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        both = factor / T
        J = J * both if math.isfinite(both) else J / T * factor
    if not all_finite(J):
        raise InputError(
            f"dh/dx overflows {J.dtype}: W's entries reach {_max_abs(L.W):.3g} with --temperature "
            f"{L.temperature:.3g}; scale W down or raise the temperature"
        )
    return J


def _chain_dx(L: Layer, A: Array, P: Array | None, out: Array) -> None:
    """``dh/dx = dh/dz · Wᵀ``; with W scaled first when a partial sum could overflow."""
    scale = float(np.max(_dh_dz_scale(L, P))) if P is not None else 1.0
    s = _dx_scale(L, scale * L.K)
    if s is None:
        _products(A, L.W.T, out=out)
    else:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            out[...] = _rescale_dx(L, _products(A, L.W.T / s), s)


DxParts = tuple[Array, "float | None", Any, Array, Array]


def _dx_parts(L: Layer, P: Array) -> DxParts:
    """What every sample's dh/dx is made from: Wᵀ (scaled if need be), the scale, each sample's
    likeliest output, ``Σ_i p_i W[j,i]`` and the same sum without the likeliest (N×n each)."""
    s = _dx_scale(L, 2 / min(L.temperature, 1.0))
    Wt = L.W.T if s is None else L.W.T / s
    rows, top = np.arange(P.shape[0]), np.argmax(P, axis=1)
    others = P.copy()
    others[rows, top] = 0
    return Wt, s, top, _product(P, Wt), _product(others, Wt)


def _sample_parts(parts: DxParts, s: int) -> DxParts:
    Wt, scale, top, mean, rest = parts
    return Wt, scale, top[s : s + 1], mean[s : s + 1], rest[s : s + 1]


def _shortcut_dx(L: Layer, P: Array, parts: DxParts | None = None) -> Array:
    """``dh/dx[t, j]`` in closed form: ``p_t (W[j,t] − Σ_i p_i W[j,i]) / T`` (no p_t for log-softmax).

    ``W[j,t] − Σ p_i W[j,i]`` can reach twice max|W| and overflow where dh/dx does not (the p_t
    in front is small), so for a W near the float's limit it is taken on W scaled by a power of two.
    ``parts`` (from :func:`_dx_parts` on the whole batch, cut to P's samples) lets one sample be
    taken with the digits it has in the whole batch.
    """
    T = L.temperature
    Wt, s, top, mean, rest = _dx_parts(L, P) if parts is None else parts
    rows = np.arange(P.shape[0])
    centred = Wt[None, :, :] - mean[:, None, :]
    # For the likeliest output the two terms agree to 1 − p_t and cancel; there take
    # (1 − p_t) W[j,t] − Σ_{i≠t} p_i W[j,i], whose parts do not.
    centred[rows, top, :] = _one_minus(P)[rows, top][:, None] * Wt[top, :] - rest
    J = P[:, :, None] * centred if L.function == "softmax" else centred
    if s is None:
        return J / T if T != 1 else J
    return _rescale_dx(L, J, s, T)


class Blocks(NamedTuple):
    """A Jacobian as consecutive row blocks, for writing one too large to hold.

    ``shape`` and ``dtype`` describe the whole; ``rows`` yields 2-D blocks of its rows in C order
    (sample by sample). Each block is only valid until the next is drawn: the buffer is reused.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    rows: Iterator[Array]


def _dfdz_rows(L: Layer, of: str, p: Array | None, one_minus: Array | None, r0: int, r1: int) -> Array:
    """Rows ``r0:r1`` of one sample's dh/dz (or dz/dz = I), made from p alone: (r1 − r0) × K.

    The same floats as the rows of :func:`_dh_dz`, in O((r1 − r0)·K) memory, so a K×K factor is
    never held for streaming.
    """
    K, dtype = L.K, L.W.dtype
    rows = np.arange(r1 - r0)
    if of == "z":
        A = np.zeros((r1 - r0, K), dtype=dtype)
        A[rows, rows + r0] = 1
        return A
    assert p is not None and one_minus is not None
    if L.function == "softmax":
        A = -p[r0:r1, None] * p[None, :]
        A[rows, rows + r0] = p[r0:r1] * one_minus[r0:r1]
    else:
        A = np.broadcast_to(-p[None, :], (r1 - r0, K)).copy()
        A[rows, rows + r0] = one_minus[r0:r1]
    return A / L.temperature if L.temperature != 1 else A


def jacobian_blocks(
    L: Layer,
    *,
    of: str = "h",
    wrt: str = "W",
    method: str = "shortcut",
    block_bytes: int = BLOCK_BYTES,
) -> Blocks:
    """The per-sample Jacobian of ``L`` in row blocks of about ``block_bytes``: memory stays flat.

    Rows of dh/dz are made block by block from p, so no K×K factor is held whatever K is, and a
    batch goes sample by sample. Every refusal (a result past the float range) happens here,
    before the first block is drawn.
    """
    _choice("method", method, METHODS)
    N, K, cols = jacobian_shape(L, of=of, wrt=wrt)
    shape = (N, K, cols) if L.batched else (K, cols)
    P = _probabilities(L) if of == "h" else None
    if of == "h":
        assert P is not None
        _dh_dz_scale(L, P)  # refuse before any block
        if wrt == "W":
            _guard_dW(L, of, P)
    one_minus = None if P is None else _one_minus(P)
    itemsize = L.W.dtype.itemsize
    # the rows of dh/dz a block is made from take K/cols = 1/n of the block's memory on top
    spans = _row_blocks(K, cols * itemsize, block_bytes)

    def rows() -> Iterator[Array]:
        if wrt == "x":  # K×n a sample: no larger than W, which is held already
            out = np.empty((1, K, cols), dtype=L.W.dtype)
            parts = _dx_parts(L, P) if P is not None and method == "shortcut" else None
            for s in range(N):
                Ps = None if P is None else P[s : s + 1]  # the batch's p: the same digits as the whole
                if Ps is None:
                    out[0] = L.W.T
                elif method == "chain":
                    _chain_dx(L, _dh_dz(L, Ps), Ps, out)
                else:
                    out[...] = _shortcut_dx(L, Ps, parts and _sample_parts(parts, s))
                yield out[0]
            return
        buffer = np.empty((max(r1 - r0 for r0, r1 in spans), cols), dtype=L.W.dtype) if wrt == "W" else None
        fill = _chain_dW if method == "chain" else _shortcut_dW
        for s in range(N):
            p = None if P is None else P[s]
            om = None if one_minus is None else one_minus[s]
            for r0, r1 in spans:
                A = _dfdz_rows(L, of, p, om, r0, r1)
                if buffer is None:  # dh/dz or dh/db: the rows themselves
                    yield A
                    continue
                block = buffer[: r1 - r0]
                fill(A[None], L.X[s : s + 1], block[None])
                yield block

    return Blocks(shape, L.W.dtype, rows())


def factor_blocks(L: Layer, *, of: str = "h", block_bytes: int = BLOCK_BYTES) -> Blocks:
    """The factor ``A = dh/dz`` of :func:`layer_factors` in row blocks (N·K rows of K), from p.

    For writing factored output past the memory budget: the K² numbers are never held at once.
    x, the other factor, is ``L.X`` (n or N×n) as it is.
    """
    return jacobian_blocks(L, of=of, wrt="z", block_bytes=block_bytes)


ESTIMATES = ("forward", "jacobian", "factored", "streamed", "entry", "grad", "check", "legend")
TEXT_BYTES_PER_NUMBER = (
    80  # a number turned into JSON/CSV text whole: a Python float, its list slot, its text
)
LEGEND_BYTES_PER_ROW = 6000  # measured: a 1 MB W (131,072 weights) made 760 MB of legend


def estimate_bytes(
    L: Layer,
    what: str = "jacobian",
    *,
    of: str = "h",
    wrt: str = "W",
    method: str = "shortcut",
    probes: int | None = None,
    text: bool = False,
    block_bytes: int = BLOCK_BYTES,
) -> int:
    """Bytes a command's path allocates beyond the loaded layer, at its peak, before it starts.

    One estimate per path, so a caller can compare it with its memory budget before the first
    large allocation. Generous by design (it counts temporaries), never a measurement.

    Parameters
    ----------
    L : Layer
        The checked layer.
    what : {"forward", "jacobian", "factored", "streamed", "entry", "grad", "check", "legend"}
        ``"jacobian"`` is the result held whole (:func:`layer_jacobian`), ``"factored"`` the
        factors (:func:`layer_factors`), ``"streamed"`` :func:`jacobian_blocks` (one block),
        ``"entry"`` :func:`layer_entry`, ``"check"`` :func:`smjac.checks.layer_check` with
        ``probes``, ``"legend"`` the table naming each column of the Jacobian ``wrt``.
    of, wrt, method
        As for :func:`layer_jacobian`.
    probes : int, optional
        For ``"check"``: as :func:`smjac.checks.check` takes it.
    text : bool
        The result is turned into text (JSON, CSV, a table) whole, or, streamed, a block at a
        time: add :data:`TEXT_BYTES_PER_NUMBER` for each number held as text.

    Examples
    --------
    >>> L = make_layer(np.ones((1, 20000)), [1.0])
    >>> estimate_bytes(L, "entry") < 2**20 < estimate_bytes(L, "jacobian") // 1000
    True
    """
    _choice("what", what, ESTIMATES)
    N, K, cols = jacobian_shape(L, of=of, wrt=wrt)
    b, n = L.W.dtype.itemsize, L.n
    logits = 6 * N * K * b  # z, its shifted copy, exp, p, 1 − p, h
    dfdz = 3 * N * K * K * b  # dh/dz, its copy divided by T, one temporary
    numbers = 0
    if what == "forward":
        total, numbers = logits, 3 * N * K
    elif what == "entry":
        total, numbers = 6 * K * b + 2 * n * b, 1
    elif what == "jacobian":
        numbers = N * K * cols
        closed_dx = wrt == "x" and method == "shortcut" and of == "h"  # no K×K factor, K×n temporaries
        work = 4 * N * K * n * b if closed_dx else dfdz
        total = logits + work + numbers * b
    elif what == "factored":
        numbers = N * K * K + N * n
        total = logits + dfdz + N * n * b
    elif what == "streamed":
        block = 4 * K * n * b if wrt == "x" else 2 * block_bytes + 2 * (block_bytes // max(1, n))
        total = logits + block + 2 * N * n * b
        numbers = min(N * K * cols, max(K * n if wrt == "x" else 1, block_bytes // b))
    elif what == "grad":
        numbers = K * n + K + N * K + N * n
        total = 8 * N * K * b + 2 * K * n * b + 2 * N * n * b
    elif what == "check":
        m = K * n if probes is None else min(probes, K * n)
        # per sample: dh/dz and what the identities make of it (K², eigenvalues included), the
        # columns of dh/dW compared (shortcut, chain, finite differences and their errors: K·m
        # each, twice while stacked) and dh/dx both ways
        total = 8 * K * K * b + (8 if m < K * n else 12) * K * m * b + 6 * K * n * b + logits
        numbers = 16 * 4
    else:  # legend
        numbers = cols
        total = cols * LEGEND_BYTES_PER_ROW
    if text and what != "legend":
        total += numbers * TEXT_BYTES_PER_NUMBER
    return int(total)


ENTRY_FORMS = {"W": "T,I,J (output T, weight w[I,J])", "x": "T,K (output T, x[K])"}


def entry_form(wrt: str) -> str:
    """How ``--entry`` is written for ``wrt``: ``T,I,J`` for W, ``T,K`` otherwise."""
    _choice("wrt", wrt, WRTS)
    return ENTRY_FORMS.get(wrt, f"T,K (output T, {wrt}[K])")


def layer_entry(L: Layer, index: Sequence[int], *, of: str = "h", wrt: str = "W", sample: int = 0) -> float:
    """One entry of the Jacobian, ``∂of_T/∂wrt[…]``, in O(K + n) memory and one pass over W.

    ``index`` is ``(T, I, J)`` for ``wrt="W"`` (output T, weight ``w[I,J]``: column ``I·n + J``)
    and ``(T, K)`` otherwise. The value is the very float :func:`layer_jacobian` has there.

    Raises
    ------
    InputError
        For the wrong number of indices, or one out of range (the message gives the range).

    Examples
    --------
    >>> L = make_layer([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0])
    >>> bool(layer_entry(L, (0, 0, 1)) == layer_jacobian(L)[0, 0, 1])
    True
    >>> layer_entry(L, (0, 2, 0))
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: i = 2 is out of range: 0 ≤ i ≤ 1
    """
    _choice("of", of, OFS)
    index = tuple(int(v) for v in index)
    want = 3 if wrt == "W" else 2
    if len(index) != want:
        raise InputError(f"--wrt {wrt} takes {entry_form(wrt)}, not {len(index)} indices")
    if not 0 <= sample < L.N:
        raise InputError(f"sample {sample} is out of range: the batch has {L.N} samples (0 to {L.N - 1})")
    cols = L.K if wrt in ("z", "b", "W") else L.n
    names = ("t", "i", "j") if wrt == "W" else ("T", "K")  # the messages Factored.entry and --entry gave
    sizes = (L.K, L.K, L.n) if wrt == "W" else (L.K, cols)
    for name, value, size in zip(names, index, sizes, strict=True):
        if not 0 <= value < size:
            raise InputError(f"{name} = {value} is out of range: 0 ≤ {name} ≤ {size - 1}")
    one = L._replace(X=L.X[sample : sample + 1], batched=False)
    t, k = index[0], index[1]
    if wrt == "x":
        if of == "z":
            return float(L.W[k, t])
        # dh/dx needs Σ_i p_i W[k, i]: the n sums the whole takes (the same products, so the same
        # digits), then only entry (t, k) of the closed form
        Px = _probabilities(one)
        Wt, s, top, mean, rest = _dx_parts(one, Px)
        p = Px[0]
        likeliest = t == top[0]  # there the closed form takes 1 − p_t, as the whole does
        centred = _one_minus(Px)[0, t] * Wt[t, k] - rest[0, k] if likeliest else Wt[t, k] - mean[0, k]
        value = p[t] * centred if L.function == "softmax" else centred
        T = L.temperature
        if s is None:
            return float(value / T if T != 1 else value)
        return float(_rescale_dx(L, np.asarray([value]), s, T)[0])
    P = _probabilities(one) if of == "h" else None
    if P is not None:
        _dh_dz_scale(one, P)
    A = _dfdz_rows(one, of, None if P is None else P[0], None if P is None else _one_minus(P)[0], t, t + 1)[0]
    if wrt != "W":
        return float(A[k])
    _guard_dW(one, of, P)
    return float(A[k] * one.X[0, index[2]])


class Factored(NamedTuple):
    """``dh/dW`` (or ``dz/dW``) without its K²n entries: ``J[t, i·n + j] = A[t, i] · x[j]``.

    ``A`` is ``dh/dz`` (the identity for ``dz/dW``), K×K or N×K×K; ``x`` is n or N×n. K² + n
    numbers stand for K²·n, so a Jacobian too large to hold can still be used, entry by entry.
    """

    A: Array
    x: Array
    shape: tuple[int, ...]
    formula: str = "J[t, i*n + j] = A[t, i] * x[j]"

    def entry(self, t: int, i: int, j: int, sample: int = 0) -> float:
        """``∂h_t/∂w[i,j]`` (of the given sample of a batch)."""
        A = self.A if self.A.ndim == 2 else self.A[sample]
        x = self.x if self.x.ndim == 1 else self.x[sample]
        K, n = A.shape[0], x.shape[0]
        for name, value, size in (("t", t, K), ("i", i, K), ("j", j, n)):
            if not 0 <= value < size:
                raise InputError(f"{name} = {value} is out of range: 0 ≤ {name} ≤ {size - 1}")
        return float(A[t, i] * x[j])

    def dense(self) -> Array:
        """All K²n entries, as :func:`jacobian` gives them."""
        A, X = (self.A, self.x) if self.A.ndim == 3 else (self.A[None], self.x[None])
        out = np.empty((A.shape[0], A.shape[1], A.shape[2] * X.shape[1]), dtype=A.dtype)
        _shortcut_dW(A, X, out)
        return out if self.A.ndim == 3 else out[0]


def jacobian_factors(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    of: str = "h",
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
) -> Factored:
    """The layer Jacobian with respect to W, as its factors: ``dh/dz`` and x.

    Examples
    --------
    >>> F = jacobian_factors([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0])
    >>> F.shape
    (2, 4)
    >>> bool(F.entry(0, 0, 1) == jacobian([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0])[0, 1])
    True
    """
    return layer_factors(
        make_layer(W, x, b, layout=layout, function=function, temperature=temperature), of=of
    )


def layer_factors(L: Layer, *, of: str = "h") -> Factored:
    """:func:`jacobian_factors` for a :class:`Layer`."""
    A = np.ascontiguousarray(_dfdz_or_identity(L, of))
    N, K, cols = jacobian_shape(L, of=of, wrt="W")
    return Factored(L.out(A), L.out(L.X), (N, K, cols) if L.batched else (K, cols))


def jacobian(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    of: str = "h",
    wrt: str = "W",
    method: str = "shortcut",
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
    out: Array | None = None,
) -> Array:
    """Jacobian of the layer's output ``of`` with respect to ``wrt``.

    Parameters
    ----------
    W, x, b, layout, function, temperature
        The layer, as in :func:`forward`.
    of : {"h", "z"}
        Differentiate the outputs h (default) or the logits z.
    wrt : {"W", "z", "x", "b"}
        With respect to the weights (default), the logits, the input or the bias.
    method : {"shortcut", "chain"}
        ``"chain"`` multiplies the factor matrices, ``dh/dz · dz/dwrt``, as the post does first;
        ``"shortcut"`` (default) evaluates the closed form of each entry. They agree to rounding.
    out : ndarray, optional
        Where to write the result (its shape, in the layer's dtype), instead of a new array.

    Returns
    -------
    ndarray
        Rows are the K outputs; columns are the entries of ``wrt``: K·n for W (weight ``w[i,j]`` at
        column ``i·n + j``), n for x, K for z and b. A batch gives N such matrices, N × K × ….

    Notes
    -----
    With ``p = softmax(z/T)`` and ``A = dh/dz``:

    * softmax: ``A[t, i] = p_t (δ_ti − p_i) / T``; log-softmax: ``A[t, i] = (δ_ti − p_i) / T``.
    * ``dh/db = A`` (``dz/db = I``); ``dh/dW[t, i·n + j] = A[t, i] x_j``, i.e. ``A ⊗ xᵀ``.
    * ``dh/dx = A · dz/dx`` with ``dz/dx[i, j] = w[i,j]``.
    * ``dz/dW = I ⊗ xᵀ``, ``dz/dz = dz/db = I``.

    Examples
    --------
    >>> J = jacobian([[1.0, 0.0]], [2.0])
    >>> J.shape
    (2, 2)
    >>> J.sum(axis=0)  # every column sums to zero
    array([0., 0.])
    """
    L = make_layer(W, x, b, layout=layout, function=function, temperature=temperature)
    if out is not None and not L.batched:
        out = out[None]
    return L.out(layer_jacobian(L, of=of, wrt=wrt, method=method, out=out))


class Gradient:
    """Gradients of a scalar loss through the layer.

    ``W`` has W's own shape and layout, ``b`` has K entries; both are summed (or averaged) over a
    batch. ``z`` (K or N×K) is per sample, and so is ``x`` (n or N×n), computed when first asked
    for (it takes a pass over W). ``loss`` is the cross-entropy when targets were given (summed or
    averaged likewise), else None. From :func:`grad_chunks`, ``z`` is None (not kept).
    """

    def __init__(self, W: Array, b: Array, z: Array | None, loss: float | None, layer: Layer) -> None:
        self.W, self.b, self.z, self.loss, self.layer = W, b, z, loss, layer

    def __repr__(self) -> str:
        return f"Gradient(W={self.W!r}, b={self.b!r}, z={self.z!r}, loss={self.loss!r})"

    @cached_property
    def x(self) -> Array:
        L = self.layer
        if self.z is None:
            raise InputError("dLoss/dx needs δ per sample, which grad_chunks does not keep; use grad")
        _finite_W(L)  # δ·Wᵀ reads W itself
        delta = self.z if L.batched else self.z[None]
        # δ·Wᵀ's partial sums can overflow where it does not: then scale δ and W by powers of two
        dmax, wmax = _max_abs(delta), _max_abs(L.W)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if dmax * wmax * L.K <= _fmax(L.W.dtype) / 4:
                gx = _product(delta, L.W.T)
            else:
                sd, sw = _pow2(dmax), _pow2(wmax)
                gx = _product(delta / sd, L.W.T / sw) * sd * sw
        if not all_finite(gx):
            raise InputError(f"dLoss/dx = δ·Wᵀ overflows {gx.dtype}; scale W or the upstream down")
        return L.out(gx)


def _targets(target: int | ArrayLike, L: Layer) -> NDArray[np.intp]:
    try:
        t = np.asarray(target)
    except OverflowError:
        t = np.asarray(target, dtype=object)
    if t.dtype.kind == "O":  # integers past int64: out of any range
        raise InputError(
            f"target class {np.ravel(t)[0]} is out of range: K = {L.K}, so 0 ≤ target ≤ {L.K - 1}"
        )
    if t.dtype == bool or t.dtype.kind not in "iuf" or (t.dtype.kind == "f" and not np.all(t == np.round(t))):
        shown = np.array2string(np.ravel(t)[:5], separator=",").replace("\n", "")
        raise InputError(
            f"targets must be whole class indices from 0, not {shown}{'…' if t.size > 5 else ''}"
        )
    if t.ndim > 1 and sum(d > 1 for d in t.shape) > 1:
        raise ShapeError(f"targets must be a list, one class per sample, not a table of shape {t.shape}")
    with np.errstate(invalid="ignore"):
        if t.dtype.kind == "f" and np.any(np.abs(t) >= 2**62):
            raise InputError(f"a target class is out of range: K = {L.K}, so 0 ≤ target ≤ {L.K - 1}")
    t = t.astype(np.intp).reshape(-1)
    if t.size == 1:
        t = np.repeat(t, L.N)
    if t.size != L.N:
        raise ShapeError(f"{t.size} targets for a batch of {L.N} samples; give one class per sample")
    bad = (t < 0) | (t >= L.K)
    if np.any(bad):
        k = int(t[np.argmax(bad)])
        raise InputError(f"target class {k} is out of range: K = {L.K}, so 0 ≤ target ≤ {L.K - 1}")
    return t


def grad(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: str = "sum",
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
) -> Gradient:
    """Gradient of a loss with respect to the weights, in closed form, O(N·K·n).

    Give exactly one of ``target`` (cross-entropy loss ``−log p_target``) or ``upstream``
    (``g = dLoss/dh`` from whatever comes after the layer).

    Parameters
    ----------
    W, x, b, layout, function, temperature
        The layer, as in :func:`forward`.
    target : int or array_like of int, optional
        The true class, counted from 0; one per sample for a batch (or one for all).
    upstream : array_like, optional
        ``dLoss/dh``: K entries, or N×K for a batch.
    reduce : {"sum", "mean"}
        How the batch's gradients and losses are combined.

    Returns
    -------
    Gradient
        ``Gradient.W`` is ``dLoss/dW`` in W's own shape and layout.

    Notes
    -----
    The update is ``gᵀ · dh/dW``, which never needs the K × K·n Jacobian: with
    ``δ = (dh/dz)ᵀ g`` it is ``x δᵀ`` (in-out). For the softmax ``δ = p ⊙ (g − pᵀg) / T``; the
    post's last sentence says to sum the columns of ``dh/dW``, i.e. ``g = 1``, but every column
    sums to 0, so that update is zero. For log-softmax ``δ = (g − p Σg) / T``. For cross-entropy,
    with either function, ``δ = (p − e_k) / T``.

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
    L = make_layer(W, x, b, layout=layout, function=function, temperature=temperature)
    return layer_grad(L, target=target, upstream=upstream, reduce=reduce)


def layer_grad(
    L: Layer,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: str = "sum",
) -> Gradient:
    """:func:`grad` for a :class:`Layer` (one :func:`make_layer` has already checked)."""
    _choice("reduce", reduce, REDUCTIONS)
    if (target is None) == (upstream is None):
        raise InputError("give exactly one of target (a class index) or upstream (dLoss/dh)")
    if target is not None:
        fast = _grad_target(L, _targets(target, L), reduce)
        if fast is not None:
            return fast
    return _grad_careful(L, target, upstream, reduce)


def _grad_target(L: Layer, t: NDArray[np.intp], reduce: str) -> Gradient | None:
    """The cross-entropy gradient at memory speed: one sweep for δ and the loss
    (:func:`_softmax_rows`), then ``x δᵀ`` written once (one sample) or ``Xᵀδ`` split over its
    rows. None when a number on the way is not finite: :func:`_grad_careful` then decides."""
    rows = _softmax_rows(L, keep_z=False, t=t)
    if rows is None or rows.losses is None or rows.sums is None:
        return None
    delta = rows.P
    scale = 1.0 / L.N if reduce == "mean" else 1.0
    with np.errstate(over="ignore", under="ignore"):
        loss = float(np.sum(rows.losses * scale))
        grad_b = rows.sums.sum(axis=0) * scale
        if L.N == 1:  # x δᵀ (or δ xᵀ out-in), written once, in place, by rows on the pool
            a, c = (L.X[0], delta[0]) if L.layout == "in-out" else (delta[0], L.X[0])
            if not math.isfinite(_max_abs(a) * _max_abs(c)):  # its largest entry, checked first
                return None
            grad_W = np.empty((a.size, c.size), dtype=delta.dtype)
            _outer_fill(a[None, :, None], c[None, :], grad_W[None])
        else:
            # scaled after the sum, not X before it: no N×n temporary
            grad_W = _product(L.X.T, delta) if L.layout == "in-out" else _product(delta.T, L.X)
            if scale != 1:
                grad_W *= scale
            if not all_finite(grad_W):
                return None
    if not (math.isfinite(loss) and all_finite(grad_b)):
        return None
    return Gradient(W=grad_W, b=grad_b, z=L.out(delta), loss=loss, layer=L)


def _grad_careful(
    L: Layer, target: int | ArrayLike | None, upstream: ArrayLike | None, reduce: str
) -> Gradient:
    """The gradient with every guard: rescales what can be rescaled, refuses the rest with its cause."""
    Z = _logits(L)
    P = _probabilities(L, Z)  # not _forward: log h may be −inf where the gradient is finite
    T = L.temperature
    losses: Array | None = None
    if target is not None:
        t = _targets(target, L)
        rows = np.arange(L.N)
        delta = P.copy()  # p − e_k, with 1 − p_k taken without cancelling
        delta[rows, t] = -_one_minus(P)[rows, t]
        with np.errstate(under="ignore"):
            losses = -log_softmax(_shifted(L, Z))[rows, t]  # not Z / T, which overflows for a tiny T
    else:
        g = _as_float(upstream)  # type: ignore[arg-type]
        if g.ndim == 2 and not L.batched and 1 in g.shape:
            g = g.reshape(-1)
        if g.shape not in ((L.K,), (L.N, L.K)):
            want = f"{L.K} entries" + (f" or {L.N}×{L.K}" if L.batched else "")
            raise ShapeError(
                f"upstream has shape {g.shape} but the layer has K = {L.K} outputs; it needs {want}"
            )
        g = np.broadcast_to(g, (L.N, L.K))
        if not np.all(np.isfinite(g)):
            raise InputError("upstream holds a NaN or infinite value")
        # g − pᵀg (or Σg) can overflow for a g near the float's limit where δ does not: take δ of
        # g scaled by a power of two (exact) and scale back below.
        g_scale = _pow2(_max_abs(g)) if _max_abs(g) > _fmax(g.dtype) / (4 * L.K) else 1.0
        g = g / g_scale if g_scale != 1 else g
        if L.function == "softmax":
            # dh/dz annihilates constants, so shift g by one of its own entries first: a constant
            # g then gives an exact zero instead of the rounding error of 1 − Σp.
            g = g - np.max(g, axis=1, keepdims=True)
            delta = P * (g - np.sum(P * g, axis=1, keepdims=True))
        else:
            delta = g - P * np.sum(g, axis=1, keepdims=True)
        T = T / g_scale  # δ·g_scale/T in one division (a tiny T alone could overflow it first)
    with np.errstate(over="ignore", under="ignore"):
        delta = delta / T if T != 1 else delta
    if not all_finite(delta):  # δ is the small factor every gradient is built from: check it here
        raise InputError(
            f"the gradient overflows {delta.dtype}: δ = dLoss/dz reaches past {_fmax(delta.dtype):.3g} with "
            f"--temperature {L.temperature:.3g}"
            + ("" if upstream is None else " and this upstream")
            + "; raise the temperature"
            + ("" if upstream is None else " or scale upstream down")
        )
    scale = 1.0 / L.N if reduce == "mean" else 1.0
    with np.errstate(over="ignore", under="ignore"):
        loss = None if losses is None else float(np.sum(losses * scale))
        X = L.X * scale if scale != 1 else L.X  # scale the small factor, not the n×K product
        if L.N == 1:  # x δᵀ (or δ xᵀ out-in), written in place by rows: memory speed, O(K·n)
            rows, cols = (X[0], delta[0]) if L.layout == "in-out" else (delta[0], X[0])
            if not math.isfinite(_max_abs(rows) * _max_abs(cols)):  # the largest entry, checked first
                _refuse_gradient("dLoss/dW = x δᵀ", delta.dtype, reduce, L.N)
            grad_W = np.empty((rows.size, cols.size), dtype=delta.dtype)
            _outer_fill(rows[None, :, None], cols[None, :], grad_W[None])
        else:
            grad_W = _product(X.T, delta) if L.layout == "in-out" else _product(delta.T, X)
            if not all_finite(grad_W):  # a sum over the batch: checked where it is taken
                _refuse_gradient("dLoss/dW, summed over the batch,", delta.dtype, reduce, L.N)
        grad_b = delta.sum(axis=0) * scale
    if not all_finite(grad_b):
        _refuse_gradient("dLoss/db, summed over the batch,", delta.dtype, reduce, L.N)
    if loss is not None and not math.isfinite(loss):
        _refuse_gradient("the cross-entropy loss", delta.dtype, reduce, L.N)
    return Gradient(W=grad_W, b=grad_b, z=L.out(delta), loss=loss, layer=L)


def _refuse_gradient(what: str, dtype: np.dtype, reduce: str, N: int) -> None:
    way = " (use reduce='mean', --reduce mean)" if reduce == "sum" and N > 1 else ""
    raise InputError(
        f"{what} overflows {dtype} (past {_fmax(dtype):.3g}){way}; scale W, x or the upstream down"
    )


# ---------------------------------------------------------------- batches larger than memory

CHUNK_BYTES = 64 * 2**20  # rows of x read at a time by forward_chunks and grad_chunks


def _chunks(x: Array, chunk_bytes: int) -> list[tuple[int, int]]:
    if x.ndim != 2:
        raise ShapeError(f"x must be a batch (N×n) to be read in chunks, but has shape {x.shape}")
    return _spans(x.shape[0], chunk_bytes // max(1, x.shape[1] * x.itemsize))


def _release(x: Array, r0: int, r1: int) -> None:
    """Hand back the pages of rows r0:r1 of a memory-mapped x once they are done with.

    Pages of a mapped file that have been read count in the process's resident memory until the
    kernel needs them; dropping them as the walk goes keeps it flat. They are read again from the
    file if touched again, so nothing is lost. Anything but an np.memmap is left alone.
    """
    import mmap

    mm = getattr(x, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    row = x.shape[1] * x.itemsize
    base = getattr(x, "offset", 0) % mmap.ALLOCATIONGRANULARITY  # where the array starts inside the mapping
    start = (base + r0 * row) // mmap.PAGESIZE * mmap.PAGESIZE
    end = (base + r1 * row) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > start:
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)


def forward_chunks(
    W: ArrayLike,
    x: Array,
    b: ArrayLike | None = None,
    *,
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[tuple[int, Forward]]:
    """:func:`forward` of a batch too large to hold, a chunk of rows at a time: memory stays flat.

    ``x`` is N×n, typically a read-only ``np.memmap`` (see ``smjac.files.map_npy``). Yields
    ``(first row, Forward of those rows)``; each chunk is checked (finite, shapes) as it is read,
    and its pages handed back once done. Each chunk's numbers are those :func:`forward` gives for
    the same rows.

    Examples
    --------
    >>> X = np.ones((5, 2))
    >>> [(r, f.h.shape) for r, f in forward_chunks(np.eye(2), X, chunk_bytes=48)]
    [(0, (3, 2)), (3, (2, 2))]
    """
    for r0, r1 in _chunks(x, chunk_bytes):
        L = make_layer(W, np.asarray(x[r0:r1]), b, layout=layout, function=function, temperature=temperature)
        L = L._replace(batched=True)  # a last chunk of one row is still rows of a batch
        Z, H, P = _forward(L)
        _release(x, r0, r1)
        yield r0, Forward(z=Z, h=H, p=P)


def grad_chunks(
    W: ArrayLike,
    x: Array,
    b: ArrayLike | None = None,
    *,
    target: int | ArrayLike | None = None,
    upstream: ArrayLike | None = None,
    reduce: str = "sum",
    layout: str = "in-out",
    function: str = "softmax",
    temperature: float = 1.0,
    chunk_bytes: int = CHUNK_BYTES,
) -> Gradient:
    """:func:`grad` of a batch too large to hold, a chunk of rows at a time: memory stays flat.

    ``x`` is N×n, typically a read-only ``np.memmap``; ``target`` is one class or N of them,
    ``upstream`` K entries or an N×K array (which may be memory-mapped too). The sums over the
    batch are taken chunk by chunk, in order, so they agree with :func:`grad` to rounding and
    have the same bits on every run. δ per sample (``Gradient.z``) is not kept.

    Examples
    --------
    >>> W, X = np.array([[0.1, 0.2], [0.3, 0.4]]), np.ones((5, 2))
    >>> g = grad_chunks(W, X, target=0, chunk_bytes=32)
    >>> bool(np.allclose(g.W, grad(W, X, target=0).W))
    True
    """
    _choice("reduce", reduce, REDUCTIONS)
    spans = _chunks(x, chunk_bytes)
    N = x.shape[0]
    t = None if target is None else np.asarray(target)
    if t is not None and t.size == 1:
        t = t.reshape(())  # one class for every sample
    elif t is not None and t.reshape(-1).size != N:
        raise ShapeError(f"{t.size} targets for a batch of {N} samples; give one class per sample")
    elif t is not None:
        t = t.reshape(-1)
    g = None if upstream is None else np.asarray(upstream)
    grad_W: Array | None = None
    grad_b: Array | None = None
    loss: float | None = None if target is None else 0.0
    L = None
    with np.errstate(over="ignore"):
        for r0, r1 in spans:
            L = make_layer(
                W, np.asarray(x[r0:r1]), b, layout=layout, function=function, temperature=temperature
            )
            L = L._replace(batched=True)
            part = layer_grad(
                L,
                target=None if t is None else (t if t.ndim == 0 else t[r0:r1]),
                upstream=None if g is None else (g if g.ndim == 1 else np.asarray(g[r0:r1])),
            )
            _release(x, r0, r1)
            grad_W = part.W if grad_W is None else grad_W + part.W
            grad_b = part.b if grad_b is None else grad_b + part.b
            if loss is not None and part.loss is not None:
                loss += part.loss
        assert L is not None and grad_W is not None and grad_b is not None  # N ≥ 1: one chunk at least
        if reduce == "mean":
            grad_W, grad_b = grad_W / N, grad_b / N
            loss = None if loss is None else loss / N
    if not (all_finite(grad_W) and all_finite(grad_b) and (loss is None or math.isfinite(loss))):
        _refuse_gradient("dLoss/dW, summed over the batch,", grad_W.dtype, reduce, N)
    return Gradient(W=grad_W, b=grad_b, z=None, loss=loss, layer=L)


def column_legend(wrt: str, K: int, n: int, layout: str = "in-out") -> list[tuple[int, str, str]]:
    """(column, what it is, where it is stored) for each column of a Jacobian with respect to ``wrt``.

    The convention of the whole package: weight ``w[i,j]`` (input j to output i) is column
    ``i·n + j``, stored at ``W[j, i]`` in the in-out layout and ``W[i, j]`` in the out-in one.

    Examples
    --------
    >>> column_legend("W", 2, 2, "in-out")[1]
    (1, 'w[0,1]: input 1 → output 0', 'W[1,0]')
    >>> column_legend("x", 2, 3)[2]
    (2, 'x₂', 'x[2]')
    """
    _choice("wrt", wrt, WRTS)
    _choice("layout", layout, LAYOUTS)
    if wrt == "W":
        at = "W[{j},{i}]" if layout == "in-out" else "W[{i},{j}]"
        return [
            (i * n + j, f"w[{i},{j}]: input {j} → output {i}", at.format(i=i, j=j))
            for i in range(K)
            for j in range(n)
        ]
    sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
    return [(k, f"{wrt}{str(k).translate(sub)}", f"{wrt}[{k}]") for k in range(n if wrt == "x" else K)]


def constant_upstream(upstream: ArrayLike) -> bool:
    """Whether ``dLoss/dh`` is the same for every output (of each sample): then the softmax's
    gradient is exactly zero, as the post's "sum the columns" update is.

    Examples
    --------
    >>> constant_upstream([1.0, 1.0, 1.0]), constant_upstream([[2.0, 2.0], [1.0, 0.0]])
    (True, False)
    """
    g = np.asarray(upstream)
    rows = g.reshape(-1, g.shape[-1]) if g.ndim else g.reshape(1, 1)
    return bool(np.all(rows == rows[:, :1]))
