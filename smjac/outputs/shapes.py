"""The shapes of results: what a command will produce, known before it computes (:class:`Shape`),
which formats can hold it (:func:`refusal`, :func:`usable`), and the result itself (:class:`Result`)
with the view a person sees of it (:class:`View`). The writer (:mod:`smjac.outputs.writer`) takes
them from here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import ExitStatus
from ..formats import document
from ..formats.table import Format


class Shape(NamedTuple):
    """What a result is made of, known before it is computed: it settles which formats hold it.

    ``main`` names the one array a ``.npy`` (and a header-less CSV) holds; ``extras`` are the other
    fields, which those formats leave out. ``csv`` says how CSV holds it: ``"matrix"`` (rows, no
    header), ``"columns"`` or ``"records"`` (a header, then rows), or None. ``view`` is what a
    person sees: ``"matrix"`` (any picture), ``"table"`` (a table of its own, plus the documents
    listed), or None (data only: printed as JSON).
    """

    name: str
    main: str | None = None
    extras: tuple[str, ...] = ()
    csv: str | None = "matrix"
    arrays: bool = True
    view: str | None = "matrix"
    documents: tuple[Format, ...] = (Format.markdown, Format.latex)
    streams: bool = False
    picture: str | None = "matrix"  # how a .png/.svg/.pdf draws it: a heatmap, "bars", or none
    checkpoint: bool = False  # a gradient of a layer read from a checkpoint: .safetensors holds it


def refusal(fmt: Format, shape: Shape) -> str | None:
    """Why ``fmt`` cannot hold a result of this shape (None when it can)."""
    if fmt is Format.npy and shape.main is None:
        return "is not a single array, so it cannot be .npy"
    if fmt is Format.npz and not shape.arrays:
        return "holds no arrays, so it cannot be .npz"
    if fmt is Format.csv and shape.csv is None:
        return "has no rows and columns, so it cannot be CSV"
    if fmt.picture and shape.picture is None:
        return "has no picture"
    if fmt is Format.safetensors and not shape.checkpoint:
        return "cannot be .safetensors: only smjac grad writes one, the gradient of a layer read from a checkpoint (--layer model.safetensors)"
    if fmt.people:
        if shape.view is None:
            return f"is data for a program, not a picture, so it has no {fmt.value}"
        if fmt is Format.heatmap and shape.view != "matrix":
            return "is a table, not a matrix, so it has no heatmap"
        if fmt in (Format.markdown, Format.latex) and fmt not in shape.documents:
            return f"is a table that {fmt.value} cannot hold"
    return None


def left_out(fmt: Format, shape: Shape) -> tuple[str, ...]:
    """The fields of a result that ``fmt`` holds only in part (said on stderr when written): a
    .npy, a header-less CSV and whatever draws the view's one matrix (a table, a picture) hold the
    main array alone, but for what the view shows beside it (:attr:`View.shows`)."""
    whole = fmt is Format.npy or (fmt is Format.csv and shape.csv == "matrix") or fmt.people or fmt.picture
    return shape.extras if whole else ()


@functools.cache
def usable(shape: Shape, *, files_only: bool = False) -> tuple[Format, ...]:
    """The formats a result of this shape can be written in: to a file (``files_only``), or to
    stdout by ``--format``, where the binary ones (.npy, .npz, pictures) go to a pipe or a file
    only, never to a terminal (:class:`Writer` refuses that).

    Found once a shape: the command line asks it for every option of every command as it starts
    (``smjac.cli.options``), over a thousand look-ups of a few shapes."""
    return tuple(
        f
        for f in Format
        if refusal(f, shape) is None and (f.suffix if files_only else f.printable or f.suffix)
    )


class View(NamedTuple):
    """What a person sees of a result: one matrix (one sample of a batch), labelled."""

    M: np.ndarray
    rows: Sequence[str]
    cols: Sequence[str]
    title: str
    caption: str | None = None
    table: Callable[[], Any] | None = None  # a table of its own, instead of the matrix's
    notes: Sequence[str] = ()
    groups: int | None = None  # columns per output (dh/dW: n), drawn as blocks in a picture
    # a picture's title, when it says more than ``title`` (the function, the method, the sample)
    picture_title: str | None = None
    axes: tuple[str, str, str] = ("", "", "")  # a picture's labels: rows, columns, values
    # fields of the result shown beside the matrix, in the caption of a table and the title of a
    # picture (Markdown, LaTeX and the heatmap show the matrix alone)
    shows: tuple[str, ...] = ()


class Result(NamedTuple):
    """A command's answer, for the writer: data made on demand, and how to show it.

    ``data`` computes the document (given a progress callback); ``blocks``, where the result can
    be streamed, gives its row blocks instead, of the size given, and ``stream_cost(fmt, size)``
    the memory streaming them as ``fmt`` takes. ``cost(fmt)`` is the memory its path takes at its
    peak, written in the format named ``fmt`` (``"json"``, ``"markdown"``, ``"npz"``, …), from
    :func:`smjac.maths.estimate_bytes`, checked against the budget before ``data`` runs. ``work`` is what the progress bar counts as ``data`` (or ``blocks``, or
    ``csv_chunks``) calls its progress callback: bytes of arrays filled, or samples worked through
    (``unit``); 0 when not known ahead (the bar is then a spinner and the time taken).
    ``status`` is the exit status once it is written (``smjac check`` exits 1 when a check fails).
    """

    shape: Shape
    what: str
    data: Callable[[Callable[[int], None]], document.Document]
    view: Callable[[document.Document], View] | None = None
    cost: Callable[[str], int] = lambda fmt: 0
    work: int = 0
    blocks: Callable[[int], Any] | None = None  # block bytes -> maths.Blocks
    stream_cost: Callable[[str, int], int] = lambda fmt, block_bytes: 0  # blocks streamed as fmt
    status: Callable[[document.Document], int] = lambda doc: ExitStatus.OK
    notes: Sequence[str] = ()
    checkpoint: Callable[[document.Document], bytes] | None = None  # the bytes of a .safetensors file
    csv_chunks: Callable[[Callable[[int], None]], Any] | None = None  # CSV text in pieces (given progress)
    unit: str = "bytes"  # what ``work`` counts: bytes, or samples, ...
    # other forms of the same result, as a refusal offers them: each its ways ("take …: --flag")
    # with the bytes each takes; the first within the budget is offered, none if none is
    others: Sequence[Sequence[tuple[str, int]]] = ()


def pick(batch: np.ndarray, batched: bool, sample: int, notes: list[str]) -> np.ndarray:
    """One sample of a per-sample result, for the formats that show one matrix."""
    if not batched:
        return batch
    notes.append(
        f"showing sample {sample} of {len(batch)}; --sample I shows another, --format json all of them"
    )
    return batch[sample]


def flat_columns(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A batch's per-sample vectors (N×K each) as long CSV columns: sample, i, then each value."""
    N, K = next(iter(values.values())).shape
    index = {"sample": np.repeat(np.arange(N), K), "i": np.tile(np.arange(K), N)}
    return {**index, **{name: v.reshape(-1) for name, v in values.items()}}
