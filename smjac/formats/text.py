"""JSON and CSV: strict readers (every number finite unless asked, no ragged rows, no duplicate
keys) and writers whose numbers read back bit for bit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ..errors import LoadError

if TYPE_CHECKING:
    pass
from .document import Document

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")


def json_document(data: bytes, label: str, finite: bool = True) -> Any:
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


def _check_json_numbers(obj: list[Any], label: str) -> None:
    stack: list[Any] = [obj]
    while stack:  # iterative, so a deeply nested document cannot exhaust the call stack
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise LoadError(f"{label}: expected numbers, found {json_kind(item)} ({json.dumps(item)[:40]})")


def _special(cell: str) -> bool:
    """NaN or an infinity as CSV writers spell it (nan, inf, -Infinity, any case)."""
    return cell.lower().lstrip("+-") in ("nan", "inf", "infinity")


def parse_csv(data: bytes, label: str, finite: bool = True) -> np.ndarray:
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


def to_json(doc: Document) -> str:
    """One JSON object; floats as shortest round-trip text, never NaN."""
    return json.dumps(_plain(doc.fields), allow_nan=False) + "\n"


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


def to_csv(doc: Document) -> str:
    """CSV text: the matrix without a header (so it loads back), or a table with one.

    A stack of matrices (N × K × C) is written as N·K rows, sample after sample.
    """
    if doc.matrix is not None:
        m = np.asarray(doc.fields[doc.matrix])
        m = m.reshape(-1, m.shape[-1]) if m.ndim > 2 else np.atleast_2d(m)
        return csv_text(plain_floats(m))
    if doc.columns:
        columns = (plain_floats(np.asarray(c)) for c in doc.columns.values())
        return csv_text(zip(*columns, strict=True), list(doc.columns))
    header = list(doc.records[0]) if doc.records else []
    return csv_text(([r[k] for k in header] for r in doc.records), header)


def stream_csv(
    out: BinaryIO, blocks: Iterable[np.ndarray], *, progress: Callable[[int], None] | None = None
) -> None:
    """Write row blocks to ``out`` as CSV lines, one block at a time: the text :func:`to_csv`
    gives for the whole, in the memory of one block."""
    for block in blocks:
        out.write(csv_text(plain_floats(block)).encode())
        if progress:
            progress(block.nbytes)
