"""The one table of formats: each suffix, what it reads and writes, and its codec."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import LoadError, OutputError

if TYPE_CHECKING:
    pass
from .document import Document
from .npy import NPY_MAGIC, to_npy, to_npz
from .text import to_csv, to_json


class Format(str, Enum):
    """File formats smjac reads and writes; taken from the file's suffix."""

    JSON = "json"
    CSV = "csv"
    NPY = "npy"
    NPZ = "npz"

    @classmethod
    def from_path(cls, path: str | Path) -> Format:
        suffix = Path(path).suffix.lower().lstrip(".")
        try:
            return cls(suffix)
        except ValueError:
            from . import checkpoints  # light: it imports safetensors and h5py only to read

            what = checkpoints.kind(path)
            if what == "pickle":
                raise checkpoints.refuse_pickle(str(path)) from None
            if what is not None:
                raise LoadError(
                    f"{path}: is a model checkpoint, not one matrix: give it as --layer {path} "
                    "(--key NAME picks the layer) and x with -x"
                ) from None
            known = ", ".join("." + f.value for f in cls)
            what = f"suffix '.{suffix}'" if suffix else "no suffix"
            raise LoadError(f"{path}: {what}; smjac knows {known}") from None


def sniff(data: bytes) -> Format:
    """Guess the format of bytes from stdin: NPY by its magic, JSON by a leading bracket, else CSV."""
    if data.startswith(NPY_MAGIC):
        return Format.NPY
    if data.startswith(b"PK"):
        return Format.NPZ
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return Format.JSON if head in (b"[", b"{") else Format.CSV


def encode(doc: Document, fmt: Format, what: str = "this result") -> bytes:
    """The bytes of ``doc`` in ``fmt``; an OutputError when that format cannot hold it."""
    if fmt is Format.JSON:
        return to_json(doc).encode()
    if fmt is Format.CSV:
        return to_csv(doc).encode()
    if fmt is Format.NPY:
        if doc.matrix is None:
            raise OutputError(f"{what} is not a single array, so it cannot be .npy; use .npz, .json or .csv")
        return to_npy(doc)
    if not any(isinstance(v, np.ndarray) for v in doc.fields.values()):
        raise OutputError(f"{what} holds no arrays, so it cannot be .npz; use .json or .csv")
    return to_npz(doc)
