"""NumPy's ``.npy`` and ``.npz``: headers validated before anything is allocated, memory-mapped reads
for batches larger than memory.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ..errors import LoadError

if TYPE_CHECKING:
    pass
from ..errors import reading
from .document import Document

NPY_MAGIC = b"\x93NUMPY"


def _check_npy_shape(shape: Any, label: str) -> None:
    """A shape is a tuple of non-negative ints; a header may claim anything (``(-1, -1)``, ``(True, 5)``)."""
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise LoadError(f"{label}: is not a valid NPY file (its header gives the shape {shape!r})")


def npy_float64_bytes(head: bytes, label: str) -> int:
    """Bytes an NPY file's numbers take as float64, from its first bytes (its header) alone."""
    from numpy.lib import format as npformat

    buf = io.BytesIO(head)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            version = npformat.read_magic(buf)
            read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, _, _ = read(buf)
    except Exception:  # a bad header is for the NPY reader to name, once the member is read
        return 0
    _check_npy_shape(shape, label)
    return math.prod(shape) * 8


def npy_header(f: BinaryIO, label: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Read and check an NPY header from ``f`` (left at the first data byte): shape, order, dtype.

    Refuses object arrays (pickles), structured and non-real dtypes, and NPY versions past 2.0.
    """
    from numpy.lib import format as npformat

    try:
        with warnings.catch_warnings():  # a Python 2 era header is read fine; numpy's note is noise here
            warnings.simplefilter("ignore")
            version = npformat.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npformat.read_array_header_2_0(f)
            else:
                raise ValueError(f"NPY version {version[0]}.{version[1]} is not supported")
    except Exception as e:  # the header parser's errors are many (ValueError, SyntaxError, ...)
        raise LoadError(f"{label}: is not a valid NPY file ({e})") from None
    _check_npy_shape(shape, label)
    if dtype.hasobject:
        raise LoadError(f"{label}: holds Python objects (a pickle); smjac never unpickles data")
    if dtype.names is not None or dtype.kind not in "fiu":
        raise LoadError(f"{label}: has dtype {dtype}; smjac needs real numbers (float or int)")
    return shape, fortran, dtype


def npy_size_check(label: str, shape: tuple[int, ...], dtype: np.dtype, available: int) -> int:
    count = math.prod(shape)
    expected = count * dtype.itemsize
    if available != expected:
        what = "is truncated" if available < expected else "has bytes after its data"
        raise LoadError(
            f"{label}: {what}: its header says shape {shape} of {dtype} ({expected:,} bytes) "
            f"but {available:,} bytes follow"
        )
    return count


def parse_npy(data: bytes, label: str) -> np.ndarray:
    """Read an NPY file's header, check it against the bytes that follow, then view the numbers.

    ``np.load`` is not used: it would unpickle an object array if asked, it raises whatever its
    header parser raises on a mangled header, and it allocates whatever shape the header claims
    before finding the data short.
    """
    if not data.startswith(NPY_MAGIC):
        raise LoadError(f"{label}: is not an NPY file (no NPY header)")
    buf = io.BytesIO(data)
    shape, fortran, dtype = npy_header(buf, label)
    offset = buf.tell()
    count = npy_size_check(label, shape, dtype, len(data) - offset)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C").astype(np.float64)


def open_npy(path: str | Path) -> np.ndarray:
    """A read-only memory map of a .npy file, its header checked as :func:`load_array` checks it.

    For an answer too large to read whole (``smjac verify``): the numbers stay on disk and are
    read as they are used, in their own dtype. Unlike :func:`load_array` the values are not
    checked to be finite here (that would read the whole file); the caller does it as it goes.
    """
    label = str(path)
    with reading(label), open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise LoadError(f"{label}: is not an NPY file (no NPY header)")
        f.seek(0)
        shape, fortran, dtype = npy_header(f, label)
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
    if npy_size_check(label, shape, dtype, size - offset) == 0:
        raise LoadError(f"{label}: holds no numbers (shape {shape})")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def to_npy(doc: Document) -> bytes:
    assert doc.matrix is not None
    buf = io.BytesIO()
    np.save(buf, np.asarray(doc.fields[doc.matrix]), allow_pickle=False)
    return buf.getvalue()


def to_npz(doc: Document) -> bytes:
    arrays = {
        k: np.asarray(v)
        for k, v in doc.fields.items()
        if isinstance(v, (np.ndarray, float, int, np.generic)) and not isinstance(v, bool)
    }
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()
