"""A layer, targets and answers from files, stdin or a checkpoint: read once, checked once.

Readers refuse before they allocate: the input cap (``max_bytes``) is applied to the bytes
on disk, the memory budget to what parsing will take. The formats themselves are in
:mod:`smjac.formats`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from .errors import InputError, LoadError, ShapeError
from .maths import Layer, all_finite, make_layer

if TYPE_CHECKING:
    from .formats.checkpoints import Checkpoint
    from .maths.layer import FunctionName, LayoutName
from .budget import DEFAULT_MAX_INPUT_BYTES, format_size, resolve
from .errors import reading, shown
from .formats.npy import NPY_MAGIC, NpyFile, npy_float64_bytes, parse_npy, read_npy
from .formats.raw import (
    STDIN,
    all_of,
    cap_to_read,
    one_stdin,
    open_file,
    opened,
    read_bytes,
    read_upto,
    too_big,
)
from .formats.table import Format, sniff
from .formats.text_reading import json_array, json_document, json_kind, parse_csv, parse_json, read_text

# Peak memory per byte of JSON text, measured (ru_maxrss, 5 million numbers). Parsed as a document
# (orjson, else json: a Python float per number), the worst was a vector of 4-byte numbers
# ("0.5,"): 20.1 through orjson, 14.2 through json; 9 MB-100 MB matrices took 4-13. Read by the
# fast reader (a block of rows at a time into one float64 array): at most 4.9, for numbers of 2
# bytes ("1,") after a first block of long ones; 0.4 for numbers of 20 bytes.
JSON_BYTES_PER_BYTE = 24  # a parse as a document, 20.1 measured
FAST_JSON_BYTES_PER_BYTE = 6  # the fast reader's, 4.9 measured: 8 bytes a number, 2 bytes of text at least
# CSV, measured the same way (tracemalloc): the fast reader 4.4 a byte for numbers of one digit
# ("0,"), 2.1 for savetxt's; the careful one (np.loadtxt, for spellings JSON has not: "+1") 4.7, and
# about 10 for one line of millions of numbers.
CSV_BYTES_PER_BYTE = 12
FAST_CSV_BYTES_PER_BYTE = 5


def _text_budget(size: int, fmt: Format, label: str, max_memory: int | None) -> None:
    """Refuse, before it is read or parsed, JSON or CSV whose careful parse would outgrow the memory
    budget (the fast readers, which need less, have declined it by then or are not sure of it)."""
    budget = resolve(max_memory)
    per_byte, how = (
        (JSON_BYTES_PER_BYTE, "a Python object per number")
        if fmt is Format.json
        else (CSV_BYTES_PER_BYTE, "the text and the numbers at once")
    )
    need = size * per_byte
    if need > budget:
        raise LoadError(
            f"{label}: parsing {format_size(size)} of {fmt.value.upper()} takes about {format_size(need)} "
            f"({how}), over the memory budget of {format_size(budget)} (max_memory); save it as .npy "
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
    if fmt is Format.json:
        _text_budget(len(data), fmt, label, max_memory)
        arr = parse_json(data, label, finite)
    elif fmt is Format.csv:
        _text_budget(len(data), fmt, label, max_memory)
        arr = parse_csv(data, label, finite)
    elif fmt is Format.npy:
        arr = parse_npy(data, label)
    else:
        raise LoadError(f"{label}: an .npz bundle holds several arrays; give it with layer=")
    return _checked(arr, label, finite)


def _checked(arr: np.ndarray, label: str, finite: bool) -> np.ndarray:
    """``arr`` as read, refused when it holds no numbers or (``finite``) a NaN or infinity."""
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
            f"{label}: ran out of memory while loading it; free some memory, lower max_memory so smjac "
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
        fmt = None if label == "stdin" or not Path(path).suffix else Format.for_input(path)
        if fmt is Format.npz:  # said before it is read
            raise LoadError(f"{label}: an .npz bundle holds several arrays; give it with layer=")
        if fmt in (Format.csv, Format.json):  # plain numbers, read fast a piece at a time; else below
            budget = resolve(max_memory)
            fast = FAST_JSON_BYTES_PER_BYTE if fmt is Format.json else FAST_CSV_BYTES_PER_BYTE
            limit = min(max_bytes, budget // fast)
            longest = budget // JSON_BYTES_PER_BYTE  # a row (or a vector) orjson reads whole
            arr = read_text(path, fmt.value, limit, opener=open_file, longest=longest)
            if arr is not None:
                return arr
        if fmt in (Format.csv, Format.json):  # the fast reader declined it: refused before it is read
            with reading(label):
                _text_budget(os.stat(path).st_size, fmt, label, max_memory)
        with opened(path, max_bytes, stdin) as (stream, label):
            head = b"" if fmt else read_upto(stream, len(NPY_MAGIC))  # enough to tell NPY from the rest
            if fmt is Format.npy or (fmt is None and head.startswith(NPY_MAGIC)):
                check = _npy_fits(label, max_bytes, resolve(max_memory) if label == "stdin" else None)
                return _checked(
                    read_npy(stream, label, head, check).astype(np.float64, copy=False), label, finite
                )
            # text from a pipe or a device is parsed whole, at CSV_BYTES_PER_BYTE a byte at least:
            # what the budget cannot parse is not read past (the input cap is no bound on memory)
            most = resolve(max_memory) // CSV_BYTES_PER_BYTE
            if most >= max_bytes:
                data = all_of(stream, label, max_bytes, head)
            elif len(data := read_upto(stream, most + 1, head)) <= most:
                data = all_of(io.BytesIO(b""), label, max_bytes, data)  # the empty check
            else:
                raise LoadError(
                    f"{label}: more than {format_size(most)} of text, whose parse would take more than the "
                    f"memory budget of {format_size(resolve(max_memory))} (max_memory); save it as .npy "
                    "(numpy.save) instead, which loads in its own size"
                )
        return parse(data, fmt or sniff(data), label, max_memory=max_memory, finite=finite)


def _npy_fits(label: str, max_bytes: int, budget: int | None) -> Callable[[tuple[int, ...], np.dtype], None]:
    """What refuses, from an NPY header alone, numbers over the input cap or, when a ``budget`` is
    given, whose reading (and widening to float64) is over it: before they are read.

    The budget is held to stdin alone, as it is to no file read whole (a file is held to the cap,
    by its size, before it is opened): from stdin even an answer, which a file gives a block at a
    time, has to be read whole.
    """

    def check(shape: tuple[int, ...], dtype: np.dtype) -> None:
        count = math.prod(shape)
        size, wide = count * dtype.itemsize, count * 8 if dtype != np.float64 else 0
        if size > max_bytes:
            raise LoadError(too_big(label, size, max_bytes))
        if budget is not None and size + wide > budget:
            widened = f", {format_size(wide)} more as float64" if wide else ""
            raise LoadError(
                f"{label}: its header says shape {shape} of {dtype}: {format_size(size)}{widened}, over the "
                f"memory budget of {format_size(budget)} (max_memory)"
            )

    return check


def load_upstream(
    path: str | Path,
    L: Layer,
    *,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    max_memory: int | None = None,
    stdin: BinaryIO | None = None,
) -> np.ndarray:
    """An upstream gradient dLoss/dh for layer L (K entries, or N×K; the maths checks the shape),
    in L's dtype: a value the cast makes infinite (1e39 in float32) is refused, naming the file,
    as every cast is."""
    label = "stdin" if str(path) == STDIN else str(path)
    g = load_array(path, max_bytes=max_bytes, max_memory=max_memory, stdin=stdin)
    return _cast(g, L.W.dtype.name, label)


def load_class_weights(
    path: str | Path, L: Layer, *, max_bytes: int = DEFAULT_MAX_INPUT_BYTES, max_memory: int | None = None
) -> np.ndarray:
    """One weight per class of layer L, in class order (a list of numbers in any format
    :func:`load_array` reads), with the file named in any message; a weight below 0 is refused.
    The weights come in L's dtype, and a weight the cast makes infinite is refused.
    """
    label = "stdin" if str(path) == STDIN else str(path)
    w = load_array(path, max_bytes=max_bytes, max_memory=max_memory)
    if w.ndim == 2 and 1 in w.shape:
        w = w.reshape(-1)
    if w.ndim > 1:
        raise ShapeError(f"{label} has shape {w.shape}, but class weights are one number per class")
    w = w.reshape(-1)
    if w.size != L.classes:
        what = "W has one output, read as two classes" if L.binary else f"W has K = {L.K} outputs"
        raise ShapeError(
            f"{label} holds {w.size} class weights but {what}; give one weight per class, in class order"
        )
    if np.any(w < 0):
        raise InputError(
            f"{label}: class weight {float(w[np.argmax(w < 0)]):g} is below 0; weights are at least 0"
        )
    return _cast(w, L.W.dtype.name, label)


def map_npy(path: str | Path, *, max_bytes: int | None = None, dtype: str | None = None) -> Any:  # an NpyFile
    """An x in an .npy file opened for reading a chunk of rows at a time, for inputs larger than
    the input cap.

    :class:`~smjac.formats.npy.NpyFile`, for a batch (N×n): nothing is read beyond the header here.
    :func:`smjac.maths.forward_chunks` and :func:`~smjac.maths.grad_chunks` read the rows a chunk at
    a time; each block read is checked finite, and a row that is not is refused naming the file and
    the row, as is a file cut short meanwhile. ``dtype`` (``float32``, say) is the dtype each block is cast to as it is read, as
    :func:`load_layer` casts what it reads whole. Anything but a batch is refused as what it is: a file over the input cap (``max_bytes``,
    named in the message when given), whose cap is to be raised to read it whole.
    """

    def finite(block: np.ndarray, out: np.ndarray, r0: int) -> None:
        """Each block's numbers finite, the row that is not named (the whole file is never scanned)."""
        if all_finite(out):
            return
        row = int(np.flatnonzero(~np.isfinite(out).reshape(len(out), -1).all(axis=1))[0])
        label = f"{path}, row {r0 + row}"
        _checked(block[row], label, finite=True)  # a NaN or infinity of the file's own
        _cast(block[row], str(out.dtype), label)  # else the cast's

    x = NpyFile(path, dtype, check=finite)
    if x.ndim != 2:
        size = os.stat(path).st_size
        cap = "" if max_bytes is None else f" of {max_bytes:,} bytes"
        raise LoadError(
            f"{path}: is {size:,} bytes, over the input size cap{cap}; past the cap only a batch (N×n) "
            f"is read, a chunk of rows at a time, and this x has shape {x.shape}: "
            f"raise the cap ({cap_to_read(size)}) to read it whole"
        )
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
    named: Format | None = None if label == "stdin" or not Path(path).suffix else Format.for_input(path)
    fmt: Format
    if named is Format.npz:  # a file: its members are read one by one, each held to the budget first
        with reading(label):
            size = os.stat(path).st_size
        if size > max_bytes:
            raise LoadError(too_big(label, size, max_bytes))
        data, fmt = b"", named
    else:
        data = read_bytes(path, max_bytes=max_bytes, stdin=stdin)
        fmt = named or sniff(data)
    found: dict[str, np.ndarray] = {}
    if fmt is Format.npz:
        import zipfile  # only for bundles: it brings bz2, lzma and shutil along

        try:
            archive = zipfile.ZipFile(path if named is Format.npz else io.BytesIO(data))
            infos = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error) as e:
            raise LoadError(f"{label}: is not a valid .npz archive ({e})") from None
        members: dict[str, Any] = {}
        for info in infos:
            key = Path(info.filename).stem
            if key in members:
                raise LoadError(
                    f"{label}: holds {key!r} twice ({shown(members[key].filename)}, {shown(info.filename)}); keep one"
                )
            members[key] = info
        _check_keys(members, label)
        budget = resolve(max_memory)
        for key, info in members.items():
            name = f"{label}[{key}]"
            if info.file_size > max_bytes:
                raise LoadError(too_big(name, info.file_size, max_bytes))
            if info.flag_bits & 0x1:
                raise LoadError(f"{name}: is encrypted; smjac reads only plain .npz members")
            try:
                with archive.open(info) as member:
                    head = member.read(4096)  # the NPY header, to know the widening before inflating
                widened = npy_float64_bytes(head, name)
                if info.file_size + widened > budget:
                    raise LoadError(
                        f"{name}: inflates to {format_size(info.file_size)}, {format_size(widened)} more as "
                        f"float64, over the memory budget of {format_size(budget)} (max_memory)"
                    )
                raw = archive.read(info)
            except (
                zipfile.BadZipFile,
                OSError,
                ValueError,
                EOFError,
                NotImplementedError,
                RuntimeError,
                zlib.error,  # a damaged deflate stream
            ) as e:
                if isinstance(e, LoadError):
                    raise
                raise LoadError(f"{name}: cannot be read ({e})") from None
            found[key] = parse(raw, Format.npy, name)
    elif fmt is Format.json:
        _text_budget(len(data), fmt, label, max_memory)
        obj = json_document(data, label)
        if not isinstance(obj, dict):
            raise LoadError(f"{label}: a layer bundle is a JSON object with W and x, not {json_kind(obj)}")
        _check_keys(obj, label)
        for key, value in obj.items():
            if not isinstance(value, list):
                raise LoadError(f"{label}[{key}]: expected an array of numbers, found {json_kind(value)}")
            found[key] = json_array(value, f"{label}[{key}]")
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


def load_layer(
    W: str | Path | None,
    x: str | Path | None,
    b: str | Path | None = None,
    *,
    layer: str | Path | Checkpoint | None = None,
    key: str | None = None,
    layout: LayoutName | None = None,
    function: FunctionName = "softmax",
    temperature: float = 1.0,
    dtype: str = "float64",
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    max_memory: int | None = None,
    stdin: BinaryIO | None = None,
    replaced: list[str] | None = None,
) -> Layer:
    """Load W, x (and b) from their files, or from a bundle, as a checked :class:`~smjac.maths.Layer`.

    A file given on its own takes the place of the bundle's array (or the checkpoint's), or stands
    for one a bundle lacks; ``replaced``, if given, is told which it replaced, a sentence each, for
    the caller to say. Errors name the files. The layer is checked here, once: the ``layer_*``
    functions of :mod:`smjac.maths` take it as it is.
    ``max_memory`` (bytes; :func:`default_memory_budget` when None) is the budget each loader
    holds a file's parse to before it starts.

    ``layer`` may be a model checkpoint (``.safetensors``, ``.keras``, ``.h5``), or one already
    read by :func:`smjac.formats.checkpoints.read` (whose notes and tensor names the caller then keeps);
    ``key`` picks its layer, and x comes from its own file. ``layout`` None means the file's own:
    the checkpoint's framework's, else in-out.
    """
    one_stdin(*(p for p in (W, x, b, layer) if isinstance(p, (str, Path))))
    arrays: dict[str, np.ndarray] = {}
    names = {k: k for k in LAYER_KEYS}
    ckpt = _checkpoint(layer, key, max_bytes, max_memory)
    if ckpt is not None:
        arrays = {"W": ckpt.W} if ckpt.b is None else {"W": ckpt.W, "b": ckpt.b}
        names["W"], names["b"] = ckpt.names()
        layout = layout or ckpt.layout
    bundle = None  # a bundle's name, which a file may complete
    if ckpt is None and isinstance(layer, (str, Path)):
        arrays = load_bundle(layer, max_bytes=max_bytes, max_memory=max_memory, stdin=stdin)
        bundle = "stdin" if str(layer) == STDIN else str(layer)
        names = {k: f"{bundle}[{k}]" for k in LAYER_KEYS}
    for k, path in zip(LAYER_KEYS, (W, x, b), strict=True):
        if isinstance(path, np.ndarray):  # already read (the first row of a memory-mapped x, say)
            arrays[k] = np.asarray(path, dtype=np.float64)
        elif path is not None:
            taken = names[k] if k in arrays else None  # the bundle's own, which the file replaces
            arrays[k] = load_array(path, max_bytes=max_bytes, max_memory=max_memory, stdin=stdin)
            names[k] = "stdin" if str(path) == STDIN else str(path)
            if taken is not None and replaced is not None:
                replaced.append(f"{shown(names[k])} takes the place of {shown(taken)}")
    missing = [key for key in ("W", "x") if key not in arrays]
    if missing and bundle is not None:
        raise LoadError(
            f"{shown(bundle)}: has no {' or '.join(missing)}; give {' and '.join(f'{k}=FILE' for k in missing)}, "
            "or a bundle that holds it"
        )
    if missing:
        said = " and ".join(f"{key}=" for key in missing)
        raise LoadError(f"missing {said}: give each as a file, or both with layer=FILE")
    with _no_memory_error(names["W"]):
        cast = {k: _cast(v, dtype, names[k]) for k, v in arrays.items()}
    x_ = cast["x"]
    if ckpt is not None and W is None and x_.ndim in (1, 2):  # an x that fits no layer: name those it fits
        from .formats.checkpoints import mismatch

        width = x_.shape[0] if x_.ndim == 2 and x_.shape[1] == 1 else x_.shape[-1]
        error = mismatch(
            ckpt, layout or "in-out", int(width), names["x"], max_bytes=max_bytes, memory_budget=max_memory
        )
        if error is not None:
            raise error
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
        if not all_finite(a):  # a checkpoint's tensors come unscanned: the NaN is the file's own
            raise LoadError(f"{label}: holds NaN or infinite values; every number must be finite")
        limit = float(np.finfo(out.dtype).max)
        largest = float(a.flat[int(np.argmax(np.abs(a)))])
        raise LoadError(
            f"{label}: {largest:.6g} overflows {out.dtype} when cast for dtype={dtype} (its largest value "
            f"is {limit:.3g}); use dtype=float64 or scale it down"
        )
    return out


def _checkpoint(
    layer: str | Path | Checkpoint | None, key: str | None, max_bytes: int, max_memory: int | None
) -> Checkpoint | None:
    """The checkpoint ``layer`` names or is, read; None for a bundle (or no layer)."""
    if layer is None and key is None:
        return None  # no layer: the checkpoint readers are not even imported (start-up time counts)
    from .formats import checkpoints

    if isinstance(layer, checkpoints.Checkpoint):
        return layer
    if layer is None or str(layer) == STDIN or checkpoints.kind(layer) is None:
        if key is not None:
            raise LoadError(f'key={key!r}: picks a layer in a model checkpoint (layer="model.safetensors")')
        return None
    return checkpoints.read(layer, key=key, max_bytes=max_bytes, memory_budget=max_memory)


def load_answer(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    expected: tuple[int, ...] | None = None,
    max_memory: int | None = None,
    stdin: BinaryIO | None = None,
) -> np.ndarray:
    """A user's own derivative, for ``smjac verify``: a .npy memory-mapped (any size, its dtype
    kept), anything else read as strictly as every input but for NaN and infinities, which are
    kept in every format: finding them is the point.

    ``expected``, the shape the answer should have (or its transpose: the count of numbers is
    what is held to it), refuses an answer of another size before it is read whole: a .npy by
    its header, JSON or CSV as soon as its commas count more numbers than that, else once read.
    ``max_memory`` is the budget a text answer's parse is held to, as :func:`load_array`'s.
    """
    label = "stdin" if str(path) == STDIN else str(path)
    fmt = None if label == "stdin" else Format.of_path(path)
    if fmt is Format.npz:
        raise LoadError(_npz_answer(path))
    if fmt is Format.npy:
        answer: Any = NpyFile(path)  # the header alone is read; blocks are read as they are compared
    else:
        if expected is not None and fmt in (Format.json, Format.csv):
            _no_more_numbers_than(path, label, expected)
        answer = load_array(path, max_bytes=max_bytes, max_memory=max_memory, stdin=stdin, finite=False)
    if expected is not None and answer.size != math.prod(expected):
        raise ShapeError(
            f"{label}: has shape {answer.shape} ({answer.size:,} numbers), but the answer should be "
            f"{_shape(expected)} ({math.prod(expected):,} numbers) or its transpose"
        )
    return answer


def _shape(shape: tuple[int, ...]) -> str:
    return " × ".join(map(str, shape))


def _no_more_numbers_than(path: str | Path, label: str, expected: tuple[int, ...]) -> None:
    """Refuse, before it is parsed, a JSON or CSV answer holding more numbers than ``expected``.

    A JSON array of numbers holds one comma fewer than it has numbers, however it is nested, and a
    CSV row one fewer than its cells: counting commas (in C, a piece at a time) bounds the count
    from below without parsing a number.
    """
    count = math.prod(expected)
    commas = 0
    with reading(label), open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < 2 * count:  # too short to hold more; parsed soon enough
            return
        while commas < count and (piece := f.read(2**20)):
            commas += piece.count(b",")
    if commas >= count:
        raise ShapeError(
            f"{label}: holds at least {commas + 1:,} numbers (counted by its commas), but the "
            f"answer should be {_shape(expected)} ({count:,} numbers) or its transpose; refused "
            "before it was read whole"
        )


def _npz_answer(path: str | Path) -> str:
    """What an .npz given as an answer holds, and how to give one of its arrays."""
    import zipfile  # only for this refusal: it brings bz2, lzma and shutil along

    label = str(path)
    try:
        with reading(label), zipfile.ZipFile(path) as archive:
            names = [Path(i.filename).stem for i in archive.infolist()]
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError) as e:
        return f"{label}: is not a valid .npz archive ({e}); an answer is one array: give it as .npy, .json or .csv"
    shown = ", ".join(map(repr, names[:10])) + (f" and {len(names) - 10:,} more" if len(names) > 10 else "")
    first = names[0] if names else "g"
    return (
        f"{label}: is an .npz archive of {len(names)} array{'s' * (len(names) != 1)} ({shown or 'none'}); "
        f"an answer is one array: save the one to check as .npy "
        f"(numpy.save('{first}.npy', numpy.load('{Path(label).name}')['{first}'])) and give that"
    )
