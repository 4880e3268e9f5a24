"""Load matrices from JSON, CSV and NPY files (or stdin) and write results, exactly and atomically.

Loaders are strict: numbers only, finite, rectangular. Writers print floats with Python's shortest
round-trip ``repr``, so every number read back is the number computed; files are written to a
temporary name in the target folder, synced and renamed, so a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import stat
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

import numpy as np

from .errors import LoadError, OutputError
from .maths import Layer, all_finite, make_layer

if TYPE_CHECKING:
    from .checkpoints import Checkpoint

STDIN = "-"
DEFAULT_MAX_INPUT_BYTES = 2**30
NPY_MAGIC = b"\x93NUMPY"
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")


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


# ---------------------------------------------------------------- reading


def read_bytes(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_INPUT_BYTES, stdin: BinaryIO | None = None
) -> bytes:
    """The raw bytes of ``path`` (``-`` is stdin), refusing more than ``max_bytes`` before reading."""
    if str(path) == STDIN:
        if stdin is None and sys.stdin is None:
            raise LoadError("-: stdin is closed; pipe a matrix in (smjac ... -x - < x.json)")
        stream = stdin if stdin is not None else sys.stdin.buffer
        if stream.isatty():
            raise LoadError("-: stdin is a terminal; pipe a matrix in (smjac ... -x - < x.json)")
        data = _read_upto(stream, max_bytes + 1)
        label = "stdin"
    else:
        label = str(path)
        with reading(label):
            size = os.stat(path).st_size
            if size > max_bytes:
                raise LoadError(_too_big(label, size, max_bytes))
            with open(path, "rb") as f:
                data = _read_upto(f, max_bytes + 1)
    if len(data) > max_bytes:
        raise LoadError(_too_big(label, len(data), max_bytes))
    if not data.strip():
        raise LoadError(f"{label}: is empty")
    return data


@contextlib.contextmanager
def reading(label: str) -> Iterator[None]:
    """The one wording of a file that cannot be opened or read, for every reader."""
    try:
        yield
    except IsADirectoryError:
        raise LoadError(f"{label}: is a directory, not a file") from None
    except FileNotFoundError:
        raise LoadError(f"{label}: no such file") from None
    except PermissionError:
        raise LoadError(f"{label}: permission denied") from None
    except OSError as e:
        raise LoadError(f"{label}: cannot read it ({e.strerror or e})") from None


def _read_upto(stream: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` bytes, read in pieces: ``read(limit)`` would first set aside a buffer of
    the whole limit, which a large cap (--max-input-bytes 64G) makes fail for a tiny file."""
    parts, size = [], 0
    while size < limit:
        part = stream.read(min(limit - size, 2**24))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _too_big(label: str, size: int, cap: int) -> str:
    return (
        f"{label}: is over the input size cap of {cap:,} bytes ({size:,} bytes or more); "
        "raise the cap with --max-input-bytes"
    )


def sniff(data: bytes) -> Format:
    """Guess the format of bytes from stdin: NPY by its magic, JSON by a leading bracket, else CSV."""
    if data.startswith(NPY_MAGIC):
        return Format.NPY
    if data.startswith(b"PK"):
        return Format.NPZ
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return Format.JSON if head in (b"[", b"{") else Format.CSV


JSON_BYTES_PER_BYTE = 13  # measured: a 720 MB JSON matrix took 9.2 GB to parse (a Python float per number)


def _json_budget(size: int, label: str, max_memory: int | None) -> None:
    """Refuse, before parsing, JSON whose parse would outgrow the memory budget."""
    budget = default_memory_budget() if max_memory is None else max_memory
    need = size * JSON_BYTES_PER_BYTE
    if need > budget:
        raise LoadError(
            f"{label}: parsing {format_size(size)} of JSON takes about {format_size(need)} (a Python object per "
            f"number), over the memory budget of {format_size(budget)} (--max-memory); save it as .npy "
            "(numpy.save) instead, which loads in its own size"
        )


def parse(
    data: bytes, fmt: Format, label: str, *, max_memory: int | None = None, finite: bool = True
) -> np.ndarray:
    """Turn bytes of a known format into a float array, finite; ``label`` names it in errors.

    ``max_memory`` (bytes; :func:`default_memory_budget` when None) bounds what parsing may take:
    JSON is refused before it is parsed when its estimate is over it. ``finite=False`` keeps NaN
    and infinities (JSON's NaN and Infinity, CSV's nan and inf) instead of refusing them: for a
    user's own answer, where a NaN is what is to be found.
    """
    if fmt is Format.JSON:
        _json_budget(len(data), label, max_memory)
        arr = _parse_json(data, label, finite)
    elif fmt is Format.CSV:
        arr = _parse_csv(data, label, finite)
    elif fmt is Format.NPY:
        arr = _parse_npy(data, label)
    else:
        raise LoadError(f"{label}: an .npz bundle holds several arrays; give it with --layer")
    if arr.size == 0:
        raise LoadError(f"{label}: holds no numbers (shape {arr.shape})")
    if finite and not all_finite(arr):
        raise LoadError(f"{label}: holds NaN or infinite values; every number must be finite")
    return arr


@contextlib.contextmanager
def _no_memory_error(label: str) -> Iterator[None]:
    """A MemoryError while loading becomes one LoadError line, not a traceback."""
    try:
        yield
    except MemoryError:
        raise LoadError(
            f"{label}: ran out of memory while loading it; free some memory, lower --max-memory so smjac "
            "refuses before it starts, or give the matrix as .npy"
        ) from None


def load_array(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    max_memory: int | None = None,
    stdin: BinaryIO | None = None,
    finite: bool = True,
) -> np.ndarray:
    """Load one matrix or vector from a .json, .csv or .npy file, or from stdin (``-``).

    The suffix names the format; stdin and a path with no suffix (such as the shell's ``<(...)``)
    are sniffed from their first bytes. ``max_memory`` and ``finite`` are :func:`parse`'s.
    """
    label = "stdin" if str(path) == STDIN else str(path)
    with _no_memory_error(label):
        fmt = None if label == "stdin" or not Path(path).suffix else Format.from_path(path)
        data = read_bytes(path, max_bytes=max_bytes, stdin=stdin)
        return parse(data, fmt or sniff(data), label, max_memory=max_memory, finite=finite)


def map_npy(path: str | Path) -> np.ndarray:
    """Memory-map an x in an .npy file read-only, for inputs larger than the input cap.

    :func:`open_npy`, for a batch (N×n): nothing is read beyond the header here.
    :func:`smjac.maths.forward_chunks` and :func:`~smjac.maths.grad_chunks` read the rows a chunk at
    a time, check each chunk's numbers are finite, and hand its pages back when done.
    """
    x = open_npy(path)
    if x.ndim != 2:
        raise LoadError(f"{path}: a memory-mapped x must be a batch (N×n) of numbers, not shape {x.shape}")
    return x


LAYER_KEYS = ("W", "x", "b")


def load_bundle(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    max_memory: int | None = None,
    stdin: BinaryIO | None = None,
) -> dict[str, np.ndarray]:
    """Load a layer bundled in one file: an .npz archive or a JSON object holding W, x (and b).

    Each array is read as strictly as a file of its own; an .npz member is read with the same
    NPY reader, so nothing in it is ever unpickled. An .npz member's declared size, and what it
    widens to as float64, are held against ``max_memory`` (:func:`default_memory_budget` when
    None) before it is inflated; a key given twice is refused.
    """
    label = "stdin" if str(path) == STDIN else str(path)
    with _no_memory_error(label):
        return _load_bundle(path, label, max_bytes, max_memory, stdin)


def _load_bundle(
    path: str | Path, label: str, max_bytes: int, max_memory: int | None, stdin: BinaryIO | None
) -> dict[str, np.ndarray]:
    data = read_bytes(path, max_bytes=max_bytes, stdin=stdin)
    fmt = sniff(data) if label == "stdin" or not Path(path).suffix else Format.from_path(path)
    found: dict[str, np.ndarray] = {}
    if fmt is Format.NPZ:
        import zipfile  # only for bundles: it brings bz2, lzma and shutil along

        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            infos = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            raise LoadError(f"{label}: is not a valid .npz archive ({e})") from None
        members: dict[str, Any] = {}
        for info in infos:
            key = Path(info.filename).stem
            if key in members:
                raise LoadError(
                    f"{label}: holds {key!r} twice ({members[key].filename}, {info.filename}); keep one"
                )
            members[key] = info
        _check_keys(members, label)
        budget = default_memory_budget() if max_memory is None else max_memory
        for key, info in members.items():
            name = f"{label}[{key}]"
            if info.file_size > max_bytes:
                raise LoadError(_too_big(name, info.file_size, max_bytes))
            if info.flag_bits & 0x1:
                raise LoadError(f"{name}: is encrypted; smjac reads only plain .npz members")
            try:
                with archive.open(info) as member:
                    head = member.read(4096)  # the NPY header, to know the widening before inflating
                widened = _npy_float64_bytes(head, name)
                if info.file_size + widened > budget:
                    raise LoadError(
                        f"{name}: inflates to {format_size(info.file_size)}, {format_size(widened)} more as "
                        f"float64, over the memory budget of {format_size(budget)} (--max-memory)"
                    )
                raw = archive.read(info)
            except (
                zipfile.BadZipFile,
                OSError,
                ValueError,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as e:
                if isinstance(e, LoadError):
                    raise
                raise LoadError(f"{name}: cannot be read ({e})") from None
            found[key] = parse(raw, Format.NPY, name)
    elif fmt is Format.JSON:
        _json_budget(len(data), label, max_memory)
        obj = _json_document(data, label)
        if not isinstance(obj, dict):
            raise LoadError(f"{label}: a layer bundle is a JSON object with W and x, not {_json_kind(obj)}")
        _check_keys(obj, label)
        for key, value in obj.items():
            if not isinstance(value, list):
                raise LoadError(f"{label}[{key}]: expected an array of numbers, found {_json_kind(value)}")
            found[key] = _json_array(value, f"{label}[{key}]")
            if found[key].size == 0:
                raise LoadError(f"{label}[{key}]: holds no numbers")
    else:
        raise LoadError(f"{label}: a layer bundle is .npz or a JSON object, not .{fmt.value}")
    return found


def _check_keys(keys: Mapping[str, Any], label: str) -> None:
    unknown = sorted(set(keys) - set(LAYER_KEYS))
    if unknown:
        raise LoadError(
            f"{label}: holds {', '.join(map(repr, unknown))}; a layer bundle holds W, x and b only"
        )
    missing = [k for k in ("W", "x") if k not in keys]
    if missing:
        raise LoadError(f"{label}: has no {' or '.join(missing)}; a layer bundle holds W, x and b")


def load_layer(
    W: str | Path | None,
    x: str | Path | None,
    b: str | Path | None = None,
    *,
    layer: str | Path | Checkpoint | None = None,
    key: str | None = None,
    layout: str | None = None,
    function: str = "softmax",
    temperature: float = 1.0,
    dtype: str = "float64",
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    max_memory: int | None = None,
    stdin: BinaryIO | None = None,
) -> Layer:
    """Load W, x (and b) from their files, or from a bundle, as a checked :class:`~smjac.maths.Layer`.

    A file given on its own takes the place of the bundle's array. Errors name the files. The
    layer is checked here, once: the ``layer_*`` functions of :mod:`smjac.maths` take it as it is.
    ``max_memory`` (bytes; :func:`default_memory_budget` when None) is the budget each loader
    holds a file's parse to before it starts (``--max-memory``).

    ``layer`` may be a model checkpoint (``.safetensors``, ``.keras``, ``.h5``), or one already
    read by :func:`smjac.checkpoints.read` (whose notes and tensor names the caller then keeps);
    ``key`` picks its layer, and x comes from its own file. ``layout`` None means the file's own:
    the checkpoint's framework's, else in-out.
    """
    paths = [p for p in (W, x, b, layer) if isinstance(p, (str, Path))]
    if sum(str(p) == STDIN for p in paths) > 1:
        raise LoadError("- given twice: only one input can come from stdin")
    arrays: dict[str, np.ndarray] = {}
    names = {k: k for k in LAYER_KEYS}
    ckpt = _checkpoint(layer, key, max_bytes, max_memory)
    if ckpt is not None:
        arrays = {"W": ckpt.W} if ckpt.b is None else {"W": ckpt.W, "b": ckpt.b}
        names["W"], names["b"] = ckpt.names()
        layout = layout or ckpt.layout
    elif isinstance(layer, (str, Path)):
        arrays = load_bundle(layer, max_bytes=max_bytes, max_memory=max_memory, stdin=stdin)
        label = "stdin" if str(layer) == STDIN else str(layer)
        names = {k: f"{label}[{k}]" for k in LAYER_KEYS}
    for k, path in zip(LAYER_KEYS, (W, x, b), strict=True):
        if isinstance(path, np.ndarray):  # already read (the first row of a memory-mapped x, say)
            arrays[k] = np.asarray(path, dtype=np.float64)
        elif path is not None:
            arrays[k] = load_array(path, max_bytes=max_bytes, max_memory=max_memory, stdin=stdin)
            names[k] = "stdin" if str(path) == STDIN else str(path)
    missing = [f"-{key}" for key in ("W", "x") if key not in arrays]
    if missing:
        raise LoadError(f"missing {' and '.join(missing)}: give each as a file, or both with --layer FILE")
    with _no_memory_error(names["W"]):
        cast = {k: _cast(v, dtype, names[k]) for k, v in arrays.items()}
    return make_layer(
        cast["W"],
        cast["x"],
        cast.get("b"),
        layout=layout or "in-out",
        function=function,
        temperature=temperature,
        names=(names["W"], names["x"], names["b"]),
    )


def _cast(a: np.ndarray, dtype: str, label: str) -> np.ndarray:
    """``a`` in ``dtype``, refusing a value the cast turns infinite (1e39 in float32).

    The loaders have made sure every number is finite, so an infinity here is the cast's own
    doing, and the message says so rather than blame the file.
    """
    with np.errstate(over="ignore"):  # numpy would warn on stderr; the check below says it better
        out = a.astype(dtype, copy=False)
    if not all_finite(out):
        limit = float(np.finfo(out.dtype).max)
        largest = float(a.flat[int(np.argmax(np.abs(a)))])
        raise LoadError(
            f"{label}: {largest:.6g} overflows {out.dtype} when cast for --dtype {dtype} (its largest value "
            f"is {limit:.3g}); use --dtype float64 or scale it down"
        )
    return out


def _checkpoint(
    layer: str | Path | Checkpoint | None, key: str | None, max_bytes: int, max_memory: int | None
) -> Checkpoint | None:
    """The checkpoint ``layer`` names or is, read; None for a bundle (or no layer)."""
    from . import checkpoints  # light: its readers import safetensors or h5py only when used

    if isinstance(layer, checkpoints.Checkpoint):
        return layer
    if layer is None or str(layer) == STDIN or checkpoints.kind(layer) is None:
        if key is not None:
            raise LoadError(f"--key {key}: picks a layer in a model checkpoint (--layer model.safetensors)")
        return None
    return checkpoints.read(layer, key=key, max_bytes=max_bytes, memory_budget=max_memory)


def _json_document(data: bytes, label: str, finite: bool = True) -> Any:
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


def _parse_json(data: bytes, label: str, finite: bool = True) -> np.ndarray:
    obj = _json_document(data, label, finite)
    if not isinstance(obj, list):
        raise LoadError(f"{label}: expected an array of numbers, found {_json_kind(obj)}")
    return _json_array(obj, label)


def _json_array(obj: list[Any], label: str) -> np.ndarray:
    _check_json_numbers(obj, label)
    try:
        return np.array(obj, dtype=np.float64)
    except OverflowError:
        raise LoadError(f"{label}: holds an integer too large for a 64-bit float") from None
    except ValueError:
        raise LoadError(f"{label}: rows have different lengths (a matrix must be rectangular)") from None


def _json_kind(obj: Any) -> str:
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
            raise LoadError(f"{label}: expected numbers, found {_json_kind(item)} ({json.dumps(item)[:40]})")


def _special(cell: str) -> bool:
    """NaN or an infinity as CSV writers spell it (nan, inf, -Infinity, any case)."""
    return cell.lower().lstrip("+-") in ("nan", "inf", "infinity")


def _parse_csv(data: bytes, label: str, finite: bool = True) -> np.ndarray:
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


def _check_npy_shape(shape: Any, label: str) -> None:
    """A shape is a tuple of non-negative ints; a header may claim anything (``(-1, -1)``, ``(True, 5)``)."""
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise LoadError(f"{label}: is not a valid NPY file (its header gives the shape {shape!r})")


def _npy_float64_bytes(head: bytes, label: str) -> int:
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


def _npy_header(f: BinaryIO, label: str) -> tuple[tuple[int, ...], bool, np.dtype]:
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


def _npy_size_check(label: str, shape: tuple[int, ...], dtype: np.dtype, available: int) -> int:
    count = math.prod(shape)
    expected = count * dtype.itemsize
    if available != expected:
        what = "is truncated" if available < expected else "has bytes after its data"
        raise LoadError(
            f"{label}: {what}: its header says shape {shape} of {dtype} ({expected:,} bytes) "
            f"but {available:,} bytes follow"
        )
    return count


def _parse_npy(data: bytes, label: str) -> np.ndarray:
    """Read an NPY file's header, check it against the bytes that follow, then view the numbers.

    ``np.load`` is not used: it would unpickle an object array if asked, it raises whatever its
    header parser raises on a mangled header, and it allocates whatever shape the header claims
    before finding the data short.
    """
    if not data.startswith(NPY_MAGIC):
        raise LoadError(f"{label}: is not an NPY file (no NPY header)")
    buf = io.BytesIO(data)
    shape, fortran, dtype = _npy_header(buf, label)
    offset = buf.tell()
    count = _npy_size_check(label, shape, dtype, len(data) - offset)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C").astype(np.float64)


def load_answer(path: str | Path, *, max_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> np.ndarray:
    """A user's own derivative, for ``smjac verify``: a .npy memory-mapped (any size, its dtype
    kept), anything else read as strictly as every input but for NaN and infinities, which are
    kept in every format: finding them is the point."""
    if str(path) != STDIN and Path(path).suffix.lower() == ".npy":
        return open_npy(path)
    return load_array(path, max_bytes=max_bytes, finite=False)


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
        shape, fortran, dtype = _npy_header(f, label)
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
    if _npy_size_check(label, shape, dtype, size - offset) == 0:
        raise LoadError(f"{label}: holds no numbers (shape {shape})")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


# ---------------------------------------------------------------- writing


class Document(NamedTuple):
    """A command's result, ready to be written in any format.

    ``fields`` is the JSON object (arrays allowed). ``matrix`` names the one field a ``.npy`` or a
    plain ``.csv`` holds. Without one, ``columns`` (name → 1-D array, all of one length) or
    ``records`` (rows of scalars) make a CSV with a header. NPZ holds every array and number in
    ``fields``.
    """

    fields: Mapping[str, Any]
    matrix: str | None = None
    columns: Mapping[str, np.ndarray] = MappingProxyType({})
    records: Sequence[Mapping[str, Any]] = ()


def _floats(a: np.ndarray) -> Any:
    """Nested lists of Python floats that print as the shortest text giving back each number.

    float64 values print that way already; a float32 value goes through numpy's shortest float32
    text (0.1, not 0.10000000149011612), which reads back as the same float32.
    """
    if a.dtype.kind == "f" and a.dtype.itemsize < 8:
        return a.astype(str).astype(np.float64).tolist()
    return a.tolist()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _floats(value)
    if isinstance(value, np.generic):
        return _floats(np.asarray(value))
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


def _csv_text(rows: Iterable[Iterable[Any]], header: Sequence[str] | None = None) -> str:
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
        return _csv_text(_floats(m))
    if doc.columns:
        columns = (_floats(np.asarray(c)) for c in doc.columns.values())
        return _csv_text(zip(*columns, strict=True), list(doc.columns))
    header = list(doc.records[0]) if doc.records else []
    return _csv_text(([r[k] for k in header] for r in doc.records), header)


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


def check_writable(path: str | Path, *, force: bool = False) -> None:
    """Refuse, before any work, a path whose folder is missing, that is a folder, or that exists
    (unless ``force``). :func:`write_atomic` checks again when it writes."""
    path = Path(path)
    try:
        if not path.parent.is_dir():
            raise OutputError(f"{path}: folder {path.parent} does not exist")
        if path.is_dir():
            raise OutputError(f"{path}: is a directory")
        exists = path.exists()
    except OSError as e:  # a name too long for the file system, say
        name = str(path) if len(str(path)) <= 60 else f"{str(path)[:60]}…"
        raise OutputError(f"{name}: cannot write it ({e.strerror or e})") from None
    if exists and not force:
        raise OutputError(f"{path}: exists; add --force to replace it")


def write_atomic(path: str | Path, data: bytes | Callable[[BinaryIO], None], *, force: bool = False) -> None:
    """Write ``data`` to ``path`` all at once or not at all.

    ``data`` is the bytes, or a function that writes them to the open file (for a result too
    large to hold: it streams, and memory stays flat).

    The bytes go to a temporary file in the same folder, are flushed and synced, and then take the
    target's name in one rename. Without ``force`` an existing file is never replaced, even one that
    appears while writing.
    """
    import tempfile  # here, not at the top: most runs write no file, and start-up time counts

    path = Path(path)
    folder = path.parent
    check_writable(path, force=force)
    tmp = None
    try:
        with _signals_held():  # no stop signal between the file's creation and its name's keeping
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
            except OSError as e:
                raise OutputError(f"{path}: cannot write in {folder} ({e.strerror or e})") from None
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _take_mode(tmp, path, force)
        if force:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write it ({e.strerror or e})") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGTERM, SIGHUP and SIGINT for a moment: they arrive, and act, right after."""
    import signal

    held = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # no sigmask here, or not the main thread's to set
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _link_no_clobber(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)  # fails if path exists: no window in which another file is replaced
    except FileExistsError:
        raise OutputError(f"{path}: exists; add --force to replace it") from None
    except OSError:
        if path.exists():  # a file system without hard links: check, then rename
            raise OutputError(f"{path}: exists; add --force to replace it") from None
        os.replace(tmp, path)


def _take_mode(tmp: str, path: Path, force: bool) -> None:
    """Give the new file the mode a user expects: a replaced file's own mode and owner (where
    allowed), so --force never widens who can read it; else the umask's, as a new file gets.
    mkstemp makes every file 0600."""
    old = None
    if force:
        with contextlib.suppress(OSError):
            old = os.stat(path)
    if old is None:
        os.chmod(tmp, 0o666 & ~_umask())
        return
    os.chmod(tmp, stat.S_IMODE(old.st_mode))
    with contextlib.suppress(OSError):  # only root may give a file away
        os.chown(tmp, old.st_uid, old.st_gid)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save(doc: Document, path: str | Path, *, force: bool = False, what: str = "this result") -> Format:
    """Write ``doc`` to ``path`` in the format its suffix names; return that format."""
    try:
        fmt = Format.from_path(path)
    except LoadError as e:
        raise OutputError(str(e)) from None
    write_atomic(path, encode(doc, fmt, what), force=force)
    return fmt


def write_blocks(
    path: str | Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    blocks: Iterator[np.ndarray],
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Format:
    """Stream an array given as consecutive row blocks to a .npy or .csv file, atomically.

    The .npy header comes from ``numpy.lib.format``; then each block's bytes follow, so only one
    block is ever in memory (mapping the whole output instead would count all of it as resident).
    A .csv gets one line per row, without a header, as :func:`to_csv` writes.
    """
    try:
        fmt = Format.from_path(path)
    except LoadError as e:
        raise OutputError(str(e)) from None
    if fmt not in (Format.NPY, Format.CSV):
        raise OutputError(f"{path}: a result this large is written as .npy or .csv, not .{fmt.value}")

    from numpy.lib import format as npformat

    def write(f: BinaryIO) -> None:
        if fmt is Format.NPY:
            header = {
                "descr": npformat.dtype_to_descr(np.dtype(dtype)),
                "fortran_order": False,
                "shape": shape,
            }
            npformat.write_array_header_1_0(f, header)
            for block in blocks:
                data = np.ascontiguousarray(block)
                f.write(data.data.cast("B"))
                if progress:
                    progress(data.nbytes)
        else:
            stream_csv(f, blocks, progress=progress)

    write_atomic(path, write, force=force)
    return fmt


def stream_csv(
    out: BinaryIO, blocks: Iterable[np.ndarray], *, progress: Callable[[int], None] | None = None
) -> None:
    """Write row blocks to ``out`` as CSV lines, one block at a time: the text :func:`to_csv`
    gives for the whole, in the memory of one block."""
    for block in blocks:
        out.write(_csv_text(_floats(block)).encode())
        if progress:
            progress(block.nbytes)


_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
MAX_SIZE = 2**62  # the largest size smjac takes (4 EiB): past any machine, short of int64 overflow


def parse_size(text: str) -> int:
    """``"4G"``, ``"512MiB"``, ``"1.5g"`` or ``"1000000"`` as a number of bytes (units of 1024).

    >>> parse_size("1.5k"), parse_size("2G")
    (1536, 2147483648)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not m:
        raise ValueError(f"{text!r} is not a size; write it as 4G, 512M or a number of bytes")
    if len(m[1]) > 40:
        raise ValueError(f"{text[:20]!r}… is out of range: a size is 1 byte to 4 EiB (2^62 bytes)")
    whole = "." not in m[1]  # exact for a whole number of any length; float for 1.5G
    size = int(m[1]) * _UNITS[m[2]] if whole else int(float(m[1]) * _UNITS[m[2]])
    if not 0 < size <= MAX_SIZE:
        raise ValueError(f"{text!r} is out of range: a size is 1 byte to 4 EiB (2^62 bytes)")
    return size


def format_size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def available_memory() -> int | None:
    """Bytes of memory the system could give now (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_budget() -> int:
    """Half the memory available now; 2 GiB when that cannot be told."""
    available = available_memory()
    return available // 2 if available else 2 * 2**30
