"""JSON and CSV: strict readers (every number finite unless asked, no ragged rows, no duplicate
keys) and writers whose numbers read back bit for bit.

Both directions run at the speed of C in the common case, through orjson, and keep the careful
code for everything else:

* Reading: :func:`read_text` takes a file of plain numbers a piece at a time, so the text is
  never held whole (CSV through orjson, each line made a JSON array, else through
  ``np.loadtxt``; JSON through orjson, a block of rows at a time). It hands back None at the
  first thing it is not sure of: a header, a ragged row, NaN, a byte outside the few a number is
  made of, anything else. The careful readers, :func:`careful_csv` and
  :func:`careful_document`, then read the whole file and accept it or refuse it with a message
  that names the file and the line. A fast reader never accepts what the careful one refuses,
  and where both accept, the bits are the same (``tests/test_text.py`` holds them to that).
* Writing: orjson writes each number as the shortest text that reads back as the same float, as
  ``repr`` does (a float32 as the shortest that reads back as the same float32, as numpy prints
  it); ``0.00001`` where ``repr`` wrote ``1e-05``, the same number. NaN and infinities are
  spelled as before: ``nan`` and ``inf`` in CSV, refused in JSON. JSON keeps ``json.dumps``'s
  layout (``", "`` and ``": "``) up to :data:`BLOCK` numbers; a larger document is written
  without those spaces.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import LoadError
from .document import Document

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")


def _orjson() -> Any:
    import orjson  # here: alone it imports uuid and dataclasses (13 ms), which `import smjac` need not pay

    return orjson


# ---------------------------------------------------------------- reading, careful


def json_document(data: bytes, label: str, finite: bool = True) -> Any:
    """A JSON document, read by orjson where :func:`fast_document` may, else by
    :func:`careful_document`."""
    fast = fast_document(data)
    return careful_document(data, label, finite) if fast is None else fast


def careful_document(data: bytes, label: str, finite: bool = True) -> Any:
    """A JSON document read by ``json``, refusing NaN and infinities (unless not ``finite``),
    numbers that overflow a float64, and a key given twice, with the line and column."""

    def refuse_constant(token: str) -> float:
        if not finite:
            return float(token)  # NaN, Infinity, -Infinity
        raise LoadError(f"{label}: {token} is not allowed; every number must be finite")

    def strict_float(token: str) -> float:
        value = float(token)
        if finite and math.isinf(value):
            raise LoadError(f"{label}: {token} overflows a 64-bit float")
        return value

    def strict_int(token: str) -> int | float:
        digits = len(token.lstrip("-"))
        if digits > 309:  # past any float64 (and Python's 4300-digit limit on int(), a ValueError)
            raise LoadError(f"{label}: an integer of {digits:,} digits is too large for a 64-bit float")
        return int(token)

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):  # json would keep the last silently
            keys = [k for k, _ in pairs]
            twice = next(k for i, k in enumerate(keys) if k in keys[:i])
            raise LoadError(f"{label}: holds {twice!r} twice; keep one")
        return obj

    try:
        return json.loads(
            data.decode("utf-8-sig"),
            parse_constant=refuse_constant,
            parse_float=strict_float,
            parse_int=strict_int,
            object_pairs_hook=unique_keys,
        )
    except UnicodeDecodeError:
        raise LoadError(f"{label}: is not UTF-8 text, so not JSON") from None
    except json.JSONDecodeError as e:
        raise LoadError(
            f"{label}: is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from None
    except RecursionError:
        raise LoadError(f"{label}: is nested too deeply") from None


def parse_json(data: bytes, label: str, finite: bool = True) -> np.ndarray:
    """A JSON array of numbers: :func:`fast_json`'s, or :func:`careful_json`'s (and its refusals)."""
    fast = fast_json(io.BytesIO(data), len(data))
    return careful_json(data, label, finite) if fast is None else fast


def careful_json(data: bytes, label: str, finite: bool = True) -> np.ndarray:
    obj = json_document(data, label, finite)
    if not isinstance(obj, list):
        raise LoadError(f"{label}: expected an array of numbers, found {json_kind(obj)}")
    return json_array(obj, label)


def json_array(obj: list[Any], label: str) -> np.ndarray:
    _check_json_numbers(obj, label)
    try:
        return np.array(obj, dtype=np.float64)
    except OverflowError:
        raise LoadError(f"{label}: holds an integer too large for a 64-bit float") from None
    except ValueError:
        raise LoadError(f"{label}: rows have different lengths (a matrix must be rectangular)") from None


def json_kind(obj: Any) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, (int, float)):
        return "a single number"
    kinds: dict[type, str] = {str: "a string", dict: "an object", list: "an array"}
    return kinds.get(type(obj), type(obj).__name__)


_PLAIN_NUMBERS = {int, float}


def _check_json_numbers(obj: list[Any], label: str) -> None:
    stack: list[Any] = [obj]
    while stack:  # iterative, so a deeply nested document cannot exhaust the call stack
        item = stack.pop()
        if isinstance(item, list):
            if set(map(type, item)) <= _PLAIN_NUMBERS:  # a row of numbers, checked in C
                continue
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise LoadError(f"{label}: expected numbers, found {json_kind(item)} ({json.dumps(item)[:40]})")


def _special(cell: str) -> bool:
    """NaN or an infinity as CSV writers spell it (nan, inf, -Infinity, any case; one sign at most)."""
    word = cell.lower()
    return (word[1:] if word[:1] in ("+", "-") else word) in ("nan", "inf", "infinity")


def parse_csv(data: bytes, label: str, finite: bool = True) -> np.ndarray:
    """A CSV matrix: :func:`fast_csv`'s, or :func:`careful_csv`'s (and its refusals)."""
    fast = fast_csv(io.BytesIO(data), len(data))
    return careful_csv(data, label, finite) if fast is None else fast


def careful_csv(data: bytes, label: str, finite: bool = True) -> np.ndarray:
    """Every line read by ``csv`` and every cell checked, so that a refusal names its line and column."""
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark from a spreadsheet is harmless
    except UnicodeDecodeError:
        raise LoadError(f"{label}: is not UTF-8 text, so not CSV") from None
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:  # a stray carriage return or NUL, say
        raise LoadError(f"{label}: is not valid CSV ({e})") from None
    rows: list[list[float]] = []
    for lineno, cells in enumerate(lines, start=1):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if not rows and not any(_NUMBER.match(c) or (not finite and _special(c)) for c in cells):
            raise LoadError(
                f"{label}: line {lineno} looks like a header ({','.join(cells)[:40]!r}); remove it"
            )
        row = []
        for col, cell in enumerate(cells, start=1):
            special = _special(cell)
            if not (_NUMBER.match(cell) or (special and not finite)):
                what = "not a finite number" if special else "not a number"
                raise LoadError(f"{label}: line {lineno}, column {col}: {cell!r} is {what}")
            value = float(cell)
            if finite and math.isinf(value):
                raise LoadError(f"{label}: line {lineno}, column {col}: {cell} overflows a 64-bit float")
            row.append(value)
        if rows and len(row) != len(rows[0]):
            raise LoadError(
                f"{label}: line {lineno} has {len(row)} values but the first row has {len(rows[0])}"
                " (a matrix must be rectangular)"
            )
        rows.append(row)
    if not rows:
        raise LoadError(f"{label}: is empty")
    arr = np.array(rows, dtype=np.float64)
    return arr


# ---------------------------------------------------------------- reading, fast

PIECE = 1 << 16  # bytes read at a time: a few of these, and orjson's ~16× one, are all that is held
LINE = 1 << 22  # a CSV line longer than this goes to np.loadtxt: orjson would hold ~16× it at once
_BOM = b"\xef\xbb\xbf"
_SPACE = b" \t\r\n"  # JSON's whitespace; CSV cells are stripped of it
_CSV_BYTES = b"0123456789.eE+-," + _SPACE
_JSON_BYTES = _CSV_BYTES + b"[]"
_BUNDLE_BYTES = _JSON_BYTES + b'{}:"Wxb'  # a layer bundle's keys, and nothing else with letters
# CSV reads "-0" as -0.0, orjson (like json) as the integer 0: a zero followed by one of these
_NEGATIVE_ZERO = (b"-0,", b"-0\n", b"-0 ", b"-0\t")


class _Unsure(Exception):
    """The fast reader met something only the careful one may judge."""


def read_text(
    path: str | Path, fmt: str, limit: int, *, opener: Callable[..., Any] = open
) -> np.ndarray | None:
    """The numbers of a ``.csv`` or ``.json`` file (``fmt``), read fast and a piece at a time.

    None when the fast reader is not sure of the file: not a regular file, over ``limit`` bytes,
    unreadable (``opener`` fails), or not plain rows of finite numbers. The caller then reads it
    with the careful reader, which words what is wrong; nothing is refused here.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO read here could not be read again
            return None
        with opener(path, "rb", buffering=0) as f:
            return (fast_csv if fmt == "csv" else fast_json)(f, limit)
    except OSError:
        return None


def fast_csv(stream: BinaryIO, limit: int) -> np.ndarray | None:
    """Rows of numbers as orjson reads them (each line made a JSON array); failing that, as
    ``np.loadtxt`` reads them (``+1``, ``.5``, ``1.``, ``-0``, blank lines); else None."""
    orjson = _orjson()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    rows = _Rows(size)
    try:
        for piece, last in _pieces(stream, limit, _CSV_BYTES, b"\n", longest=LINE):
            if b"\r" in piece:
                piece = piece.replace(b"\r\n", b"\n")
                if b"\r" in piece:  # a lone carriage return ends a line too: np.loadtxt knows
                    raise _Unsure
            body = piece.rstrip(_SPACE) if last else piece[:-1]
            if not body:
                continue
            block = np.array(orjson.loads(b"[[" + body.replace(b"\n", b"],[") + b"]]"), dtype=np.float64)
            if not block.all() and (body.endswith(b"-0") or any(z in body for z in _NEGATIVE_ZERO)):
                raise _Unsure
            rows.add(block, len(piece))
        return rows.whole()
    except (_Unsure, ValueError, OverflowError):  # orjson's JSONDecodeError is a ValueError
        pass
    del rows
    return _loadtxt(stream, limit)


def _loadtxt(stream: BinaryIO, limit: int) -> np.ndarray | None:
    stream.seek(0)
    if stream.read(len(_BOM)) != _BOM:
        stream.seek(0)
    text = io.TextIOWrapper(io.BufferedReader(_Only(stream, limit, _CSV_BYTES), PIECE), encoding="ascii")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": None says it
            arr = np.loadtxt(text, delimiter=",", comments=None, ndmin=2, dtype=np.float64)
    except (_Unsure, ValueError):
        return None
    finally:
        text.detach()  # the stream is the caller's to close
    return arr if arr.size and _finite(arr) else None


def _finite(a: np.ndarray) -> bool:
    """Whether every number is finite, without a boolean array as large as ``a``: a NaN or an
    infinity makes the sum NaN or infinite, so only a sum that overflows needs a closer look."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(a)) or np.isfinite(a).all())


class _Only(io.RawIOBase):
    """``stream``, read only so far as it holds the ``allowed`` bytes and ``limit`` in all."""

    def __init__(self, stream: BinaryIO, limit: int, allowed: bytes):
        super().__init__()
        self.stream, self.left, self.allowed = stream, limit, allowed

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.stream.readinto(b)  # type: ignore[attr-defined]
        if n:
            self.left -= n
            if self.left < 0 or bytes(memoryview(b)[:n]).translate(None, self.allowed):
                raise _Unsure
        return n


def fast_json(stream: BinaryIO, limit: int) -> np.ndarray | None:
    """A JSON array of numbers (1-D) or of rows of numbers (2-D), or None."""
    orjson = _orjson()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    rows = _Rows(size)
    try:
        for n, (piece, last) in enumerate(_pieces(stream, limit, _JSON_BYTES, b"]")):
            body = piece.strip(_SPACE)
            if n == 0:  # the opening bracket, and the kind of array that follows it
                if not body.startswith(b"["):
                    raise _Unsure
                body = body[1:].lstrip(_SPACE)
                if not body.startswith(b"[") and not last:  # 1-D, or nested in some odd way
                    raise _Unsure
            elif body.startswith(b","):  # rows go on where the last piece stopped
                body = body[1:]
            elif not (last and body == b"]"):
                raise _Unsure
            if last:  # the closing bracket
                if not body.endswith(b"]"):
                    raise _Unsure
                body = body[:-1]
            if not body.strip(_SPACE):
                if n == 0 or piece.strip(_SPACE) != b"]":
                    raise _Unsure  # [] or a comma before the closing bracket
                continue
            block = np.array(orjson.loads(b"[" + body + b"]"), dtype=np.float64)
            if block.ndim > 2 or (n and block.ndim != 2):
                raise _Unsure
            rows.add(block, len(piece))
        return rows.whole()
    except (_Unsure, ValueError, OverflowError):
        return None


def _pieces(
    stream: BinaryIO, limit: int, allowed: bytes, cut: bytes, longest: int | None = None
) -> Iterator[tuple[bytes, bool]]:
    """The stream in pieces of about :data:`PIECE` bytes, each ending just after a ``cut`` byte
    (the last piece: whatever is left), with whether it is the last; :class:`_Unsure` at a byte
    not ``allowed``, past ``limit`` bytes, or when ``longest`` bytes go by without a ``cut``."""
    held: list[bytes] = []
    chunk = stream.read(PIECE)
    if chunk.startswith(_BOM):
        chunk = chunk[len(_BOM) :] or stream.read(PIECE)
    size = 0
    while chunk:
        size += len(chunk)
        if size > limit or chunk.translate(None, allowed):
            raise _Unsure
        following = stream.read(PIECE)  # read ahead: the last piece is the one that ends the text
        k = chunk.rfind(cut) if following else -1
        if k < 0:
            held.append(chunk)
            if longest is not None and following and sum(map(len, held)) > longest:
                raise _Unsure
        else:
            held.append(chunk[: k + 1])
            yield b"".join(held), False
            held = [chunk[k + 1 :]]
        chunk = following
    yield b"".join(held), True


class _Rows:
    """Blocks of rows gathered into one array that grows in place, so the whole is held once.

    The first block and the size of the text give an estimate of the rows to come; the array is
    allocated for them (pages not written are never touched) and cut to size at the end.
    """

    def __init__(self, text_bytes: int):
        self.text_bytes = text_bytes
        self.arr: np.ndarray | None = None
        self.count = 0

    def add(self, block: np.ndarray, block_bytes: int) -> None:
        if self.arr is None:
            guess = len(block) * self.text_bytes // max(1, block_bytes) * 21 // 20 + 1
            self.arr = np.empty((max(guess, len(block)), *block.shape[1:]))
        elif block.shape[1:] != self.arr.shape[1:]:
            raise _Unsure  # a ragged row between pieces
        if block.ndim == 2 and block.shape[1] == 0:
            raise _Unsure
        end = self.count + len(block)
        if end > len(self.arr):
            self.arr.resize((max(end, len(self.arr) * 3 // 2), *self.arr.shape[1:]), refcheck=False)
        self.arr[self.count : end] = block
        self.count = end

    def whole(self) -> np.ndarray | None:
        if self.arr is None or not self.count:
            return None
        if self.count < len(self.arr) * 9 // 10:  # an estimate far off: give the spare rows back
            self.arr.resize((self.count, *self.arr.shape[1:]), refcheck=False)
        # else the rows as a view: cutting a few spare rows off in place may copy the whole array
        # (numpy 2.5's resize did: twice the array at the peak), which is worth more than they are
        whole = self.arr[: self.count]
        return whole if _finite(whole) else None


def fast_document(data: bytes) -> Any:
    """A JSON document orjson may read for :func:`json_document` (a layer bundle, say), or None.

    orjson keeps the last of two equal keys; here each key's two quotes are counted, so a key
    given twice (or any string at all) sends the document to the careful reader.
    """
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    if body.translate(None, _BUNDLE_BYTES):
        return None
    try:
        obj = _orjson().loads(body)
    except ValueError:
        return None
    keys = len(obj) if isinstance(obj, dict) else 0
    if isinstance(obj, (dict, list)) and body.count(b'"') == 2 * keys:
        return obj
    return None


# ---------------------------------------------------------------- writing

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
    orjson = _orjson()
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
        if isinstance(value, np.ndarray) and _fast(value) and _finite(value):
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
            if not _finite(value):
                raise _Unsure
            return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))
        if isinstance(value, (np.ndarray, np.generic)):
            value = _plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise _Unsure
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    orjson = _orjson()
    try:
        return orjson.dumps(plain(fields), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
    except (_Unsure, TypeError):  # orjson's JSONEncodeError is a TypeError
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
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue()


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
    yield csv_text([], list(columns)).encode()
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
