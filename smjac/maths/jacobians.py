"""Jacobians of a softmax layer: dense, streamed in row blocks, or one entry (the factors:
:mod:`.factors`).

A Jacobian has one row per output and one column per input; the weight ``w[i,j]`` joining input
j to output i sits at column ``i·n + j`` of ``dh/dW`` and ``dz/dW`` in both layouts. A batch gives
one Jacobian per sample, stacked (N × K × …), never the block-diagonal N·K × N·K matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError, ShapeError, size_in_bytes
from . import small
from ._parallel import (
    BLOCK_BYTES,
    Progress,
    bufsize_for_rows,
    matmul_spans,
    matmul_stack,
    row_blocks,
    run_blocks,
)
from .forward_pass import check_finite_W, layer_probabilities
from .functions import complement, log_softmax_jacobian, softmax_jacobian
from .layer import BINARY_JACOBIAN, METHODS, OFS, Layer, LayerOptions, Method, Of, layer_options, make_layer
from .numeric import Array, all_finite, at_least, check_choice, largest_float, peak_abs, pow2
from .targets import TARGETS, Wrt, wrt_target

if TYPE_CHECKING:
    from .layer import Unpack


def dh_dz(L: Layer, P: Array, *, checked: bool = False) -> Array:
    """Per-sample Jacobian of h with respect to z (N×K×K), temperature included.

    ``checked``: the caller has already refused a dh/dz past the float range (:func:`_guard_dW` does).
    """
    if not checked:
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
    one_minus = complement(P)
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
        worst, fmax = float(np.max(top)), largest_float(P.dtype)
        raise InputError(
            f"temperature={T:.3g} overflows dh/dz: its largest entry is {worst:.3g}/T, past "
            f"{P.dtype}'s {fmax:.3g}; use T ≥ {at_least(worst / fmax)}"
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


def _shortcut_dW(A: Array, X: Array, out: Array, progress: Progress | None = None) -> Array:
    """``out[s, t, i·n + j] = A[s, t, i] x[s, j]``: the post's closed form, ``A ⊗ xᵀ``, in place."""
    return outer_fill(A, X, out, progress)


def outer_fill(A: Array, X: Array, out: Array, progress: Progress | None = None) -> Array:
    """``out[s, r, c·m + j] = A[s, r, c] X[s, j]`` for A of shape N×R×C and X of N×m.

    The output is written in row blocks straight into ``out`` (no temporary of its size), by a
    few threads at once: numpy lets go of the GIL inside the multiplication, and memory bandwidth,
    not arithmetic, is what limits it. With C = 1 it is an outer product, as the gradient uses it.
    """
    (N, R, C), m = A.shape, X.shape[1]
    out4 = out.reshape(N, R, C, m)
    tasks = [(s, r0, r1) for s in range(N) for r0, r1 in row_blocks(R, C * m * out.itemsize)]
    bufsize = bufsize_for_rows(m)

    def fill(task: tuple[int, int, int]) -> int:
        s, r0, r1 = task
        previous = np.setbufsize(bufsize)  # per thread; restored, so the caller's setting stands
        try:
            np.multiply(A[s, r0:r1, :, None], X[s, None, None, :], out=out4[s, r0:r1])
        finally:
            np.setbufsize(previous)
        return (r1 - r0) * C * m * out.itemsize

    run_blocks(fill, tasks, progress)
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
    run_blocks(product, tasks, progress, threads=R * n * out.itemsize >= 2**20)
    return out


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse an ``out=`` that cannot take the result as it is: not an array, another shape or
    dtype, or read-only (numpy's own errors would not say what it needs)."""
    if not isinstance(out, np.ndarray):
        given = f"a {type(out).__name__}"
    elif out.shape != shape or out.dtype != dtype:
        given = f"shape {out.shape} and dtype {out.dtype}"
    elif not out.flags.writeable:
        given = "a read-only array"
    else:
        return
    raise ShapeError(f"out must be a writable array of shape {shape} and dtype {dtype}, not {given}")


def jacobian_shape(L: Layer, *, of: str = "h", wrt: str = "W") -> tuple[int, int, int]:
    """The per-sample Jacobian's shape, N × K × columns, without computing it.

    Every Jacobian asks it first, so a binary layer's Jacobian of h is refused here (its meaning
    is ambiguous: see :data:`~smjac.maths.layer.BINARY_JACOBIAN`).
    """
    check_choice("of", of, OFS)
    target = wrt_target(wrt)
    if of == "h" and L.binary:
        raise InputError(BINARY_JACOBIAN)
    return (L.N, L.K, target.columns(L.K, L.n))


def dfdz_or_identity(L: Layer, of: str, P: Array | None = None, *, checked: bool = False) -> Array:
    if of == "z":
        return np.broadcast_to(np.eye(L.K, dtype=L.W.dtype), (L.N, L.K, L.K))
    return dh_dz(L, layer_probabilities(L) if P is None else P, checked=checked)


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
    check_choice("method", method, METHODS)
    shape = jacobian_shape(L, of=of, wrt=wrt)
    if out is None:
        out = np.empty(shape, dtype=L.W.dtype)
    else:
        check_out(out, shape, L.W.dtype)
    P = _probabilities(L) if of == "h" else None
    factor = TARGETS[wrt].factor  # dz/dwrt: how the chain rule's second factor is applied
    if factor == "kron":
        _guard_dW(L, of, P)  # refuses dh/dz, then dh/dW, past the float range: dh/dz need not again
        fill = _chain_dW if method == "chain" else _shortcut_dW
        return fill(dfdz_or_identity(L, of, P, checked=True), L.X, out, progress)
    assert factor in ("identity", "weights"), factor  # a factor of a new kind is computed above
    if factor == "identity":
        out[...] = dfdz_or_identity(L, of, P)
    elif of == "z":  # dz/dx = Wᵀ
        check_finite_W(L)  # dh/dx reads W itself
        out[...] = L.W.T
    else:
        assert P is not None  # of == "h"
        if method == "chain":
            A = dh_dz(L, P)  # refused before W is read
            check_finite_W(L)  # dh/dx reads W itself
            _chain_dx(L, A, P, out)
        else:
            _dh_dz_scale(L, P)  # dh/dz's refusal without its N×K×K entries: the closed form needs p alone
            check_finite_W(L)
            out[...] = _shortcut_dx(L, P)
    if progress:
        progress(out.nbytes)
    return out


def _probabilities(L: Layer) -> Array:
    """:func:`layer_probabilities`, by :mod:`.small`'s short path for one sample of a small layer."""
    done = small.forward(L, log_h=False) if small.fits(L) else None
    return layer_probabilities(L) if done is None else done[2]


def _dx_scale(L: Layer, bound: float) -> float | None:
    """None when dh/dx's partial results cannot overflow (``bound``·max|W| well inside the float
    range), else a power of two to divide W by first, so that they cannot."""
    wmax = max(float(np.max(L.W)), -float(np.min(L.W)))  # max|W| without a copy of W (finite)
    return pow2(wmax) if bound * wmax > largest_float(L.W.dtype) / 4 else None


def _rescale_dx(L: Layer, J: Array, factor: float, T: float = 1.0) -> Array:
    """``J · factor / T``, refusing a dh/dx past the float range."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        both = factor / T
        J = J * both if math.isfinite(both) else J / T * factor
    if not all_finite(J):
        raise InputError(
            f"dh/dx overflows {J.dtype}: W's entries reach {peak_abs(L.W):.3g} with temperature="
            f"{L.temperature:.3g}; scale W down or raise the temperature"
        )
    return J


def _chain_dx(L: Layer, A: Array, P: Array | None, out: Array) -> None:
    """``dh/dx = dh/dz · Wᵀ``; with W scaled first when a partial sum could overflow."""
    scale = float(np.max(_dh_dz_scale(L, P))) if P is not None and len(P) else 1.0  # no sample: 1
    s = _dx_scale(L, scale * L.K)
    if s is None:
        matmul_stack(A, L.W.T, out=out)
    else:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            out[...] = _rescale_dx(L, matmul_stack(A, L.W.T / s), s)


DxParts = tuple[Array, "float | None", Any, Array, Array]


def _dx_parts(L: Layer, P: Array) -> DxParts:
    """What every sample's dh/dx is made from: Wᵀ (scaled if need be), the scale, each sample's
    likeliest output, ``Σ_i p_i W[j,i]`` and the same sum without the likeliest (N×n each)."""
    s = _dx_scale(L, 2 / min(L.temperature, 1.0))
    Wt = L.W.T if s is None else L.W.T / s
    rows, top = np.arange(P.shape[0]), np.argmax(P, axis=1)
    others = P.copy()
    others[rows, top] = 0
    return Wt, s, top, matmul_spans(P, Wt), matmul_spans(others, Wt)


def _sample_parts(parts: DxParts, s: int) -> DxParts:
    Wt, scale, top, mean, rest = parts
    return Wt, scale, top[s : s + 1], mean[s : s + 1], rest[s : s + 1]


def _shortcut_dx(
    L: Layer, P: Array, parts: DxParts | None = None, r0: int = 0, r1: int | None = None
) -> Array:
    """``dh/dx[t, j]`` in closed form: ``p_t (W[j,t] − Σ_i p_i W[j,i]) / T`` (no p_t for log-softmax).

    ``W[j,t] − Σ p_i W[j,i]`` can reach twice max|W| and overflow where dh/dx does not (the p_t
    in front is small), so for a W near the float's limit it is taken on W scaled by a power of two.
    ``parts`` (from :func:`_dx_parts` on the whole batch, cut to P's samples) lets one sample be
    taken with the digits it has in the whole batch; ``r0:r1`` are the outputs t made (all of
    them by default), each row the same floats as in the whole.
    """
    T = L.temperature
    r1 = L.K if r1 is None else r1
    Wt, s, top, mean, rest = _dx_parts(L, P) if parts is None else parts
    centred = Wt[None, r0:r1, :] - mean[:, None, :]
    # For the likeliest output the two terms agree to 1 − p_t and cancel; there take
    # (1 − p_t) W[j,t] − Σ_{i≠t} p_i W[j,i], whose parts do not.
    rows = np.flatnonzero((top >= r0) & (top < r1))
    t = top[rows]
    centred[rows, t - r0, :] = complement(P)[rows, t][:, None] * Wt[t, :] - rest[rows]
    J = P[:, r0:r1, None] * centred if L.function == "softmax" else centred
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

    The same floats as the rows of :func:`dh_dz`, in O((r1 − r0)·K) memory, so a K×K factor is
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
    of: Of = "h",
    wrt: Wrt = "W",
    method: Method = "shortcut",
    block_bytes: int = BLOCK_BYTES,
) -> Blocks:
    """The per-sample Jacobian of ``L`` in row blocks of about ``block_bytes``: memory stays flat.

    Rows of dh/dz are made block by block from p, so no K×K factor is held whatever K is, and a
    batch goes sample by sample. Every refusal (a result past the float range) happens here,
    before the first block is drawn.
    """
    check_choice("method", method, METHODS)
    block_bytes = size_in_bytes("block_bytes", block_bytes)
    N, K, cols = jacobian_shape(L, of=of, wrt=wrt)
    shape = (N, K, cols) if L.batched else (K, cols)
    factor = TARGETS[wrt].factor
    P = layer_probabilities(L) if of == "h" else None
    if of == "h":
        assert P is not None
        _dh_dz_scale(L, P)  # refuse before any block
        if factor == "kron":
            _guard_dW(L, of, P)
    one_minus = None if P is None else complement(P)
    itemsize = L.W.dtype.itemsize
    # the rows of dh/dz a block is made from take K/cols = 1/n of the block's memory on top
    spans = row_blocks(K, cols * itemsize, block_bytes)

    if factor == "weights":
        check_finite_W(L)  # dh/dx reads W itself

    assert factor in ("identity", "weights", "kron"), factor

    def rows() -> Iterator[Array]:
        if factor == "weights":  # row blocks of each sample's K×n, as dh/dW's: a K×n sample was held whole
            parts = _dx_parts(L, P) if P is not None and method == "shortcut" else None
            for s in range(N):
                Ps = None if P is None else P[s : s + 1]  # the batch's p: the same digits as the whole
                for r0, r1 in spans:
                    if Ps is None:
                        yield L.W[:, r0:r1].T.copy()
                    elif method == "chain":
                        A = _dfdz_rows(L, of, Ps[0], complement(Ps)[0], r0, r1)
                        out = np.empty((1, r1 - r0, cols), dtype=L.W.dtype)
                        _chain_dx(L, A[None], Ps, out)
                        yield out[0]
                    else:
                        yield _shortcut_dx(L, Ps, parts and _sample_parts(parts, s), r0, r1)[0]
            return
        buffer = (
            np.empty((max(r1 - r0 for r0, r1 in spans), cols), dtype=L.W.dtype) if factor == "kron" else None
        )
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


ENTRY_FORMS = {name: target.entry_form for name, target in TARGETS.items()}


def entry_form(wrt: str) -> str:
    """How ``--entry`` is written for ``wrt``: ``T,I,J`` for W, ``T,K`` otherwise."""
    return wrt_target(wrt).entry_form


def layer_entry(
    L: Layer,
    index: Sequence[int],
    *,
    of: str = "h",
    wrt: str = "W",
    method: str = "shortcut",
    sample: int = 0,
) -> float:
    """One entry of the Jacobian, ``∂of_T/∂wrt[…]``, in O(K + n) memory and one pass over W.

    ``index`` is ``(T, I, J)`` for ``wrt="W"`` (output T, weight ``w[I,J]``: column ``I·n + J``)
    and ``(T, K)`` otherwise. The value is the very float :func:`layer_jacobian` has there. For a
    batch that takes the whole batch's forward pass (O(N·K) memory; O(N·n) more for ``wrt="x"``):
    a sample's products are made beside the other samples of its span, and their last bits are
    not those of the sample's product made alone.

    ``method`` is :func:`layer_jacobian`'s: both give the same floats but for dh/dx, whose chain
    rule sums ``dh/dz · Wᵀ`` over a whole product; that one is not made entry by entry.

    Raises
    ------
    InputError
        For the wrong number of indices, or one out of range (the message gives the range); for
        dh/dx by the chain rule.

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
    check_choice("of", of, OFS)
    check_choice("method", method, METHODS)
    target = wrt_target(wrt)
    if method == "chain" and target.factor == "weights" and of == "h":
        raise InputError(
            f'd{of}/d{wrt} by method="chain" is made whole (dh/dz · Wᵀ), not entry by entry: leave out '
            'method="chain" for the closed form\'s entry (the same to rounding), or take the whole Jacobian'
        )
    index = tuple(int(v) for v in index)
    if len(index) != len(target.index_names):
        raise InputError(f'wrt="{wrt}" takes {target.entry_form}, not {len(index)} indices')
    if not 0 <= sample < L.N:
        raise InputError(f"sample {sample} is out of range: the batch has {L.N} samples (0 to {L.N - 1})")
    sizes = target.entry_sizes(L.K, L.n)
    for name, value, size in zip(target.index_names, index, sizes, strict=True):
        if not 0 <= value < size:
            raise InputError(f"{name} = {value} is out of range: 0 ≤ {name} ≤ {size - 1}")
    one = L._replace(X=L.X[sample : sample + 1], batched=False)
    # a batch's p (and dh/dx's sums) as the whole batch makes them, then the sample's row of them
    every = layer_probabilities(L) if L.batched and of == "h" else None

    def probabilities() -> Array:
        return layer_probabilities(one) if every is None else every[sample : sample + 1]

    t, k = index[0], index[1]
    assert target.factor in ("identity", "weights", "kron"), target.factor
    if target.factor == "weights":
        if of == "z":
            return float(L.W[k, t])
        # dh/dx needs Σ_i p_i W[k, i]: the n sums the whole takes (the same products, so the same
        # digits), then only entry (t, k) of the closed form
        Px = probabilities()
        parts = _dx_parts(one, Px) if every is None else _sample_parts(_dx_parts(L, every), sample)
        Wt, s, top, mean, rest = parts
        p = Px[0]
        likeliest = t == top[0]  # there the closed form takes 1 − p_t, as the whole does
        centred = complement(Px)[0, t] * Wt[t, k] - rest[0, k] if likeliest else Wt[t, k] - mean[0, k]
        value = p[t] * centred if L.function == "softmax" else centred
        T = L.temperature
        if s is None:
            return float(value / T if T != 1 else value)
        return float(_rescale_dx(L, np.asarray([value]), s, T)[0])
    P = probabilities() if of == "h" else None
    if P is not None:
        _dh_dz_scale(one, P)
    A = _dfdz_rows(one, of, None if P is None else P[0], None if P is None else complement(P)[0], t, t + 1)[0]
    if target.factor == "identity":
        return float(A[k])
    _guard_dW(one, of, P)
    value = A[k] * one.X[0, index[2]]
    # the chain rule's product A[:, i] · xᵀ sums its one term onto 0: a −0 (0 · a negative x_j) is +0 there
    return float(value + 0.0 if method == "chain" else value)


def jacobian(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    of: Of = "h",
    wrt: Wrt = "W",
    method: Method = "shortcut",
    out: Array | None = None,
    **layer: Unpack[LayerOptions],
) -> Array:
    """Jacobian of the layer's output ``of`` with respect to ``wrt``.

    Parameters
    ----------
    W, x, b, **layer
        The layer and its choices (``layout``, ``function``, ``temperature``), as in
        :func:`~smjac.maths.layer.make_layer`.
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
    L = make_layer(W, x, b, **layer_options("jacobian", layer))
    if out is not None and not L.batched:  # checked as the user gave it, one sample's K × columns
        check_out(out, jacobian_shape(L, of=of, wrt=wrt)[1:], L.W.dtype)
        out = out[None]
    return L.out(layer_jacobian(L, of=of, wrt=wrt, method=method, out=out))
