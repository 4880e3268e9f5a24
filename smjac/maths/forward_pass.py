"""The forward pass: logits ``z`` and ``h = softmax(z / T)`` (or its log), for one sample, a batch,
or a batch too large for memory read in chunks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError, ShapeError, size_in_bytes
from . import small
from ._parallel import (
    ONE_BLAS_THREAD_FROM,
    PASS_BYTES,
    bufsize_for_rows,
    even_spans,
    in_spans,
    matmul_spans,
    sweep_spans,
)
from .functions import log_softmax, softmax
from .layer import Layer, LayerOptions, class_logits, layer_options, make_layer
from .numeric import Array, all_finite, as_float, at_least, largest_float, peak_abs, pow2, refuse_masked

if TYPE_CHECKING:
    from .layer import Unpack

_max, _min, _sum = np.maximum.reduce, np.minimum.reduce, np.add.reduce


def layer_logits(L: Layer) -> Array:
    """``Z = X W + b`` (N×K), refusing logits that overflow rather than returning NaN.

    The product is split into fixed spans of rows (columns of W for one sample), each in one BLAS
    thread on smjac's pool (:func:`in_spans`): all cores, and the same digits whatever their
    number. One thread per core and no BLAS threads of its own also means no OpenBLAS worker left
    spinning after the call to take a core from what follows (the Jacobian's fill).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        Z: Array = matmul_spans(L.X, L.W)
        if L.b is not None:
            Z += L.b
    if not all_finite(Z):
        Z = _logits_rescaled(L)
    return Z


def check_finite_W(L: Layer) -> None:
    """Refuse a W with a NaN or infinity, for what reads W again after z (make_layer does not scan
    it; see there)."""
    if not all_finite(L.W):
        raise InputError("W holds a NaN or infinite value")


def _logits_rescaled(L: Layer) -> Array:
    """The logits again, with W and x scaled by powers of two (exact), for when a partial sum
    overflowed although z itself may not; refuses only a z that is truly past the float range."""
    check_finite_W(L)  # make_layer leaves W to here: a NaN in W is the likeliest cause
    sw, sx = pow2(peak_abs(L.W)), pow2(peak_abs(L.X))
    fmax = largest_float(L.W.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        Z = matmul_spans(L.X / sx, L.W / sw)  # every term ≤ 4 in size: no partial sum can overflow
        big = peak_abs(Z) * sx * sw  # in Python floats: the size z really reaches
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


def shifted_logits(L: Layer, Z: Array) -> Array:
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
        fmax, T = largest_float(Z.dtype), L.temperature
        spread = float(np.max(Z / fmax) - np.min(Z / fmax))  # (max z − min z) / fmax, without overflow
        span = f"{spread * fmax:.3g}" if spread <= 1 else f"more than {fmax:.3g}"
        raise InputError(
            f"temperature={T:.3g} overflows log-softmax: z spans {span}, so (min z − max z)/T is past "
            f'−{fmax:.3g} and log h would be −inf; use T ≥ {at_least(spread)} (or function="softmax")'
        )
    return H


class Forward(NamedTuple):
    """The forward pass: logits ``z``, outputs ``h`` and probabilities ``p = softmax(z / T)``.

    For the softmax ``h`` and ``p`` are the same; for log-softmax ``h = log p``. Each has K
    entries, or N×K for a batch. A binary layer (one output) has two classes: ``z`` holds their
    logits ``[0, Wᵀx + b]`` and ``p = [1 − σ(z₁/T), σ(z₁/T)]``, scikit-learn's ``predict_proba``.
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


def softmax_rows(
    L: Layer,
    *,
    keep_z: bool = True,
    log_h: bool = False,
    t: NDArray[np.intp] | None = None,
    spans: list[tuple[int, int]] | None = None,
) -> _Rows | None:
    """The forward pass in one sweep over fixed spans of rows, each finished while in cache.

    Per span: ``z = xW + b`` (its own product, in one BLAS thread, when the batch has several
    spans), then, a block of rows at a time (:data:`PASS_BYTES` of z, so that z and p stay in the
    core's L2 cache through every pass), ``p = softmax((z − max z)/T)`` in place, and log h
    (``log_h``) or, for targets ``t``, the cross-entropy's ``δ = (p − e_t)/T`` in place of p and
    its loss ``log Σexp − s_t`` from the same sum; last, δ's column sums over the span. No
    temporary the size of the batch: the results are the only N×K arrays. The operations, and so
    the bits, are those of :func:`forward_arrays` and the careful gradient: all but the column sums
    work row by row, so neither the spans nor the blocks move a bit.

    ``spans`` (rows of L.X) are given for a chunk of a larger batch: the spans the whole batch's
    pass makes there (:func:`span_chunks`), each its own product, so that the chunk's bits are the
    whole pass's.

    Returns None when a span meets a non-finite number; the caller then takes the careful path,
    which rescales where it can and otherwise says why it refuses.
    """
    (N, n), K, dtype, T = L.X.shape, L.K, L.W.dtype, L.temperature
    P = np.empty((N, K), dtype)
    Z = np.empty((N, K), dtype) if keep_z else P  # without z, each span's z becomes its p in place
    H = np.empty((N, K), dtype) if log_h else None
    chunk = spans is not None  # a chunk's spans are each its own product, however few
    if spans is None:
        spans = sweep_spans(N, n, K, P.itemsize)
    fused = chunk or len(spans) > 1
    step = max(1, PASS_BYTES // (K * P.itemsize))  # rows a block of the passes takes at once
    bufsize = bufsize_for_rows(K)
    losses = np.empty(N, dtype) if t is not None else None
    sums = np.empty((len(spans), K), dtype) if t is not None else None
    if not fused:  # one span: the product alone can use every core (columns of W for one sample)
        with np.errstate(over="ignore", invalid="ignore"):
            matmul_spans(L.X, L.W, out=Z)

    def block(r0: int, r1: int) -> bool:
        z, p = Z[r0:r1], P[r0:r1]
        if L.b is not None:
            z += L.b
        # the ufuncs' own reductions, as np.max and np.sum call them (the same bits), without the
        # Python wrappers: a block is tens of microseconds, and these calls are made for each one
        top = _max(z, 1, keepdims=True)
        # NaN and −inf show in the least entry, +inf in the largest top (NaN in both): z is finite
        # exactly when both are. Two reductions of which one is over a column of K times fewer
        # entries, where a look at each top cost a boolean array and a count
        if not (math.isfinite(_min(z, None)) and math.isfinite(_max(top, None))):
            return False
        # numpy's buffer at a row's length for the broadcast operations only (bufsize_for_rows), in
        # this thread; set and restored directly (a contextmanager's generator cost 3 µs a block),
        # and never around a reduction, whose partial sums could follow it
        previous = np.setbufsize(bufsize)
        try:
            np.subtract(z, top, out=p)  # s = (z − max z)/T: see shifted_logits
        finally:
            np.setbufsize(previous)
        if T != 1:
            p /= T
        if H is not None:
            H[r0:r1] = p
        if t is not None:
            rows, tt = np.arange(r1 - r0), t[r0:r1]
            s_t = p[rows, tt]
        np.exp(p, out=p)
        total = _sum(p, 1, keepdims=True)
        previous = np.setbufsize(bufsize)
        try:
            if H is not None:
                h = H[r0:r1]
                h -= np.log(total)
                if not all_finite(h):
                    return False
            p /= total
        finally:
            np.setbufsize(previous)
        if t is not None and losses is not None:
            losses[r0:r1] = np.log(total[:, 0]) - s_t
            # δ_t = −(1 − p_t); where t is the likeliest class 1 − p_t cancels, and the sum of the
            # other probabilities is taken instead (as complement does, the same bits)
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
        return True

    def work(i: int) -> bool:
        r0, r1 = spans[i]
        if fused:
            np.matmul(L.X[r0:r1], L.W, out=Z[r0:r1])
        if not all(block(b0, min(r1, b0 + step)) for b0 in range(r0, r1, step)):
            return False
        if sums is not None:  # over the whole span, in one call: the partial sums' bits are the span's
            sums[i] = P[r0:r1].sum(axis=0)
        return True

    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if N * n * K < ONE_BLAS_THREAD_FROM:
            done = [work(i) for i in range(len(spans))]
        else:
            done = in_spans(work, range(len(spans)), N * n * K)
    if not all(done):
        return None
    return _Rows(Z if keep_z else None, P, H, losses, sums)


def forward_arrays(L: Layer, spans: list[tuple[int, int]] | None = None) -> tuple[Array, Array, Array]:
    """The class logits, h and p (each N×classes); for a binary layer the logits are ``[0, z]``.
    ``spans``: those of a chunk of a larger batch, as :func:`softmax_rows` takes them."""
    if L.binary:
        return _forward_careful(L)
    rows = softmax_rows(L, log_h=L.function == "log-softmax", spans=spans)
    if rows is not None and rows.Z is not None:
        return rows.Z, rows.P if rows.H is None else rows.H, rows.P
    return _forward_careful(L)


def _forward_careful(L: Layer) -> tuple[Array, Array, Array]:
    Z = class_logits(L, layer_logits(L))
    S = shifted_logits(L, Z)  # not Z / T: that overflows for a tiny T where p is still finite
    with np.errstate(under="ignore"):
        P = softmax(S)
    H = P if L.function == "softmax" else _log_softmax_or_refuse(L, Z, S)
    return Z, H, P


def layer_probabilities(L: Layer, Z: Array | None = None) -> Array:
    """``p = softmax(z / T)`` (N×K), all a derivative needs: log h may be past the float range
    (log-softmax at a tiny T) while its derivatives are not. For a binary layer, N×2 from
    ``[0, z]`` (Z, if given, is the N×1 of :func:`layer_logits`)."""
    if Z is None and not L.binary:
        rows = softmax_rows(L, keep_z=False)
        if rows is not None:
            return rows.P
    if Z is None:
        Z = layer_logits(L)
    with np.errstate(under="ignore"):
        return softmax(shifted_logits(L, class_logits(L, Z)))


def forward(W: ArrayLike, x: ArrayLike, b: ArrayLike | None = None, **layer: Unpack[LayerOptions]) -> Forward:
    """Run the layer forward: ``z = Wᵀx + b``, ``h = softmax(z / T)`` (or its log).

    Parameters
    ----------
    W, x, b, **layer
        The layer and its choices (``layout``, ``function``, ``temperature``), as in
        :func:`~smjac.maths.layer.make_layer`.

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
    return layer_forward(make_layer(W, x, b, **layer_options("forward", layer)))


def layer_forward(L: Layer) -> Forward:
    """:func:`forward` for a :class:`Layer` (one :func:`make_layer` has already checked)."""
    Z, H, P = (small.fits(L) and small.forward(L)) or forward_arrays(L)
    return Forward(z=L.out(Z), h=L.out(H), p=L.out(P))


# ---------------------------------------------------------------- batches larger than memory

CHUNK_BYTES = 64 * 2**20  # the work of one chunk of rows in forward_chunks and grad_chunks
LOGIT_COPIES = 6  # N×K arrays a pass over logits holds at its peak: z, its shifted copy, exp, p, 1 − p, h


def row_chunks(x: Array, chunk_bytes: int, outputs: int = 0) -> list[tuple[int, int]]:
    """Chunks of x's rows whose whole work, the rows of x and the :data:`LOGIT_COPIES` arrays of
    ``outputs`` logits each, takes about ``chunk_bytes``: with many outputs, a chunk has fewer rows.

    >>> X = np.ones((1000, 2))
    >>> len(row_chunks(X, 160_000)), len(row_chunks(X, 160_000, outputs=100))
    (1, 31)
    """
    return even_spans(x.shape[0], chunk_rows(x, chunk_bytes, outputs))


def chunk_rows(x: Array, chunk_bytes: int, outputs: int = 0) -> int:
    """The rows of a chunk of :func:`row_chunks` (at least one)."""
    if x.ndim != 2:
        raise ShapeError(f"x must be a batch (N×n) to be read in chunks, but has shape {x.shape}")
    chunk_bytes = size_in_bytes("chunk_bytes", chunk_bytes)
    row = (x.shape[1] + LOGIT_COPIES * outputs) * x.itemsize
    return max(1, chunk_bytes // max(1, row))


def span_chunks(
    N: int, n: int, K: int, itemsize: int, rows: int
) -> list[tuple[int, int, list[tuple[int, int]] | None]]:
    """Chunks of at most ``rows`` of a batch's N rows, made of the spans its pass in memory makes
    (:func:`~._parallel.sweep_spans`), as many whole spans as fit, each chunk with its spans (from
    its first row). A product's bits depend on the rows that one BLAS call is given, so a chunk
    of whole spans gives the very floats the batch in memory gives, whatever the chunk's size. A
    span larger than ``rows`` (a small budget) is cut to fit, and its chunks (spans None) agree
    with the batch to rounding; so does a batch of one span, unless it fits whole.

    >>> span_chunks(1000, 512, 1000, 8, rows=600)  # 4 spans of 250 rows, two to a chunk
    [(0, 500, [(0, 250), (250, 500)]), (500, 1000, [(0, 250), (250, 500)])]
    >>> span_chunks(1000, 512, 1000, 8, rows=100)[:2]
    [(0, 100, None), (100, 200, None)]
    """
    spans = sweep_spans(N, n, K, itemsize)
    rows = max(1, rows)
    if len(spans) == 1:
        return [(0, N, None)] if rows >= N else [(a, b, None) for a, b in even_spans(N, rows)]
    chunks: list[tuple[int, int, list[tuple[int, int]] | None]] = []
    held: list[tuple[int, int]] = []

    def close() -> None:  # the spans held so far, as one chunk counted from its first row
        if held:
            first = held[0][0]
            chunks.append((first, held[-1][1], [(s0 - first, s1 - first) for s0, s1 in held]))
            held.clear()

    for a, b in spans:
        if held and b - held[0][0] > rows:
            close()
        if b - a > rows:
            chunks.extend((c0 + a, c1 + a, None) for c0, c1 in even_spans(b - a, rows))
        else:
            held.append((a, b))
    close()
    return chunks


def as_batch(x: ArrayLike) -> Array:
    """``x`` as the chunked functions walk it: an ndarray as it is (a memory map is read a chunk at
    a time, never copied whole), and smjac's own reader of rows (:func:`read_rows`); anything else
    array-like (nested lists) as an array of floats, refused as ``x`` as :func:`make_layer` refuses it.
    """
    refuse_masked(x, "x")
    if isinstance(x, np.ndarray) or hasattr(x, "rows"):
        return x  # type: ignore[return-value]
    return as_float(x, "x")


def read_rows(x: Array, r0: int, r1: int) -> Array:
    """Rows r0:r1 of x, from a file as safely as x allows.

    An x that reads its own rows (``rows(r0, r1)``: smjac's reader of a large .npy file, as
    ``smjac.inputs.map_npy`` opens it) reads them into an array of their own: a file cut short
    meanwhile (a training loop re-saving it) is a short read, which it refuses naming the file.
    A memory map cannot do that: touching a page past the file's new end kills the process with
    SIGBUS, which no handler can turn into a message. So for a caller's own ``np.memmap`` the
    file's size is checked against the rows first, which narrows that window but cannot close it.
    """
    rows = getattr(x, "rows", None)
    if rows is not None:
        return rows(r0, r1)
    name = getattr(x, "filename", None)
    if isinstance(x, np.memmap) and name:
        need = getattr(x, "offset", 0) + r1 * x.shape[1] * x.itemsize
        try:
            size = os.stat(name).st_size
        except OSError:
            size = -1
        if size < need:
            raise InputError(
                f"{name}: was cut short while smjac read it (rows up to {r1} need {need:,} bytes, the file "
                f"now holds {max(size, 0):,}); read it again once it is whole"
            )
    return np.asarray(x[r0:r1])


def first_row(x: Array) -> Array:
    """The first row of a batch, to check the layer on before x is walked in chunks; x itself when
    it is not a batch (:func:`row_chunks` then says why it cannot be walked)."""
    return read_rows(x, 0, 1) if np.ndim(x) == 2 else x


def release_rows(x: Array, r0: int, r1: int) -> None:
    """Hand back the pages of rows r0:r1 of a memory-mapped x once they are done with.

    Pages of a mapped file that have been read count in the process's resident memory until the
    kernel needs them; dropping them as the walk goes keeps it flat. They are read again from the
    file if touched again, so nothing is lost. Anything but an np.memmap is left alone, and so is
    a copy-on-write one (``mode="c"``: its pages hold the caller's changes, which dropping them
    would undo) and one whose rows are not whole runs of the file (Fortran order, a strided view).
    """
    import mmap

    mm = getattr(x, "_mmap", None)
    if (
        mm is None
        or not hasattr(mm, "madvise")
        or not hasattr(mmap, "MADV_DONTNEED")
        or getattr(x, "mode", "c") == "c"
        or not x.flags.c_contiguous
    ):
        return
    row = x.shape[1] * x.itemsize
    # where x starts inside the mapping (a view's rows start past the file's first)
    base = x.ctypes.data - np.frombuffer(mm, np.uint8, count=1).ctypes.data
    start = (base + r0 * row) // mmap.PAGESIZE * mmap.PAGESIZE
    end = (base + r1 * row) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > start:
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)


def forward_chunks(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    **layer: Unpack[LayerOptions],
) -> Iterator[tuple[int, Forward]]:
    """:func:`forward` of a batch too large to hold, a chunk of rows at a time: memory stays flat.

    ``x`` is N×n, typically a read-only ``np.memmap`` (see ``smjac.inputs.map_npy``), or any
    array-like (nested lists). Yields
    ``(first row, Forward of those rows)``; each chunk is checked (finite, shapes) as it is read,
    and its pages handed back once done. The chunks are made of the spans of rows that
    :func:`forward` gives one product each, so their numbers are the very floats :func:`forward`
    gives for the whole batch, whatever ``chunk_bytes``, as long as a chunk holds a span (about
    4 MiB of logits and their copies: a few tens of MiB); in smaller chunks they agree to rounding.

    Examples
    --------
    >>> X = np.ones((5, 2))
    >>> [(r, f.h.shape) for r, f in forward_chunks(np.eye(2), X, chunk_bytes=224)]
    [(0, (2, 2)), (2, (2, 2)), (4, (1, 2))]
    """
    layer = layer_options("forward_chunks", layer)
    x = as_batch(x)
    first = make_layer(W, first_row(x), b, **layer)  # checked on the first row: outputs per row
    rows = chunk_rows(x, chunk_bytes, outputs=first.K)
    for r0, r1, spans in span_chunks(x.shape[0], x.shape[1], first.K, first.W.dtype.itemsize, rows):
        # a last chunk of one row is still rows of a batch
        L = make_layer(W, read_rows(x, r0, r1), b, **layer)._replace(batched=True)
        Z, H, P = forward_arrays(L, spans)
        release_rows(x, r0, r1)
        yield r0, Forward(z=Z, h=H, p=P)
