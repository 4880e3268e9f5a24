"""The one table of formats: each format's suffixes, what smjac does with it, and its codec.

A new format is one row here and, when it holds data, one codec module beside this one. Everything
else asks this table: the readers (:func:`Format.for_input`), the writer (:func:`Format.for_output`,
``printable``, ``people``, ``picture``) and the checkpoint loader (``checkpoint``). What
writing each format costs in memory is :data:`smjac.maths.cost.OUTPUT_BYTES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import LoadError, OutputError, shown
from .document import Document
from .npy import NPY_MAGIC, to_npy, to_npz
from .text import csv_bytes, json_bytes


class Row(NamedTuple):
    """What smjac does with one format.

    ``suffixes``: the file suffixes that name it (the first is the one ``-o`` takes); none for
    what only a terminal shows. ``reads``: ``"matrix"`` (one array: W, x, b, targets, an answer),
    ``"bundle"`` (several named arrays), ``"checkpoint"`` (a model's layer, with ``--layer``),
    ``"refused"`` (a pickle), or None. ``writes``: ``-o`` writes it. ``printable``: ``--format``
    prints it (text, not bytes). ``people``: drawn from the result's view for a person (a table,
    not data). ``picture``: drawn by matplotlib.
    """

    suffixes: tuple[str, ...] = ()
    reads: str | None = None
    writes: bool = False
    printable: bool = False
    people: bool = False
    picture: bool = False


class Format(str, Enum):
    """Every format smjac reads, prints or writes; each one's row is :data:`ROWS`."""

    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"
    latex = "latex"
    heatmap = "heatmap"
    npy = "npy"
    npz = "npz"
    png = "png"
    svg = "svg"
    pdf = "pdf"
    safetensors = "safetensors"
    safetensors_index = "safetensors-index"
    keras = "keras"
    h5 = "h5"
    pickle = "pickle"

    @property
    def row(self) -> Row:
        return ROWS[self]

    @property
    def suffix(self) -> str | None:
        """The suffix ``-o`` takes for it; None for terminal-only formats and read-only ones."""
        r = self.row
        return r.suffixes[0] if r.writes and r.suffixes else None

    @property
    def printable(self) -> bool:
        return self.row.printable

    @property
    def people(self) -> bool:
        return self.row.people

    @property
    def picture(self) -> bool:
        return self.row.picture

    @classmethod
    def of_path(cls, path: str | Path) -> Format | None:
        """The format a file's suffix names, whatever smjac does with it; None for an unknown one.

        The longest suffix that ends the name wins: ``model.safetensors.index.json`` is an index.
        """
        name = Path(path).name.lower()
        found = [(len(s), f) for f in cls for s in f.row.suffixes if name.endswith(s) and name != s]
        return max(found, key=lambda t: t[0])[1] if found else None

    @classmethod
    def for_input(cls, path: str | Path) -> Format:
        """The format of an input matrix (or bundle) by its suffix; a LoadError for anything else."""
        fmt = cls.of_path(path)
        if fmt is not None and fmt.row.reads in ("matrix", "bundle"):
            return fmt
        if fmt is not None and fmt.row.reads in ("checkpoint", "refused"):
            if fmt.row.reads == "refused":
                raise refuse_pickle(str(path))
            raise LoadError(
                f"{path}: is a model checkpoint, not one matrix: give it as layer={str(path)!r} "
                "(key=NAME picks the layer) and x with x="
            )
        suffix = Path(path).suffix
        what = f"suffix '{shown(suffix)}'" if suffix else "no suffix"
        known = ", ".join(f.row.suffixes[0] for f in cls if f.row.reads in ("matrix", "bundle"))
        raise LoadError(f"{shown(str(path))}: {what}; smjac knows {known}")

    @classmethod
    def for_output(cls, path: Path, result: tuple[str, Iterable[Format]] | None = None) -> Format:
        """The format ``-o PATH`` asks for by its suffix; an OutputError naming those smjac writes,
        or, given ``result`` (its name and the formats it can be), those that result can be."""
        fmt = cls.of_path(path)
        if fmt is not None and fmt.row.writes:
            return fmt
        what = f"suffix '{shown(path.suffix)}'" if path.suffix else "no suffix"
        name, formats = result or ("smjac", cls)
        verb = "writes" if result is None else "can be"
        raise OutputError(
            f"{shown(str(path))}: {what}; {name} {verb} {either([f.suffix for f in formats if f.suffix])}"
        )


ROWS: dict[Format, Row] = {
    Format.table: Row(printable=True, people=True),
    Format.csv: Row((".csv",), reads="matrix", writes=True, printable=True),
    Format.json: Row((".json",), reads="matrix", writes=True, printable=True),
    Format.markdown: Row((".md",), writes=True, printable=True, people=True),
    Format.latex: Row((".tex",), writes=True, printable=True, people=True),
    Format.heatmap: Row(printable=True, people=True),
    Format.npy: Row((".npy",), reads="matrix", writes=True),
    Format.npz: Row((".npz",), reads="bundle", writes=True),
    Format.png: Row((".png",), writes=True, picture=True),
    Format.svg: Row((".svg",), writes=True, picture=True),
    Format.pdf: Row((".pdf",), writes=True, picture=True),
    Format.safetensors: Row((".safetensors",), reads="checkpoint", writes=True),
    Format.safetensors_index: Row((".safetensors.index.json",), reads="checkpoint"),
    Format.keras: Row((".keras",), reads="checkpoint"),
    Format.h5: Row((".h5", ".hdf5"), reads="checkpoint"),
    Format.pickle: Row((".pt", ".pth", ".ckpt", ".bin"), reads="refused"),
}

# the codecs of the formats that hold a result's data, as bytes
CODECS: dict[Format, Callable[[Document], bytes]] = {
    Format.json: json_bytes,
    Format.csv: csv_bytes,
    Format.npy: to_npy,
    Format.npz: to_npz,
}


CONVERT = 'safetensors.torch.save_file(model.state_dict(), "model.safetensors")'


def refuse_pickle(label: str) -> LoadError:
    """The error for a pickled PyTorch file: why it is refused, and the line that converts it."""
    return LoadError(
        f"{label}: is a pickled PyTorch file; smjac does not load pickles, since loading one runs "
        "whatever code it holds (torch.load did so even with weights_only=True: CVE-2025-32434, "
        f"and again CVE-2026-24747). Convert it once, where you trust it: {CONVERT}"
    )


def either(words: list[str | None] | list[str]) -> str:
    """``a, b or c``."""
    w = [str(x) for x in words]
    return w[0] if len(w) == 1 else f"{', '.join(w[:-1])} or {w[-1]}"


def sniff(data: bytes) -> Format:
    """Guess the format of bytes from stdin: NPY by its magic, JSON by a leading bracket, else CSV."""
    if data.startswith(NPY_MAGIC):
        return Format.npy
    if data.startswith(b"PK"):
        return Format.npz
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return Format.json if head in (b"[", b"{") else Format.csv


def encode(doc: Document, fmt: Format, what: str = "this result") -> bytes:
    """The bytes of ``doc`` in ``fmt``; an OutputError when that format cannot hold it."""
    if fmt is Format.npy and doc.matrix is None:
        raise OutputError(f"{what} is not a single array, so it cannot be .npy; use .npz, .json or .csv")
    if fmt is Format.npz and not any(isinstance(v, np.ndarray) for v in doc.fields.values()):
        raise OutputError(f"{what} holds no arrays, so it cannot be .npz; use .json or .csv")
    codec = CODECS.get(fmt)
    if codec is None:  # pragma: no cover - a programming error: the writer draws the others
        raise AssertionError(f"{fmt.value} is not a data format")
    return codec(doc)
