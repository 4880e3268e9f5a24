"""NumPy's ``.npy`` and ``.npz``: headers validated before anything is allocated, and reads a block
of rows at a time (:class:`NpyFile`) for batches larger than memory.
"""

from __future__ import annotations

import io
import math
import os
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import LoadError, reading
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


HEADER_MAX = (
    2**16
)  # bytes of an NPY header, past which it is refused unread (numpy's own parser stops at 10,000)


def read_npy_header(
    stream: BinaryIO, label: str, head: bytes = b""
) -> tuple[tuple[int, ...], bool, np.dtype, bytes]:
    """:func:`npy_header` of an NPY file read from ``stream`` (whose first bytes, ``head``, are already
    read): its shape, order and dtype, and what of ``head`` is past the header (the first bytes of
    the numbers). Only the header is read: the size of what follows can be refused before it is.
    """
    start = _read_to(stream, head, len(NPY_MAGIC) + 6)  # magic, version, header length (2 or 4 bytes)
    if not start.startswith(NPY_MAGIC):
        raise LoadError(
            f"{label}: is empty" if not start.strip() else f"{label}: is not an NPY file (no NPY header)"
        )
    width = 2 if start[6] == 1 else 4
    end = len(NPY_MAGIC) + 2 + width + int.from_bytes(start[8 : 8 + width], "little")
    if end > HEADER_MAX:
        raise LoadError(f"{label}: is not a valid NPY file (its header says it is {end:,} bytes long)")
    data = _read_to(stream, start, end)
    shape, fortran, dtype = npy_header(io.BytesIO(data), label)
    return shape, fortran, dtype, data[end:]


def _read_to(stream: BinaryIO, head: bytes, size: int) -> bytes:
    """``head`` and what follows it in ``stream``, up to ``size`` bytes in all (fewer at its end)."""
    parts = [head]
    while (have := sum(map(len, parts))) < size and (part := stream.read(size - have)):
        parts.append(part)
    return b"".join(parts)


def read_npy(
    stream: BinaryIO,
    label: str,
    head: bytes = b"",
    check: Callable[[tuple[int, ...], np.dtype], None] | None = None,
) -> np.ndarray:
    """An NPY file read from ``stream`` (``head``: its first bytes, already read) into one array of
    its own dtype, read straight into the array's memory: no copy of the bytes beside it.

    ``check(shape, dtype)`` is called once the header is read and before anything is allocated:
    the caller refuses there what would be too large. A stream shorter or longer than its header
    says is refused, naming ``label``.
    """
    shape, fortran, dtype, rest = read_npy_header(stream, label, head)
    if check is not None:
        check(shape, dtype)
    arr = np.empty(math.prod(shape), dtype)
    buf = _bytes_of(arr)
    done = len(rest[: buf.nbytes])
    buf[:done] = rest[:done]
    while done < buf.nbytes and (got := stream.readinto(buf[done:])):  # type: ignore[attr-defined]
        done += got
    npy_size_check(label, shape, dtype, done)
    if len(rest) > buf.nbytes or stream.read(1):
        raise LoadError(
            f"{label}: has bytes after its data: its header says shape {shape} of {dtype} ({buf.nbytes:,} bytes)"
        )
    return arr.reshape(shape, order="F" if fortran else "C")


def _bytes_of(a: np.ndarray) -> memoryview:
    """The bytes of a contiguous array, to read into."""
    return a.reshape(-1).view(np.uint8).data


class NpyFile:
    """An .npy file too large to read whole, opened: its header checked, its numbers read a block of
    rows at a time (:meth:`rows`), each into an array of its own.

    Positional reads, not a memory map: a file cut short while it is read (a training loop
    re-saving it) gives a short read, refused as a :class:`~smjac.errors.LoadError` naming the
    file, where touching a mapped page past its new end would kill the process with SIGBUS, which
    no handler can turn into a message. The file stays open while the object lives, so one replaced
    by another renamed over it is still read whole, from the first. Not to be shared between threads.

    Looks enough like the array it holds for the shapes to be taken from it (``shape``, ``dtype``,
    ``ndim``, ``len``); slicing rows reads them.

    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/x.npy"
    >>> np.save(path, np.arange(6.0).reshape(3, 2))
    >>> x = NpyFile(path)
    >>> x.shape, x.rows(1, 3)
    ((3, 2), array([[2., 3.],
           [4., 5.]]))
    """

    def __init__(
        self,
        path: str | Path,
        dtype: Any = None,
        check: Callable[[np.ndarray, np.ndarray, int], None] | None = None,
    ) -> None:
        self.path = label = str(path)
        self.cast = None if dtype is None else np.dtype(dtype)  # rows are read, then cast to it
        # called on each block of rows :meth:`rows` reads, as read and as cast, with its first row
        self.check = check
        with reading(label):
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed with the object, below
        weakref.finalize(self, f.close)
        self._file = f
        with reading(label):
            self.shape, self.fortran, self.dtype, _ = read_npy_header(f, label)
            self.offset = f.tell()
            size = os.fstat(f.fileno()).st_size
        npy_size_check(label, self.shape, self.dtype, size - self.offset)
        if self.size == 0:
            raise LoadError(f"{label}: holds no numbers (shape {self.shape})")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"{self.path}: only a range of rows is read (x[r0:r1]), not {rows!r}")
        r0, r1, _ = rows.indices(len(self))
        return self.rows(r0, r1)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.rows(0, len(self))
        return whole if dtype is None else whole.astype(dtype)

    def rows(self, r0: int, r1: int, width: int | None = None) -> np.ndarray:
        """Rows ``r0:r1`` (of the first axis), read from the file into an array of their own, in
        the file's dtype and order.

        ``width`` reads the array as rows of that many numbers instead, in C order (the rows of
        ``reshape(-1, width)``): an answer compared in an arrangement other than its own shape.
        """
        if width is not None:
            return self._cast(self._flat_rows(r0, r1, width))
        block = self._rows(r0, r1)
        out = self._cast(block)
        if self.check is not None:
            self.check(block, out, max(0, r0))
        return out

    def _cast(self, block: np.ndarray) -> np.ndarray:
        """``block`` in the dtype asked for (float32 for a layer worked in float32): a number the cast
        makes infinite is refused by the finiteness check every block of x passes."""
        if self.cast is None or block.dtype == self.cast:
            return block
        with np.errstate(over="ignore"):
            return block.astype(self.cast)

    def _rows(self, r0: int, r1: int) -> np.ndarray:
        r0, r1 = max(0, r0), max(r0, min(r1, len(self)))
        rest, count, N = self.shape[1:], r1 - r0, len(self)
        width = math.prod(rest)
        if not self.fortran or self.ndim < 2:  # the rows are one run of bytes
            out = np.empty((count, width), self.dtype)
            self._read(out, r0 * width, r0, r1)
            return out.reshape((count, *rest))
        cols = np.empty((width, count), self.dtype)  # Fortran order: a run per column
        for j in range(width):
            self._read(cols[j], j * N + r0, r0, r1)
        return cols.T.reshape((count, *rest), order="F")

    def _flat_rows(self, r0: int, r1: int, width: int) -> np.ndarray:
        if width <= 0 or self.size % width:
            raise ValueError(f"{self.path}: {self.size:,} numbers are not rows of {width}")
        r0, r1 = max(0, r0), max(r0, min(r1, self.size // width))
        first, end = r0 * width, r1 * width
        if not self.fortran or self.ndim < 2:  # one run of bytes
            out = np.empty((r1 - r0, width), self.dtype)
            self._read(out, first, r0, r1)
            return out
        own = self.size // len(self)  # Fortran order: the rows of its own shape that hold them
        i0 = first // own
        held = self.rows(i0, -(-end // own)).reshape(-1)  # in C order: a copy, a row of its own more at most
        return held[first - i0 * own : end - i0 * own].reshape(-1, width)

    def _read(self, out: np.ndarray, first: int, r0: int, r1: int) -> None:
        """Fill ``out`` (contiguous) from the file's numbers, starting at number ``first``."""
        buf = _bytes_of(out)
        start = self.offset + first * self.itemsize
        done = 0
        with reading(self.path):
            self._file.seek(start)
            while done < buf.nbytes and (got := self._file.readinto(buf[done:])):
                done += got
            size = os.fstat(self._file.fileno()).st_size
        if done < buf.nbytes:
            raise LoadError(
                f"{self.path}: was cut short while smjac read it: rows {r0}:{r1} need {start + buf.nbytes:,} bytes, "
                f"the file now holds {size:,}; read it again once it is whole"
            )


def open_npy(path: str | Path) -> np.ndarray:
    """A read-only memory map of a .npy file, its header checked as :class:`NpyFile` checks it.

    For an answer too large to read whole (``smjac verify``): the numbers stay on disk and are
    read as they are used, in their own dtype. Unlike :func:`load_array` the values are not
    checked to be finite here (that would read the whole file); the caller does it as it goes.
    A file cut short while it is mapped is read past its end (SIGBUS): :class:`NpyFile` reads
    without that risk.
    """
    f = NpyFile(path)
    return np.memmap(
        path, dtype=f.dtype, mode="r", offset=f.offset, shape=f.shape, order="F" if f.fortran else "C"
    )


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
