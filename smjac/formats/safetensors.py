"""The safetensors codec: a file's header, one tensor's bytes, and a file of tensors written whole.

A safetensors file is an 8-byte little-endian header length, that many bytes of JSON giving each
tensor's dtype, shape and byte range in the data that follows, then the data. smjac reads the
header itself (validated before anything is allocated: the header's size, each range inside the
file and the size its dtype and shape need) and then only the bytes of the tensors it uses, so a
shard of gigabytes costs a header and one head. BF16, which numpy has no type for, is widened to
float32 exactly; integer, bool and 8-bit float tensors are listed but never read as weights.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..budget import format_size
from ..errors import LoadError, OutputError, reading, shown

# safetensors' dtype names → numpy; BF16 has no numpy type and is widened by hand (bf16_to_f32).
FLOATS = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2}
ITEMSIZE |= {"BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
NUMPY_NAME = {np.dtype(v): k for k, v in FLOATS.items()}
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit on the JSON header
# Peak memory per byte of a model's JSON (a header, config.json, an index) parsed as Python objects
# (ru_maxrss, 8 MiB documents): arrays nested in arrays 36-43 ("[[[[[[]]]]]]", a list of 88 bytes
# per 2 bytes of text), "[{},...]" 25, a safetensors header's entries 10.
MODEL_JSON_BYTES_PER_BYTE = 48


def is_float(dtype: str) -> bool:
    """Whether smjac reads a tensor of this dtype as weights: F16, BF16, F32 or F64."""
    return dtype in FLOATS or dtype == "BF16"


class Entry(NamedTuple):
    """One tensor in a header: its dtype, shape and byte range in the data section."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


class Header(NamedTuple):
    """A file's tensors by name, and where its data section starts."""

    path: Path
    label: str
    entries: Mapping[str, Entry]
    data_start: int

    def shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {k: (e.shape, e.dtype) for k, e in self.entries.items()}


class Limits(NamedTuple):
    """What a checkpoint's reader may take: the input size cap and the memory budget, in bytes."""

    max_bytes: int
    memory: int

    def json(self, size: int, label: str, what: str = "its JSON") -> None:
        """Refuse, before it is read, a model's JSON of ``size`` bytes over the cap or whose parse
        would outgrow the budget (:data:`MODEL_JSON_BYTES_PER_BYTE`)."""
        if size > self.max_bytes:
            raise LoadError(
                f"{label}: {what} takes {size:,} bytes, over the input size cap of {self.max_bytes:,} bytes; "
                "raise the cap with max_bytes"
            )
        need = size * MODEL_JSON_BYTES_PER_BYTE
        if need > self.memory:
            raise LoadError(
                f"{label}: parsing {what} ({format_size(size)}) takes about {format_size(need)}, over the "
                f"memory budget of {format_size(self.memory)} (max_memory)"
            )


def regular_file(path: str | Path, label: str) -> None:
    """Refuse anything but a regular file before it is opened: a FIFO would block the open, a
    device never ends."""
    with reading(label):
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise LoadError(f"{label}: is not a regular file")


def _invalid(label: str, why: str) -> LoadError:
    return LoadError(f"{label}: is not a valid safetensors file ({why})")


def read_header(
    path: str | Path, label: str | None = None, limits: Limits | None = None, *, held: int = 0
) -> Header:
    """The header of a safetensors file, checked, without reading any tensor.

    ``limits`` (none: only :data:`MAX_HEADER_BYTES`) holds the header to the input cap and its
    parse to the memory budget before it is read; ``held``, the bytes of the other shards'
    headers a reader holds already, counts against the budget with it.

    Raises
    ------
    LoadError
        For a missing, unreadable or not regular file, a header over :data:`MAX_HEADER_BYTES` or
        the limits or past the file's end, JSON that is not an object of tensors, a name given
        twice, or a tensor whose byte range lies outside the data, overlaps another's or does not
        match its shape and dtype (the safetensors library refuses each of these too).
    """
    label = label or str(path)
    regular_file(path, label)
    with reading(label), open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            raise _invalid(label, f"{total} bytes, shorter than the 8-byte header length")
        (size,) = struct.unpack("<Q", head)
        if size > MAX_HEADER_BYTES or size > total - 8:
            raise _invalid(label, f"its header claims {size:,} bytes of a {total:,}-byte file")
        if limits is not None:
            limits.json(
                held + size, label, "its header and those of the shards before it" if held else "its header"
            )
        text = f.read(size)
    try:
        obj = json.loads(text, object_pairs_hook=_once)
    except _Repeated as e:
        raise _invalid(label, f"its header gives {shown(str(e))} twice") from None
    except (ValueError, RecursionError) as e:
        raise _invalid(label, f"its header is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise _invalid(label, "its header is not a JSON object")
    data = total - 8 - size
    entries: dict[str, Entry] = {}
    for name, value in obj.items():
        if name != "__metadata__":
            entries[name] = _entry(label, name, value, data)
    _disjoint(label, entries)
    return Header(Path(path), label, entries, 8 + size)


class _Repeated(ValueError):
    """A name an object gives twice: which of two tensors of one name would be meant?"""


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Repeated(name)
            seen.add(name)
    return obj


def _disjoint(label: str, entries: Mapping[str, Entry]) -> None:
    """Refuse tensors whose bytes overlap: writing one would change another."""
    spans = sorted((e.start, e.end, name) for name, e in entries.items() if e.end > e.start)
    for (_, end, before), (start, _, name) in itertools.pairwise(spans):
        if start < end:
            raise _invalid(label, f"the bytes of {shown(name)} overlap those of {shown(before)}")


def _entry(label: str, name: str, e: Any, data: int) -> Entry:
    where = f"{label}[{shown(name)}]"
    try:
        dtype, shape, (start, end) = e["dtype"], e["shape"], e["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise _invalid(where, "an entry without dtype, shape and data_offsets") from None
    ints = [*shape, start, end] if isinstance(shape, list) else None
    if not isinstance(dtype, str) or ints is None or not all(type(v) is int and v >= 0 for v in ints):
        raise _invalid(where, f"dtype {dtype!r}, shape {shape!r}, data_offsets {[start, end]!r}")
    if not start <= end <= data:
        raise _invalid(where, f"its bytes {start}..{end} lie outside the {data:,} bytes of data")
    itemsize = ITEMSIZE.get(dtype)
    if itemsize is not None and end - start != itemsize * math.prod(shape):
        raise _invalid(where, f"{end - start:,} bytes for a {dtype} tensor of shape {tuple(shape)}")
    return Entry(dtype, tuple(shape), start, end)


def read_tensor(header: Header, name: str) -> np.ndarray:
    """One floating-point tensor's values, in its own dtype (BF16 widened to float32, exactly)."""
    e = header.entries[name]
    where = f"{header.label}[{shown(name)}]"
    if not is_float(e.dtype):
        raise LoadError(
            f"{where}: has dtype {e.dtype}; smjac reads floating-point weights "
            "(F16, BF16, F32, F64), not integer, bool or 8-bit float tensors"
        )
    with reading(header.label), open(header.path, "rb") as f:
        f.seek(header.data_start + e.start)
        raw = f.read(e.end - e.start)
    if len(raw) != e.end - e.start:
        raise LoadError(f"{where}: is truncated")
    if e.dtype == "BF16":
        return bf16_to_f32(np.frombuffer(raw, dtype="<u2")).reshape(e.shape)
    stored = np.dtype(FLOATS[e.dtype]).newbyteorder("<")
    return np.frombuffer(raw, dtype=stored).reshape(e.shape).astype(FLOATS[e.dtype])


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32, exactly: a bfloat16 is a float32's top half.

    Examples
    --------
    >>> bf16_to_f32(np.array([0x3FC0, 0xC000, 0x0000], dtype=np.uint16))
    array([ 1.5, -2. ,  0. ], dtype=float32)
    """
    return (bits.astype("<u4") << 16).view("<f4").astype(np.float32)


def f32_to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 values as bfloat16 bit patterns (uint16), rounded to nearest, ties to even.

    Adding ``0x7FFF`` plus the lowest kept bit before dropping the low half rounds that way; a NaN
    is kept a quiet NaN, which the addition could otherwise carry into an infinity.

    Examples
    --------
    >>> [hex(v) for v in f32_to_bf16(np.array([1.5, 1.00390625, 1.01171875], dtype=np.float32))]
    ['0x3fc0', '0x3f80', '0x3f82']
    """
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(a), np.uint16(0x7FC0), rounded).astype("<u2")


def encode(
    tensors: Mapping[str, np.ndarray],
    dtype: str | Mapping[str, str],
    metadata: Mapping[str, str],
    *,
    what: str,
) -> bytes:
    """A whole safetensors file holding ``tensors`` (any float dtype) stored as ``dtype`` (one for
    all, or one per tensor's name).

    Names are sorted, so the same tensors always give the same bytes; the data starts 8-byte
    aligned, as the format recommends. ``what`` names the tensors' source in an overflow error.

    Raises
    ------
    OutputError
        When a value overflows ``dtype`` (possible in F16 and BF16).

    Examples
    --------
    >>> from safetensors.numpy import load  # a run-time dependency, so always there
    >>> load(encode({"w": np.ones((1, 2))}, "F16", {}, what="w"))["w"]
    array([[1., 1.]], dtype=float16)
    """
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    blobs: list[bytes] = []
    offset = 0
    dtypes = dtype if not isinstance(dtype, str) else dict.fromkeys(tensors, dtype)
    for name in sorted(tensors):
        dtype = dtypes[name]
        a = np.asarray(tensors[name]).astype(np.float64, copy=False)
        with np.errstate(over="ignore"):  # an overflow is caught just below, with a message
            if dtype == "BF16":
                stored = f32_to_bf16(a.astype(np.float32))
            else:
                stored = a.astype(np.dtype(FLOATS[dtype]).newbyteorder("<"))
        wide = bf16_to_f32(stored) if dtype == "BF16" else stored
        if not np.all(np.isfinite(wide)):
            peak = float(np.max(np.abs(a)))
            raise OutputError(
                f"the gradient's largest |entry|, {peak:.4g}, overflows {dtype}, the dtype of "
                f"{what}; write it as .npy or .json instead"
            )
        raw = np.ascontiguousarray(stored).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)
