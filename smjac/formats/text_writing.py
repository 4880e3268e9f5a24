"""Writing JSON and CSV whose numbers read back bit for bit, at the speed of C in the common case.

orjson writes each number as the shortest text that reads back as the same float, as ``repr`` does
(a float32 as the shortest that reads back as the same float32, as numpy prints it); ``0.00001``
where ``repr`` wrote ``1e-05``, the same number. NaN and infinities are spelled as before: ``nan``
and ``inf`` in CSV, refused in JSON. JSON keeps ``json.dumps``'s layout (``", "`` and ``": "``) up
to :data:`BLOCK` numbers; a larger document is written without those spaces.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np

from ..maths.numeric import all_finite
from .document import Document


class _Unwritable(Exception):
    """orjson would write what ``json.dumps`` does not (null for NaN, say)."""


BLOCK = 1 << 16  # numbers written per call: text that stays in the cache, in few calls
WIDE = 256  # numbers in a row that is written by a call of its own


def plain_floats(a: np.ndarray) -> Any:
    """Nested lists of Python floats that print as the shortest text giving back each number.

    float64 values print that way already; a float32 value goes through numpy's shortest float32
    text (0.1, not 0.10000000149011612), which reads back as the same float32.
    """
    if a.dtype.kind == "f" and a.dtype.itemsize < 8:
        return a.astype(str).astype(np.float64).tolist()
    return a.tolist()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return plain_floats(value)
    if isinstance(value, np.generic):
        return plain_floats(np.asarray(value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fast(a: np.ndarray) -> bool:
    """Whether orjson writes this array as :func:`plain_floats` would: float64, float32 (its own
    shortest text), integers and booleans, with something in it."""
    kind, size = a.dtype.kind, a.dtype.itemsize
    return a.size > 0 and a.ndim > 0 and (kind in "biu" or (kind == "f" and size in (4, 8)))


def _dumps(block: np.ndarray) -> bytes:
    """orjson's text of a block, with NaN and infinities spelled as ``repr`` spells them."""
    import orjson

    block = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("="))
    text: bytes = orjson.dumps(block, option=orjson.OPT_SERIALIZE_NUMPY)
    if b"n" in text:  # orjson writes them as null; no number, true or false holds an n
        words = [repr(float(v)).encode() for v in block[~np.isfinite(block)]]
        parts = text.split(b"null")
        text = b"".join(p for pair in zip(parts, [*words, b""], strict=True) for p in pair)
    return text


def _rows_at_a_time(count: int, width: int) -> Iterator[slice]:
    step = max(1, BLOCK // max(1, width))
    return (slice(r0, r0 + step) for r0 in range(0, count, step))


def json_bytes(doc: Document) -> bytes:
    """One JSON object; floats as the shortest text that reads back as the same float, never NaN.

    A document of up to :data:`BLOCK` numbers in arrays is laid out as ``json.dumps`` lays it out
    (", " and ": "): the object by ``json.dumps`` with a stand-in for each array, the arrays by
    orjson. A larger one is written by orjson in one call, without those spaces, which would cost
    half as much again as writing the numbers. A NaN or an infinity anywhere goes to
    ``json.dumps``, which refuses it as it always has.
    """
    arrays: list[np.ndarray] = []
    mark = f"smjac-array-{os.urandom(8).hex()}-"  # no string in a document can hold it by chance

    def stand_in(value: Any) -> Any:
        if isinstance(value, np.ndarray) and _fast(value) and all_finite(value):
            arrays.append(value)
            return f"{mark}{len(arrays) - 1}"
        if isinstance(value, (np.ndarray, np.generic)):
            return _plain(value)
        if isinstance(value, Mapping):
            return {k: stand_in(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [stand_in(v) for v in value]
        return value

    if _array_numbers(doc.fields) > BLOCK:
        whole = _orjson_document(doc.fields)
        if whole is not None:
            return whole
    text = json.dumps(stand_in(doc.fields), allow_nan=False)
    parts: list[Any] = []
    for i, part in enumerate(re.split(f'"{mark}(\\d+)"', text)):
        parts.extend(_json_array(arrays[int(part)]) if i % 2 else [part.encode()])
    parts.append(b"\n")
    return b"".join(parts)


def _array_numbers(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return value.size
    if isinstance(value, Mapping):
        return sum(map(_array_numbers, value.values()))
    if isinstance(value, (list, tuple)):
        return sum(map(_array_numbers, value))
    return 0


def _orjson_document(fields: Mapping[str, Any]) -> bytes | None:
    """The document as orjson writes it, or None where it would write what ``json.dumps`` does
    not: null for NaN, a key that is not a string, an object orjson does not know."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray) and _fast(value):
            if not all_finite(value):
                raise _Unwritable
            return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))
        if isinstance(value, (np.ndarray, np.generic)):
            value = _plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise _Unwritable
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    import orjson

    try:
        return orjson.dumps(plain(fields), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
    except (_Unwritable, TypeError):  # orjson's JSONEncodeError is a TypeError
        return None


def _json_array(a: np.ndarray) -> Iterator[Any]:
    """An array as ``json.dumps`` lays it out, a block of rows at a time."""
    yield b"["
    for i, rows in enumerate(_rows_at_a_time(len(a), a.size // len(a))):
        if i:
            yield b", "
        yield memoryview(_dumps(a[rows]).replace(b",", b", "))[1:-1]
    yield b"]"


def to_json(doc: Document) -> str:
    """One JSON object; floats as shortest round-trip text, never NaN."""
    return json_bytes(doc).decode()


def _cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def csv_text(rows: Iterable[Iterable[Any]], header: Sequence[str] | None = None) -> str:
    import csv  # here: orjson writes the common cases (csv_lines, csv_header) without it

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue()


def csv_header(names: Sequence[str]) -> str:
    """A CSV header line: joined by commas where no name needs quoting (smjac's own: z, h, dL/dz),
    else by ``csv``, which quotes them."""
    if all(name and not any(c in name for c in ',"\r\n') for name in names):
        return ",".join(names) + "\n"
    return csv_text([], names)


def csv_lines(m: np.ndarray) -> Iterator[Any]:
    """The CSV lines of a matrix, without a header, in pieces (bytes-like).

    A stack of matrices (N × K × C) is written as N·K rows, sample after sample; a vector as one row.
    """
    m = m.reshape(-1, m.shape[-1]) if m.ndim > 2 else np.atleast_2d(m)
    if not _fast(m):
        yield csv_text(plain_floats(m)).encode()
        return
    if m.shape[1] >= WIDE:  # a call per row costs little next to its numbers, and needs no newlines put in
        for row in m:
            yield memoryview(_dumps(row))[1:-1]
            yield b"\n"
        return
    for rows in _rows_at_a_time(len(m), m.shape[1]):
        yield _lines(m[rows])
        yield b"\n"


def _lines(block: np.ndarray) -> Any:
    """The CSV lines of a 2-D block, but for the last newline (bytes-like).

    orjson writes the block as one flat list, and each row's last comma becomes a newline:
    numbers hold no commas. (``bytes.replace(b"],[", b"\\n")`` on the nested list's text took
    as long again as writing the numbers.)
    """
    text = _dumps(block.reshape(-1))
    if len(block) == 1:
        return memoryview(text)[1:-1]
    chars = np.frombuffer(text, dtype=np.uint8).copy()
    chars[np.flatnonzero(chars == ord(","))[block.shape[1] - 1 :: block.shape[1]]] = ord("\n")
    return chars.data[1:-1]


def _table_lines(columns: Mapping[str, Any]) -> Iterator[Any]:
    """A header, then one line per row of the columns; columns of one dtype are written together."""
    cols = [np.asarray(c) for c in columns.values()]
    yield csv_header(list(columns)).encode()
    if not all(c.ndim == 1 and _fast(c) and len(c) == len(cols[0]) for c in cols):
        yield csv_text(zip(*map(plain_floats, cols), strict=True)).encode()
        return
    groups: list[list[np.ndarray]] = []
    for c in cols:
        if groups and groups[-1][0].dtype == c.dtype:
            groups[-1].append(c)
        else:
            groups.append([c])
    for rows in _rows_at_a_time(len(cols[0]), len(cols)):
        lines = [_lines(np.stack([c[rows] for c in g], axis=1)) for g in groups]
        if len(lines) == 1:
            yield lines[0]
        else:  # each group's part of a line side by side: split and joined in C
            yield b"\n".join(map(b",".join, zip(*(bytes(p).split(b"\n") for p in lines), strict=True)))
        yield b"\n"


def csv_bytes(doc: Document) -> bytes:
    """CSV: the matrix without a header (so it loads back), or a table with one.

    A stack of matrices (N × K × C) is written as N·K rows, sample after sample.
    """
    if doc.matrix is not None:
        return b"".join(csv_lines(np.asarray(doc.fields[doc.matrix])))
    if doc.columns:
        return b"".join(_table_lines(doc.columns))
    header = list(doc.records[0]) if doc.records else []
    return csv_text(([r[k] for k in header] for r in doc.records), header).encode()


def to_csv(doc: Document) -> str:
    """CSV text: the matrix without a header (so it loads back), or a table with one.

    A stack of matrices (N × K × C) is written as N·K rows, sample after sample.
    """
    return csv_bytes(doc).decode()


def stream_csv(
    out: BinaryIO, blocks: Iterable[np.ndarray], *, progress: Callable[[int], None] | None = None
) -> None:
    """Write row blocks to ``out`` as CSV lines, one block at a time: the text :func:`to_csv`
    gives for the whole, in the memory of one block."""
    for block in blocks:
        for piece in csv_lines(block):
            out.write(piece)
        if progress:
            progress(block.nbytes)
