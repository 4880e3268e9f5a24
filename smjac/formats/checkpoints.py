"""Read a softmax layer's weights out of a model checkpoint, and write its gradient back as one.

Three kinds of file hold a real model's classifier head:

* ``.safetensors`` (Hugging Face, PyTorch): a JSON header and raw little-endian tensors. A head is
  ``NAME.weight`` (K×n, PyTorch's ``out-in`` layout) and ``NAME.bias``.
* ``.keras`` (Keras 3): a zip whose ``model.weights.h5`` holds each layer's variables at
  ``layers/NAME/vars/0`` (the kernel, n×K, the post's ``in-out`` layout) and ``vars/1`` (the bias).
* ``.h5`` (Keras 2, and Keras 3's legacy writer): ``model_weights/NAME/…/kernel:0`` and ``bias:0``,
  listed in the ``weight_names`` attribute of the layer's group (or the same at the file's root for
  a weights-only file).

Only arrays are read, never a model: nothing in a file can run code. Pickled PyTorch files are
refused, with the one line that converts them. Nothing here prints; notes come back as strings
for the caller to show.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..budget import DEFAULT_MAX_INPUT_BYTES, resolve
from ..errors import LoadError, OutputError
from .table import Format, refuse_pickle

# safetensors' dtype names → numpy; BF16 has no numpy type and is widened by hand (_bf16_to_f32).
_FLOATS = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2}
_ITEMSIZE |= {"BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_NUMPY_NAME = {np.dtype(v): k for k, v in _FLOATS.items()}
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit on the JSON header
KERAS_EXTRA = "pip install 'smjac[keras]'"


@dataclass(frozen=True)
class Checkpoint:
    """A layer's weights as read from a checkpoint, and where they came from.

    Attributes
    ----------
    W, b : ndarray
        The arrays as stored (W keeps the file's layout), widened to float32 when stored as BF16;
        ``b`` is None when the layer has no bias.
    layout : {"in-out", "out-in"}
        The framework's layout: ``out-in`` (K×n) for safetensors, ``in-out`` (n×K) for Keras.
    source : {"safetensors", "keras", "h5"}
    key : str
        The layer's name, as ``--key`` takes it (``classifier``, ``dense_1``).
    weight_key, bias_key : str
        The tensors' own names in the file; a gradient is written back under them.
    dtype : str
        The stored dtype, in safetensors' spelling (``F32``, ``F16``, ``BF16``, ``F64``).
    label : str
        The file, for messages.
    notes : tuple of str
        What was chosen without being asked (the only layer in the file, say).
    """

    W: np.ndarray
    b: np.ndarray | None
    layout: str
    source: str
    key: str
    weight_key: str
    bias_key: str | None
    dtype: str
    label: str
    notes: tuple[str, ...] = field(default=())

    def names(self) -> tuple[str, str]:
        """W's and b's labels for error messages: ``model.safetensors[classifier.weight]``."""
        return f"{self.label}[{self.weight_key}]", f"{self.label}[{self.bias_key or 'bias'}]"

    def notes_for(self, layout: str | None) -> list[str]:
        """The notes to show when the user gave ``layout`` (None: they left it to the file)."""
        notes = list(self.notes)
        if layout is None and self.layout == "out-in":
            K, n = self.W.shape
            notes.append(
                f"{self.label}: {self.weight_key} is {K}×{n}, PyTorch's layout (K outputs × n inputs): "
                "read with --layout out-in; give --layout to override"
            )
        return notes


def kind(path: str | Path) -> str | None:
    """``"safetensors"``, ``"keras"`` or ``"pickle"`` by the file's suffix; None for other files.

    Examples
    --------
    >>> kind("model.safetensors"), kind("model.h5"), kind("model.pt"), kind("W.json")
    ('safetensors', 'keras', 'pickle', None)
    """
    fmt = Format.of_path(path)
    if fmt is Format.safetensors:
        return "safetensors"
    if fmt in (Format.keras, Format.h5):
        return "keras"
    return "pickle" if fmt is Format.pickle else None


def read(
    path: str | Path,
    *,
    key: str | None = None,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    memory_budget: int | None = None,
) -> Checkpoint:
    """Read one layer's W (and b) from a ``.safetensors``, ``.keras`` or ``.h5`` checkpoint.

    Parameters
    ----------
    path : str or Path
        The checkpoint; its suffix names the format.
    key : str, optional
        The layer: ``classifier`` (safetensors: ``classifier.weight`` and ``classifier.bias``; a
        full tensor name works too) or ``dense_1`` (Keras). Without it the file must hold one
        candidate layer, which is used with a note.
    max_bytes : int
        The input size cap, applied to the bytes of the tensors read (not to the whole file, of
        which only those tensors are read).
    memory_budget : int, optional
        Refuse tensors whose float64 copies would take more; half the available memory by default.

    Returns
    -------
    Checkpoint

    Raises
    ------
    LoadError
        For a pickle, an unknown or missing key (the message lists the candidates), several
        candidates and no key, an integer or bool tensor, a tensor over the caps, a damaged file,
        or a Keras file without h5py installed (the message names ``smjac[keras]``).

    Examples
    --------
    >>> read("model.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    smjac.errors.LoadError: model.pt: is a pickled PyTorch file; ...
    """
    label = str(path)
    what = kind(path)
    if what == "pickle":
        raise refuse_pickle(label)
    limits = _Limits(label, max_bytes, resolve(memory_budget))
    if what == "safetensors":
        return _read_safetensors(Path(path), key, limits)
    if what == "keras":
        return _read_keras(Path(path), key, limits)
    raise LoadError(f"{label}: not a checkpoint; smjac reads .safetensors, .keras, .h5 and .hdf5")


@dataclass(frozen=True)
class _Limits:
    label: str
    max_bytes: int
    memory_budget: int

    def check(self, shapes: Sequence[tuple[int, ...]], itemsize: int) -> None:
        """Refuse, before reading, tensors over the input cap or whose float64 copies do not fit."""
        count = sum(math.prod(s) for s in shapes)
        if count * itemsize > self.max_bytes:
            raise LoadError(
                f"{self.label}: the layer's tensors take {count * itemsize:,} bytes, over the input size "
                f"cap of {self.max_bytes:,} bytes; raise the cap with --max-input-bytes"
            )
        if count * 8 > self.memory_budget:
            raise LoadError(
                f"{self.label}: the layer's tensors would take {count * 8:,} bytes as float64, over the "
                f"memory budget of {self.memory_budget:,} bytes"
            )


# ---------------------------------------------------------------- safetensors


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32, exactly: a bfloat16 is a float32's top half.

    Examples
    --------
    >>> _bf16_to_f32(np.array([0x3FC0, 0xC000, 0x0000], dtype=np.uint16))
    array([ 1.5, -2. ,  0. ], dtype=float32)
    """
    return (bits.astype("<u4") << 16).view("<f4").astype(np.float32)


def _f32_to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 values as bfloat16 bit patterns (uint16), rounded to nearest, ties to even.

    Adding ``0x7FFF`` plus the lowest kept bit before dropping the low half rounds that way; a NaN
    is kept a quiet NaN, which the addition could otherwise carry into an infinity.

    Examples
    --------
    >>> [hex(v) for v in _f32_to_bf16(np.array([1.5, 1.00390625, 1.01171875], dtype=np.float32))]
    ['0x3fc0', '0x3f80', '0x3f82']
    """
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(a), np.uint16(0x7FC0), rounded).astype("<u2")


def _safe_open(path: Path, label: str) -> Any:
    try:
        from safetensors import safe_open  # only when a safetensors file is read
    except ImportError:  # pragma: no cover - a run-time dependency, so only a broken install
        raise LoadError(f"{label}: reading .safetensors needs the safetensors package") from None
    from ..errors import reading

    try:
        with reading(label):
            return safe_open(str(path), framework="numpy")
    except LoadError:
        raise
    except Exception as e:  # the library's SafetensorError and friends, for a damaged file
        raise LoadError(f"{label}: is not a valid safetensors file ({e})") from None


def _read_safetensors(path: Path, key: str | None, limits: _Limits) -> Checkpoint:
    label = limits.label
    with _safe_open(path, label) as f:
        header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118 (a safe_open handle is not a dict)
        matrices = {k: v for k, v in header.items() if len(v[0]) == 2}
        notes: list[str] = []
        if key is None:
            usable = [k for k, (_s, d) in matrices.items() if d in _FLOATS or d == "BF16"]
            if len(usable) != 1:
                raise LoadError(_pick_one(label, matrices, "several layers" if usable else "no float matrix"))
            weight_key = usable[0]
            layer = _layer_name(weight_key)
            notes.append(
                f"{label}: using {_describe(weight_key, *matrices[weight_key])}, its only 2-D tensor"
            )
        else:
            weight_key = key if key in matrices else f"{key}.weight"
            if weight_key not in matrices:
                raise LoadError(_pick_one(label, matrices, f"no tensor {key!r} or {key + '.weight'!r}"))
            layer = _layer_name(weight_key)
        bias_key = bias_for(weight_key, header)
        (W_shape, dtype) = header[weight_key]
        notes.extend(_unpaired_vectors(label, weight_key, bias_key, header))
        if dtype not in _FLOATS and dtype != "BF16":
            raise LoadError(
                f"{label}[{weight_key}]: has dtype {dtype}; smjac reads floating-point weights "
                "(F16, BF16, F32, F64), not integer, bool or 8-bit float tensors"
            )
        if bias_key is not None:
            b_shape, b_dtype = header[bias_key]
            if b_dtype != dtype or len(b_shape) != 1:
                raise LoadError(
                    f"{label}[{bias_key}]: is {b_dtype} of shape {b_shape} but {weight_key} is {dtype}; "
                    f"a bias is one row of K numbers of the weight's dtype (or leave out --key, name the tensor {weight_key!r})"
                )
        shapes = [W_shape] + ([header[bias_key][0]] if bias_key else [])
        limits.check(shapes, _ITEMSIZE[dtype])
        if dtype == "BF16":
            W, b = _read_bf16(path, label, [weight_key] + ([bias_key] if bias_key else []))
        else:
            W = np.array(f.get_tensor(weight_key))
            b = np.array(f.get_tensor(bias_key)) if bias_key else None
    return Checkpoint(
        W=W,
        b=b,
        layout="out-in",
        source="safetensors",
        key=layer,
        weight_key=weight_key,
        bias_key=bias_key,
        dtype=dtype,
        label=label,
        notes=tuple(notes),
    )


_WEIGHT_LEAVES = ("weight", "kernel")


def _layer_name(weight_key: str) -> str:
    """The layer a weight tensor belongs to, as ``--key`` takes it: ``classifier.weight`` →
    ``classifier``; a bare state_dict's ``weight`` stays ``weight``."""
    prefix, dot, leaf = weight_key.rpartition(".")
    return prefix if dot and leaf in _WEIGHT_LEAVES else weight_key


def bias_for(weight_key: str, names: Mapping[str, Any]) -> str | None:
    """The bias paired with a weight tensor by name, never by luck; None when the file has none.

    The pairs are the frameworks' own: ``P.weight``↔``P.bias`` (PyTorch, Hugging Face), a bare
    ``weight``↔``bias`` (``nn.Linear(...).state_dict()`` saved as it is) and ``kernel``↔``bias``
    (Keras names, with or without a prefix).

    Examples
    --------
    >>> bias_for("weight", {"weight": 0, "bias": 0}), bias_for("fc.weight", {"fc.weight": 0, "fc.bias": 0})
    ('bias', 'fc.bias')
    >>> bias_for("dense/kernel", {"dense/kernel": 0, "dense/bias": 0}), bias_for("fc.weight", {"bias": 0})
    ('dense/bias', None)
    """
    for sep in (".", "/"):
        prefix, found, leaf = weight_key.rpartition(sep)
        if found and leaf in _WEIGHT_LEAVES:
            candidate = f"{prefix}{sep}bias"
            return candidate if candidate in names else None
    if weight_key in _WEIGHT_LEAVES:
        return "bias" if "bias" in names else None
    return None


def _unpaired_vectors(
    label: str, weight_key: str, bias_key: str | None, header: Mapping[str, tuple[tuple[int, ...], str]]
) -> list[str]:
    """A note for each 1-D tensor that could be this layer's bias but is not paired with it by name."""
    if bias_key is not None:
        return []
    shape = header[weight_key][0]
    loose = [k for k, (s, d) in header.items() if len(s) == 1 and s[0] in shape and d in (*_FLOATS, "BF16")]
    return [
        f"{label}: {_describe(k, *header[k])} is not used as {weight_key}'s bias (its name does not pair "
        f"with it); give it with -b if it is the bias"
        for k in loose[:3]
    ]


def _describe(name: str, shape: tuple[int, ...], dtype: str) -> str:
    return f"{name} ({'×'.join(map(str, shape))} {dtype})"


def _pick_one(label: str, matrices: Mapping[str, tuple[tuple[int, ...], str]], why: str) -> str:
    listed = "; ".join(_describe(k, *v) for k, v in matrices.items()) or "none"
    layers = sorted({k.removesuffix(".weight") for k in matrices})
    example = f" (e.g. --key {layers[-1]})" if layers else ""
    return (
        f"{label}: {why}; pick the layer with --key NAME{example}, for NAME.weight and NAME.bias. "
        f"Its 2-D tensors: {listed}"
    )


def _read_bf16(path: Path, label: str, names: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Read BF16 tensors by the file's own header, since numpy (so safe_open) has no bfloat16.

    A safetensors file is an 8-byte little-endian header length, that many bytes of JSON giving
    each tensor's dtype, shape and byte range in the data that follows, then the data.
    """
    out: list[np.ndarray] = []
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > MAX_HEADER_BYTES:
            raise LoadError(f"{label}: its header claims {size:,} bytes; not a safetensors file")
        header = json.loads(f.read(size))
        for name in names:
            entry = header[name]
            start, end = entry["data_offsets"]
            shape = tuple(entry["shape"])
            if end - start != 2 * math.prod(shape):
                raise LoadError(f"{label}[{name}]: {end - start} bytes for a BF16 tensor of shape {shape}")
            f.seek(8 + size + start)
            raw = f.read(end - start)
            if len(raw) != end - start:
                raise LoadError(f"{label}[{name}]: is truncated")
            out.append(_bf16_to_f32(np.frombuffer(raw, dtype="<u2")).reshape(shape))
    return out[0], out[1] if len(out) > 1 else None


# ---------------------------------------------------------------- Keras


def _h5py(label: str) -> Any:
    try:
        import h5py  # an optional extra: most users never read a Keras file
    except ImportError:
        raise LoadError(f"{label}: reading a Keras file needs h5py: {KERAS_EXTRA}") from None
    return h5py


@dataclass(frozen=True)
class _Dense:
    """A Dense-like layer found in an HDF5 file: the kernel's and the bias' dataset paths."""

    name: str
    kernel: Any  # h5py.Dataset
    bias: Any | None


def _read_keras(path: Path, key: str | None, limits: _Limits) -> Checkpoint:
    label = limits.label
    h5py = _h5py(label)
    source = "keras" if path.suffix.lower() == ".keras" else "h5"
    try:
        if source == "keras":
            data, aliases = _keras_zip(path, limits)
            h5 = h5py.File(io.BytesIO(data), "r")
        else:
            h5, aliases = h5py.File(path, "r"), {}
    except LoadError:
        raise
    except FileNotFoundError:
        raise LoadError(f"{label}: no such file") from None
    except OSError as e:
        raise LoadError(f"{label}: is not a Keras weights file ({e})") from None
    with h5:
        keras3 = any(_member(h5, k, label) is not None for k in ("layers", "_layer_checkpoint_dependencies"))
        layers = _keras3_layers(h5, label) if keras3 else []
        if not layers:
            layers = _legacy_layers(h5, label)
        by_name = {d.name: d for d in layers}
        notes: list[str] = []
        if key is None:
            if len(layers) != 1:
                raise LoadError(
                    _pick_keras(label, layers, aliases, "several layers" if layers else "no Dense layer")
                )
            dense = layers[0]
            notes.append(f"{label}: using layer {_keras_describe(dense, aliases)}, its only Dense-like layer")
        else:
            stored = aliases.get(key, key)
            if stored not in by_name:
                raise LoadError(_pick_keras(label, layers, aliases, f"no layer {key!r}"))
            dense = by_name[stored]
        kernel, bias = dense.kernel, dense.bias
        dtype = _h5_dtype(kernel, f"{label}[{kernel.name.lstrip('/')}]")
        if bias is not None and _h5_dtype(bias, f"{label}[{bias.name.lstrip('/')}]") != dtype:
            raise LoadError(f"{label}[{bias.name.lstrip('/')}]: its dtype differs from the kernel's")
        limits.check([kernel.shape] + ([bias.shape] if bias is not None else []), _ITEMSIZE[dtype])
        W = _h5_read(kernel, dtype)
        b = _h5_read(bias, dtype) if bias is not None else None
        name = next((k for k, v in aliases.items() if v == dense.name), dense.name) if key is None else key
        weight_key = kernel.name.lstrip("/")
        bias_key = None if bias is None else bias.name.lstrip("/")
    return Checkpoint(
        W=W,
        b=b,
        layout="in-out",
        source=source,
        key=name,
        weight_key=weight_key,
        bias_key=bias_key,
        dtype=dtype,
        label=label,
        notes=tuple(notes),
    )


def _keras_zip(path: Path, limits: _Limits) -> tuple[bytes, dict[str, str]]:
    """``model.weights.h5`` from a .keras zip, and the layers' own names → their weight-store names.

    Keras 3 stores a model's layers under ``layers/<class in snake case>[_i]`` (``dense``,
    ``dense_1``, …, counted per class in the model's order), not under the names the user gave
    them; ``config.json`` in the same zip lists those names in that order, so both can be offered.
    """
    import zipfile  # only for .keras files

    label = limits.label
    try:
        archive = zipfile.ZipFile(path)
        info = archive.getinfo("model.weights.h5")
    except KeyError:
        raise LoadError(f"{label}: holds no model.weights.h5; not a Keras 3 .keras file") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise LoadError(f"{label}: is not a .keras zip ({e})") from None
    with archive:
        if info.file_size > limits.max_bytes:
            raise LoadError(
                f"{label}: its model.weights.h5 takes {info.file_size:,} bytes, over the input size cap of "
                f"{limits.max_bytes:,} bytes; raise the cap with --max-input-bytes"
            )
        data = archive.read(info)
        aliases: dict[str, str] = {}
        try:
            config = json.loads(archive.read("config.json")) if "config.json" in archive.namelist() else {}
            counts: dict[str, int] = {}
            for layer in config.get("config", {}).get("layers", []):
                snake = _snake_case(layer["class_name"])
                stored = snake if snake not in counts else f"{snake}_{counts[snake] + 1}"
                counts[snake] = counts.get(snake, -1) + 1
                aliases.setdefault(layer["config"]["name"], stored)
        except (ValueError, KeyError, TypeError, AttributeError):
            aliases = {}  # an odd config costs the friendly names only; the stored ones still work
    return data, {k: v for k, v in aliases.items() if k != v}


def _snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``: ``EinsumDense`` → ``einsum_dense``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_layers(h5: Any, label: str) -> list[_Dense]:
    """Layers of a Keras 3 weights store: groups ``…/NAME/vars`` whose ``0`` is a matrix."""
    found: list[_Dense] = []

    def visit(name: str, obj: Any) -> None:
        if not name.endswith("/vars") or name.startswith("optimizer"):
            return
        kernel = _member(obj, "0", label)
        if getattr(kernel, "ndim", 0) != 2:
            return
        bias = _member(obj, "1", label)
        if getattr(bias, "shape", None) != (kernel.shape[1],):
            bias = None
        layer = name.removesuffix("/vars")
        for prefix in ("layers/", "_layer_checkpoint_dependencies/"):
            layer = layer.removeprefix(prefix)
        found.append(_Dense(layer, kernel, bias))

    h5.visititems(visit)
    return found


_MAX_SOFT_LINKS = 32  # HDF5's own default limit on soft links followed in one path (H5L_NUM_LINKS is 16)


def _member(group: Any, path: str, label: str) -> Any:
    """``group[path]`` read only from this file: None when absent, a refusal when it would reach out.

    HDF5 lets a name lead elsewhere: an external link opens another file (or a FIFO, which hangs),
    a dataset with external storage or a virtual dataset takes its bytes from other files, and soft
    links can loop. A checkpoint is trusted to name only itself, so each link of the path is
    looked at before it is followed: hard links are followed, soft links only within the file and
    at most ``_MAX_SOFT_LINKS`` times, external links never; a dataset reached must keep its bytes in
    this file.
    """
    h5py = _h5py(label)
    parts = path.split("/")
    obj = group.file if path.startswith("/") else group
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if not isinstance(obj, h5py.Group):
            return None
        link = obj.get(part, getlink=True)
        where = f"{label}[{obj.name.rstrip('/')}/{part}]"
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise LoadError(
                f"{where}: is an external link to {link.filename!r}; smjac reads nothing but the file it is given"
            )
        if isinstance(link, h5py.SoftLink):
            hops += 1
            if hops > _MAX_SOFT_LINKS:
                raise LoadError(f"{where}: soft links loop (or chain more than {_MAX_SOFT_LINKS} deep)")
            target = link.path
            if target.startswith("/"):
                obj = obj.file
            parts = target.split("/") + parts
            continue
        if not isinstance(link, h5py.HardLink):  # a user-defined link type: nothing to follow safely
            raise LoadError(f"{where}: is a link of a kind smjac does not follow")
        obj = obj[part]
    if isinstance(obj, h5py.Dataset):
        plist = obj.id.get_create_plist()
        if plist.get_layout() == h5py.h5d.VIRTUAL:
            raise LoadError(
                f"{label}[{obj.name.lstrip('/')}]: is a virtual dataset, whose data lie in other files; "
                "smjac reads nothing but the file it is given"
            )
        if plist.get_external_count() > 0:
            raise LoadError(
                f"{label}[{obj.name.lstrip('/')}]: keeps its data in an external file; "
                "smjac reads nothing but the file it is given"
            )
    return obj


def _attr_names(group: Any, attr: str) -> list[str]:
    """A Keras name-list attribute, which Keras splits into ``attr0``, ``attr1``, … when long."""
    if attr in group.attrs:
        values = list(group.attrs[attr])
    else:
        values, chunk = [], 0
        while f"{attr}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{attr}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _legacy_layers(h5: Any, label: str) -> list[_Dense]:
    """Layers of a legacy Keras HDF5 file: a kernel and a bias among each layer's ``weight_names``."""
    root = _member(h5, "model_weights", label) or h5
    found: list[_Dense] = []
    for name in _attr_names(root, "layer_names") or list(root.keys()):
        group = _member(root, name, label)
        if group is None or not hasattr(group, "attrs"):
            continue
        kernel = bias = None
        for weight in _attr_names(group, "weight_names"):
            leaf = weight.rsplit("/", 1)[-1].split(":")[0]
            ds = _member(group, weight, label)
            if leaf == "kernel" and getattr(ds, "ndim", 0) == 2:
                kernel = ds
            elif leaf == "bias" and getattr(ds, "ndim", 0) == 1:
                bias = ds
        if kernel is not None:
            if bias is not None and bias.shape != (kernel.shape[1],):
                bias = None
            found.append(_Dense(name, kernel, bias))
    return found


def _keras_describe(d: _Dense, aliases: Mapping[str, str]) -> str:
    given = [k for k, v in aliases.items() if v == d.name]
    also = f" (stored as {d.name})" if given else ""
    bias = "with bias" if d.bias is not None else "no bias"
    n, K = d.kernel.shape
    return f"{given[0] if given else d.name}{also}: kernel {n}×{K} {d.kernel.dtype}, {bias}"


def _pick_keras(label: str, layers: Sequence[_Dense], aliases: Mapping[str, str], why: str) -> str:
    listed = "; ".join(_keras_describe(d, aliases) for d in layers) or "none"
    return f"{label}: {why}; pick the layer with --key NAME. Its Dense-like layers: {listed}"


def _h5_dtype(ds: Any, label: str) -> str:
    # Keras 3 writes a bfloat16 variable as raw 2-byte values with an attribute saying so
    if ds.attrs.get("dtype") in ("bfloat16", b"bfloat16") and ds.dtype.itemsize == 2:
        return "BF16"
    name = _NUMPY_NAME.get(np.dtype(ds.dtype).newbyteorder("="))
    if name is None:
        raise LoadError(
            f"{label}: has dtype {ds.dtype}; smjac reads floating-point weights (float16, bfloat16, "
            "float32, float64), not integer or bool arrays"
        )
    return name


def _h5_read(ds: Any, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return _bf16_to_f32(np.asarray(ds[()]).view("<u2"))
    return np.asarray(ds[()], dtype=_FLOATS[dtype])


# ---------------------------------------------------------------- writing a gradient back


def gradient_tensors(ckpt: Checkpoint, W: np.ndarray, b: np.ndarray | None) -> dict[str, np.ndarray]:
    """The gradient under the checkpoint's own tensor names and shapes, in float64.

    ``W`` must have the stored weight's shape: the gradient of :func:`smjac.grad` has W's own
    shape and layout, which is the file's unless ``--layout`` said otherwise (and then the file's
    tensor was read in that layout too). The bias' gradient goes in only if the file has a bias.
    """
    W = np.asarray(W)
    if W.shape != ckpt.W.shape:
        raise OutputError(
            f"the gradient has shape {W.shape} but {ckpt.weight_key} in {ckpt.label} is "
            f"{ckpt.W.shape}; it cannot be written back under that name"
        )
    out = {ckpt.weight_key: W}
    if ckpt.bias_key is not None and b is not None:
        out[ckpt.bias_key] = np.asarray(b).reshape(ckpt.b.shape if ckpt.b is not None else -1)
    return out


def gradient_bytes(
    ckpt: Checkpoint, W: np.ndarray, b: np.ndarray | None, *, metadata: Mapping[str, str] | None = None
) -> bytes:
    """A safetensors file holding the gradient under the checkpoint's names, layout and dtype.

    Parameters
    ----------
    ckpt : Checkpoint
        Where the layer came from (:func:`read`).
    W, b : ndarray
        ``Gradient.W`` (in the stored weight's shape) and ``Gradient.b``.
    metadata : mapping of str to str, optional
        Extra ``__metadata__`` strings.

    Returns
    -------
    bytes
        The whole file: ``safetensors.numpy.load_file`` and ``safetensors.torch.load_file`` read
        it back. BF16 is written by rounding to nearest, ties to even.

    Raises
    ------
    OutputError
        When the shapes do not match the checkpoint, or a value overflows the stored dtype
        (possible in F16 and BF16).

    Examples
    --------
    >>> ck = Checkpoint(np.zeros((2, 3), np.float32), None, "out-in", "safetensors", "head",
    ...                 "head.weight", None, "F32", "m.safetensors")
    >>> data = gradient_bytes(ck, np.ones((2, 3)), None)
    >>> from safetensors.numpy import load  # a run-time dependency, so always there
    >>> load(data)["head.weight"]
    array([[1., 1., 1.],
           [1., 1., 1.]], dtype=float32)
    """
    tensors = gradient_tensors(ckpt, W, b)
    dtype = ckpt.dtype
    header: dict[str, Any] = {"__metadata__": {"format": "np", "producer": "smjac", **(metadata or {})}}
    blobs: list[bytes] = []
    offset = 0
    # names sorted, so the same gradient always gives the same bytes
    for name in sorted(tensors):
        a = tensors[name].astype(np.float64, copy=False)
        with np.errstate(over="ignore"):  # an overflow is caught just below, with a message
            if dtype == "BF16":
                stored = _f32_to_bf16(a.astype(np.float32))
            else:
                stored = a.astype(np.dtype(_FLOATS[dtype]).newbyteorder("<"))
        wide = _bf16_to_f32(stored) if dtype == "BF16" else stored
        if not np.all(np.isfinite(wide)):
            peak = float(np.max(np.abs(a)))
            raise OutputError(
                f"the gradient's largest |entry|, {peak:.4g}, overflows {dtype}, the dtype of "
                f"{ckpt.weight_key} in {ckpt.label}; write it as .npy or .json instead"
            )
        raw = np.ascontiguousarray(stored).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the format recommends
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)
