"""Reading JSON and CSV: strict readers (every number finite unless asked, no ragged rows, no
duplicate keys), fast in the common case.

:func:`read_text` takes a file of plain numbers a piece at a time, so the text is never held whole
(CSV through orjson, each line made a JSON array, else through ``np.loadtxt``; JSON through
orjson, a block of rows at a time). It hands back None at the first thing it is not sure of: a
header, a ragged row, NaN, a byte outside the few a number is made of, anything else. The careful
readers, :func:`careful_csv` and :func:`careful_document`, then read the whole file and accept it
or refuse it with a message that names the file and the line. A fast reader never accepts what
the careful one refuses, and where both accept, the bits are the same (``tests/test_text.py``
holds them to that). orjson is imported where it is used: alone it imports uuid and dataclasses
(13 ms), which ``import smjac`` need not pay; so is ``csv``, which only :func:`careful_csv` uses
(``json`` is not: orjson imports it).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import LoadError
from ..maths.numeric import all_finite

_LINE_END = re.compile(r"\r\n?|\n")  # as csv and np.loadtxt end lines
# A number as a person types it, in files and options alike: ASCII digits (float() and int() also
# read ٣ as 3 and 1_0 as 10, which a person does not mean), a sign, a point, an exponent.
WHOLE = r"[+-]?[0-9]+"
NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER = re.compile(NUMBER + r"\Z")
_CSV_SPACE = re.compile(r"[ \t]+")  # what stands between numbers in a file without commas


# ---------------------------------------------------------------- reading, careful


def json_document(data: bytes, label: str, finite: bool = True) -> Any:
    """A JSON document, read by orjson where :func:`fast_document` may, else by
    :func:`careful_document`."""
    fast = fast_document(data)
    return careful_document(data, label, finite) if fast is None else fast


def careful_document(data: bytes, label: str, finite: bool = True) -> Any:
    """A JSON document read by ``json``, refusing NaN and infinities (unless not ``finite``),
    numbers that overflow a float64, and a key given twice, with the line and column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LoadError(f"{label}: is not UTF-8 text, so not JSON") from None

    def at(token: str) -> str:
        """``LABEL: line L, column C: `` of the token, its first place (json refuses the first)."""
        pattern = rf'"(?:[^"\\]|\\.)*"|(?<![\w.+-]){re.escape(token)}(?![\w.])'  # a string is passed over
        found = next((m for m in re.finditer(pattern, text) if not m.group().startswith('"')), None)
        if found is None:
            return f"{label}: "
        start = found.start()
        return f"{label}: line {text.count(chr(10), 0, start) + 1}, column {start - text.rfind(chr(10), 0, start)}: "

    def refuse_constant(token: str) -> float:
        if not finite:
            return float(token)  # NaN, Infinity, -Infinity
        raise LoadError(f"{at(token)}{token} is not allowed; every number must be finite")

    def strict_float(token: str) -> float:
        value = float(token)
        if finite and math.isinf(value):
            shown = token if len(token) <= 40 else f"a number of {len(token):,} characters"
            raise LoadError(f"{at(token)}{shown} overflows a 64-bit float")
        return value

    def strict_int(token: str) -> int | float:
        digits = len(token.lstrip("-"))
        if digits > 309:  # past any float64 (and Python's 4300-digit limit on int(), a ValueError)
            raise LoadError(f"{at(token)}an integer of {digits:,} digits is too large for a 64-bit float")
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
            text,
            parse_constant=refuse_constant,
            parse_float=strict_float,
            parse_int=strict_int,
            object_pairs_hook=unique_keys,
        )
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
        raise LoadError(f"{label}: {_ragged(obj)} (a matrix must be rectangular)") from None


def _ragged(obj: list[Any]) -> str:
    """Which row of a JSON array breaks its shape, counted from 1 as a person counts lines."""
    first = obj[0] if obj else None
    for i, row in enumerate(obj, start=1):
        if isinstance(first, list) != isinstance(row, list):
            return f"row {i} is {'an array' if isinstance(row, list) else 'a number'} but row 1 is not"
        if isinstance(row, list) and len(row) != len(first):  # type: ignore[arg-type]
            return f"row {i} has {len(row)} values but row 1 has {len(first)}"  # type: ignore[arg-type]
    return "rows have different lengths"


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


MAX_DIMENSIONS = 3  # the deepest array smjac reads: a batch of Jacobians (N × K × …)


def _check_json_numbers(obj: list[Any], label: str) -> None:
    stack: list[tuple[Any, tuple[int, ...]]] = [(obj, ())]
    while stack:  # iterative, so a deeply nested document cannot exhaust the call stack
        item, where = stack.pop()
        if isinstance(item, list):
            if len(where) >= MAX_DIMENSIONS:  # numpy would stop at 64 with "rows have different lengths"
                raise LoadError(
                    f"{label}: is nested too deep (arrays in arrays past {MAX_DIMENSIONS} levels); smjac "
                    "reads a vector, a matrix or a stack of matrices"
                )
            if set(map(type, item)) <= _PLAIN_NUMBERS:  # a row of numbers, checked in C
                continue
            # pushed last first, so that the first in the file is looked at first
            stack.extend((item[i], (*where, i + 1)) for i in reversed(range(len(item))))
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            place = ", ".join(
                f"{axis} {i}"
                for axis, i in zip(("matrix", "row", "entry")[-len(where) :], where, strict=True)
            )
            raise LoadError(
                f"{label}: {place}: expected numbers, found {json_kind(item)} ({json.dumps(item)[:40]})"
            )


def _special(cell: str) -> bool:
    """NaN or an infinity as CSV writers spell it (nan, inf, -Infinity, any case; one sign at most)."""
    word = cell.lower()
    return (word[1:] if word[:1] in ("+", "-") else word) in ("nan", "inf", "infinity")


def parse_csv(data: bytes, label: str, finite: bool = True) -> np.ndarray:
    """A CSV matrix: :func:`fast_csv`'s, or :func:`careful_csv`'s (and its refusals)."""
    fast = fast_csv(io.BytesIO(data), len(data))
    return careful_csv(data, label, finite) if fast is None else fast


def careful_csv(data: bytes, label: str, finite: bool = True) -> np.ndarray:
    """Every line read by ``csv`` and every cell checked, so that a refusal names its line and column.

    A file without a comma is read with spaces and tabs between the numbers, as ``np.savetxt``
    writes them by default: it is data, not a header.
    """
    import csv

    try:
        text = data.decode("utf-8-sig")  # a byte-order mark from a spreadsheet is harmless
    except UnicodeDecodeError:
        raise LoadError(f"{label}: is not UTF-8 text, so not CSV") from None
    sep = "," if "," in text else " "  # no comma: numbers apart by spaces or tabs (np.savetxt's)
    try:
        if sep == ",":
            lines = list(csv.reader(io.StringIO(text, newline="")))
        else:
            lines = [_CSV_SPACE.split(line.strip(" \t")) for line in _LINE_END.split(text)]
    except csv.Error as e:  # a stray carriage return or NUL, say
        raise LoadError(f"{label}: is not valid CSV ({e})") from None
    rows: list[list[float]] = []
    for lineno, cells in enumerate(lines, start=1):
        # only what the docs call space (str.strip took a no-break space and \v too)
        cells = [c.strip(" \t") for c in cells]
        if cells in ([], [""]):  # a blank line; a line of empty cells (",,") is a row with no numbers
            continue
        numeric = any(_NUMBER.match(c) or (not finite and _special(c)) for c in cells)
        if not rows and not numeric and any(ch.isalpha() for c in cells for ch in c):  # words: a header
            raise LoadError(
                f"{label}: line {lineno} looks like a header ({sep.join(cells)[:40]!r}); remove it"
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
    path: str | Path, fmt: str, limit: int, *, opener: Callable[..., Any] = open, longest: int | None = None
) -> np.ndarray | None:
    """The numbers of a ``.csv`` or ``.json`` file (``fmt``), read fast and a piece at a time.

    None when the fast reader is not sure of the file: not a regular file, over ``limit`` bytes,
    unreadable (``opener`` fails), or not plain rows of finite numbers. The caller then reads it
    with the careful reader, which words what is wrong; nothing is refused here. ``longest``
    (JSON): the most bytes of one row, or of a whole vector, orjson may read at once, since it
    holds a Python float for each of their numbers.
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:  # a FIFO read here could not be read again
            return None
        with opener(path, "rb", buffering=0) as f:
            return fast_csv(f, limit) if fmt == "csv" else fast_json(f, limit, longest)
    except OSError:
        return None


def fast_csv(stream: BinaryIO, limit: int) -> np.ndarray | None:
    """Rows of numbers as orjson reads them (each line made a JSON array); failing that, as
    ``np.loadtxt`` reads them (``+1``, ``.5``, ``1.``, ``-0``, blank lines); else None."""
    import orjson

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
    arr = _loadtxt(stream, limit, ",")
    stream.seek(0)
    if arr is None and b"," not in stream.read(PIECE):  # numbers apart by spaces (np.savetxt's)
        arr = _loadtxt(stream, limit, None)
    return arr


def _loadtxt(stream: BinaryIO, limit: int, delimiter: str | None) -> np.ndarray | None:
    """The numbers as ``np.loadtxt`` reads them, apart by ``delimiter`` (None: by spaces and
    tabs, and then no comma is allowed: :func:`careful_csv` reads such a file so only)."""
    stream.seek(0)
    if stream.read(len(_BOM)) != _BOM:
        stream.seek(0)
    allowed = _CSV_BYTES if delimiter else _CSV_BYTES.replace(b",", b"")
    text = io.TextIOWrapper(io.BufferedReader(_Only(stream, limit, allowed), PIECE), encoding="ascii")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": None says it
            arr = np.loadtxt(text, delimiter=delimiter, comments=None, ndmin=2, dtype=np.float64)
    except (_Unsure, ValueError):
        return None
    finally:
        text.detach()  # the stream is the caller's to close
    return arr if arr.size and all_finite(arr) else None


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


def fast_json(stream: BinaryIO, limit: int, longest: int | None = None) -> np.ndarray | None:
    """A JSON array of numbers (1-D) or of rows of numbers (2-D), or None (also for a row, or a
    vector, of more than ``longest`` bytes)."""
    import orjson

    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    rows = _Rows(size)
    try:
        for n, (piece, last) in enumerate(_pieces(stream, limit, _JSON_BYTES, b"]", longest)):
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
        return whole if all_finite(whole) else None


def fast_document(data: bytes) -> Any:
    """A JSON document orjson may read for :func:`json_document` (a layer bundle, say), or None.

    orjson keeps the last of two equal keys; here each key's two quotes are counted, so a key
    given twice (or any string at all) sends the document to the careful reader.
    """
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    if body.translate(None, _BUNDLE_BYTES):
        return None
    try:
        import orjson

        obj = orjson.loads(body)
    except ValueError:
        return None
    keys = len(obj) if isinstance(obj, dict) else 0
    if isinstance(obj, (dict, list)) and body.count(b'"') == 2 * keys:
        return obj
    return None
