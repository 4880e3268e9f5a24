"""Keras checkpoints: a Keras 3 ``.keras`` zip, or a legacy HDF5 ``.h5`` file.

* ``.keras`` (Keras 3): a zip whose ``model.weights.h5`` holds each layer's variables at
  ``layers/NAME/vars/0`` (the kernel, n×K, the post's ``in-out`` layout) and ``vars/1`` (the bias).
  NAME is not the layer's own name but its class in snake case, counted per class in the model's
  order (``dense``, ``dense_1``, …); ``config.json`` in the zip gives the names the user gave.
* ``.h5`` (Keras 2, and Keras 3's legacy writer): ``model_weights/NAME/…/kernel:0`` and ``bias:0``,
  listed in the ``weight_names`` attribute of the layer's group (or the same at the file's root for
  a weights-only file), under the layers' own names; the ``model_config`` attribute gives their
  classes.

Both names work in both formats: the layer's own (``classifier``) and Keras 3's stored one
(``dense_1``), which for an ``.h5`` is counted from ``model_config`` (or, in a weights-only file,
from its layers with a 2-D kernel, in order). A name that is one layer's own and another's
stored name means the first, with a note. An HDF5 file reads only itself: see :func:`member`.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..budget import format_size
from ..errors import LoadError, shown
from . import safetensors as st
from .heads import Candidate, Hints, refusal

KERAS_EXTRA = "pip install 'smjac[keras]'"
MAX_CONFIG_BYTES = 16 * 2**20  # a model's config is kilobytes
ONLY = "Dense-like layer"


def h5py_module(label: str) -> Any:
    try:
        import h5py  # an optional extra: most users never read a Keras file
    except ImportError:
        raise LoadError(f"{label}: reading a Keras file needs h5py: {KERAS_EXTRA}") from None
    return h5py


@dataclass(frozen=True)
class _Dense:
    """A Dense-like layer found in an HDF5 file: its group's name and its datasets."""

    name: str
    kernel: Any  # h5py.Dataset
    bias: Any | None


class Keras:
    """The Dense-like layers of a Keras file, by their own names and their stored ones."""

    hints = Hints()

    def __init__(self, path: Path, label: str, limits: st.Limits):
        self.label, self.notes, self.limits = label, list[str](), limits
        h5py = h5py_module(label)
        self.source = "keras" if path.suffix.lower() == ".keras" else "h5"
        st.regular_file(path, label)  # a FIFO would hang the open
        try:
            if self.source == "keras":
                data, config, self.notes = _keras_zip(path, label, limits)
                self.h5 = h5py.File(io.BytesIO(data), "r")
            else:
                self.h5, config = h5py.File(path, "r"), None
        except LoadError:
            raise
        except FileNotFoundError:
            raise LoadError(f"{label}: no such file") from None
        except OSError as e:
            raise LoadError(f"{label}: is not a Keras weights file ({e})") from None
        try:
            self._scan(config)
        except BaseException:
            self.h5.close()
            raise

    def _scan(self, config: Any) -> None:
        h5, label = self.h5, self.label
        keras3 = any(member(h5, k, label) is not None for k in ("layers", "_layer_checkpoint_dependencies"))
        layers = _keras3_layers(h5, label) if keras3 else []
        if self.source == "h5" or not layers:
            layers = layers or _legacy_layers(h5, label)
            config = config if config is not None else _h5_config(h5, label, self.limits, self.notes)
            self.config_unread = config is None and "model_config" in h5.attrs
        names = _class_names(config)  # own name → Keras 3's stored name, in the model's order
        order = {own: i for i, own in enumerate(names)}
        self.layers: list[tuple[Candidate, _Dense]] = []
        if keras3:  # groups are stored names
            own_of = {stored: own for own, stored in names.items()}
            for d in sorted(
                layers, key=lambda d: (order.get(own_of.get(d.name, ""), len(order)), _natural(d.name))
            ):
                own = own_of.get(d.name, d.name)
                self.layers.append((self._candidate(d, own, d.name), d))
        else:  # groups are own names; a weights-only file's Dense layers counted as Keras 3 would
            if not names:
                names = {d.name: "dense" if i == 0 else f"dense_{i}" for i, d in enumerate(layers)}
                self.inferred = True
            for d in layers:
                self.layers.append((self._candidate(d, d.name, names.get(d.name, d.name)), d))
        self.layers = [(replace(c, order=i), d) for i, (c, d) in enumerate(self.layers)]

    inferred = False
    config_unread = False  # a model_config the file has but smjac did not use (a note says why)

    def _candidate(self, d: _Dense, own: str, stored: str) -> Candidate:
        kernel, bias = d.kernel, d.bias
        dtype = _h5_dtype(kernel, f"{self.label}[{shown(kernel.name.lstrip('/'))}]", strict=False)
        b_dtype = (
            None
            if bias is None
            else _h5_dtype(bias, f"{self.label}[{shown(bias.name.lstrip('/'))}]", strict=False)
            or shown(str(bias.dtype))
        )
        return Candidate(
            key=own,
            weight_key=kernel.name.lstrip("/"),
            shape=(kernel.shape[0], kernel.shape[1]),
            dtype=dtype or shown(str(kernel.dtype)),
            bias_key=None if bias is None else bias.name.lstrip("/"),
            bias_shape=None if bias is None else tuple(bias.shape),
            bias_dtype=b_dtype,
            layout="in-out",
            stored=stored if stored != own else None,
            keras=True,
        )

    def matrices(self) -> list[Candidate]:
        """Every Dense-like layer, of any dtype."""
        return [c for c, _ in self.layers]

    def candidates(self) -> list[Candidate]:
        return [c for c in self.matrices() if st.is_float(c.dtype)]

    def find(self, key: str) -> tuple[Candidate, list[str]]:
        own = [(c, d) for c, d in self.layers if c.key == key]
        stored = [(c, d) for c, d in self.layers if (c.stored or c.key) == key]
        notes: list[str] = []
        if own:
            (c, d), rival = own[0], [s for s, _ in stored if s is not own[0][0]]
            if rival:
                notes.append(
                    f"{self.label}: key={key!r} is the layer named {shown(key)}; Keras 3 stores another, "
                    f"{shown(rival[0].key)}, as {shown(key)}: give key={rival[0].key!r} for that one"
                )
        elif stored:
            c, d = stored[0]
            if self.inferred and self.config_unread:  # counting could name another layer than the config
                own_names = ", ".join(repr(c.key) for c in self.candidates())
                raise LoadError(
                    f"{self.label}: key={key!r} is a name only its model_config can give a layer, and that "
                    f"was not used (see the note); give a layer's own name: {own_names}"
                )
            if self.inferred:
                notes.append(
                    f"{self.label}: key={key!r} read as {shown(c.key)}: the file says no layer classes, so its "
                    f"layers with a 2-D kernel were counted as Dense layers, in order, as Keras 3 names them"
                )
        else:
            raise refusal(self.label, f"no layer {key!r}", self.candidates(), self.hints)
        _h5_dtype(d.kernel, f"{self.label}[{shown(c.weight_key)}]")  # an integer kernel is refused here
        return c, notes

    def load(self, name: str) -> np.ndarray:
        datasets = [ds for _, d in self.layers for ds in (d.kernel, d.bias) if ds is not None]
        ds = next(ds for ds in datasets if ds.name.lstrip("/") == name)
        label = f"{self.label}[{shown(name)}]"
        dtype = _h5_dtype(ds, label)
        try:
            return _h5_read(ds, dtype)
        except OSError as e:  # a damaged chunk (gzip) or storage: h5py's OSError names no file
            raise LoadError(f"{label}: cannot be read; the file is damaged ({e})") from None

    def unpaired(self, c: Candidate) -> list[str]:
        return []

    def close(self) -> None:
        self.h5.close()


def _natural(name: str) -> tuple[str, int]:
    """``dense_10`` after ``dense_2``: Keras' counter, not the alphabet."""
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    assert m is not None
    return m[1], int(m[2] or 0)


# what a damaged or unusual zip member raises when read: a CRC mismatch (BadZipFile), an encrypted
# member (RuntimeError), a compression zipfile lacks (NotImplementedError), a cut stream (EOFError)
_ZIP_ERRORS = (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError, zlib.error)


# zipfile holds each member of the central directory as a ZipInfo: ~650 bytes measured (600,000
# empty members, 32 MiB of directory: 372 MiB), for an entry of 46 bytes and its name at least
_ZIPINFO_BYTES = 1024
_ENTRY_BYTES = 46


def _zip_directory(path: Path, label: str, limits: st.Limits) -> None:
    """Refuse, from its end record alone, a zip whose central directory is over the input cap or
    would take more than the memory budget as zipfile holds it (it reads every member's entry)."""
    with open(path, "rb") as f:
        total = f.seek(0, 2)
        f.seek(max(0, total - (22 + 0xFFFF)))
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return  # not a zip: zipfile says so
        _, _, _, _, count, size, _, _ = struct.unpack("<4s4H2LH", tail[at : at + 22])
        zip64 = tail[at - 20 : at] if at >= 20 else b""
        if zip64[:4] == b"PK\x06\x07":  # the zip64 end record holds the true count and size
            (where,) = struct.unpack("<8xQ4x", zip64)
            f.seek(where)
            record = f.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                count, size = struct.unpack("<32xQQ8x", record)
    need = size + size // _ENTRY_BYTES * _ZIPINFO_BYTES
    if size > limits.max_bytes:
        raise LoadError(
            f"{label}: its zip directory takes {size:,} bytes ({count:,} members), over the input size cap of "
            f"{limits.max_bytes:,} bytes; raise the cap with max_bytes"
        )
    if need > limits.memory:
        raise LoadError(
            f"{label}: its zip directory of {count:,} members ({format_size(size)}) would take about "
            f"{format_size(need)} to list, over the memory budget of {format_size(limits.memory)} (max_memory)"
        )


def _keras_zip(path: Path, label: str, limits: st.Limits) -> tuple[bytes, Any, list[str]]:
    """``model.weights.h5`` from a .keras zip, its ``config.json`` as data (None if unusable, with a
    note saying why).

    The zip's directory is held to the limits before zipfile lists it; the weights file is read
    into memory whole (h5py reads it from there), so it is held against the input cap and the
    memory budget before it is inflated, and the config before it is parsed."""
    try:
        _zip_directory(path, label, limits)
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
                f"{limits.max_bytes:,} bytes; raise the cap with max_bytes"
            )
        if info.file_size > limits.memory:
            raise LoadError(
                f"{label}: its model.weights.h5 takes {format_size(info.file_size)} in memory, over the "
                f"memory budget of {format_size(limits.memory)} (max_memory)"
            )
        try:
            data = archive.read(info)
        except _ZIP_ERRORS as e:
            raise LoadError(f"{label}: its model.weights.h5 cannot be read from the zip ({e})") from None
        config, notes = None, []
        try:
            cinfo = archive.getinfo("config.json")
            if cinfo.file_size > MAX_CONFIG_BYTES:
                raise LoadError(
                    f"it takes {cinfo.file_size:,} bytes, over the {MAX_CONFIG_BYTES:,} smjac reads"
                )
            limits.json(cinfo.file_size, f"{label}[config.json]", "it")
            config = json.loads(archive.read(cinfo))
        except KeyError:
            pass  # no config: the stored names still work
        except (LoadError, ValueError, RecursionError, *_ZIP_ERRORS) as e:
            why = str(e).removeprefix(f"{label}[config.json]: ")
            notes.append(f"{label}: its config.json is not used ({why}); the layers go by their stored names")
    return data, config, notes


def _h5_config(h5: Any, label: str, limits: st.Limits, notes: list[str]) -> Any:
    """A legacy file's ``model_config`` attribute (JSON) as data, or None (with a note when it is
    there but unusable)."""
    if "model_config" not in h5.attrs:
        return None
    try:
        # a fixed-length string's size is known before it is read; a variable-length one's (h5py
        # writes Keras' bytes as one) only once h5py has read it whole. That read is held to the
        # budget by the one bound there is, the file's size; the parse, by the string's own
        attr = h5.attrs.get_id("model_config")
        if attr.dtype.kind == "O" and (most := os.path.getsize(h5.filename)) > limits.memory:
            raise LoadError(
                f"it is a variable-length string, read whole before its size is known: up to the file's "
                f"{format_size(most)}, over the memory budget of {format_size(limits.memory)} (max_memory)"
            )
        for size in (attr.get_storage_size() if attr.dtype.kind != "O" else 0, None):
            if size is None:
                raw = h5.attrs["model_config"]
                text = raw.decode("utf8") if isinstance(raw, bytes) else str(raw)
                size = len(text)
            if size > MAX_CONFIG_BYTES:
                raise LoadError(f"it takes {size:,} bytes, over the {MAX_CONFIG_BYTES:,} smjac reads")
            limits.json(size, f"{label}[model_config]", "it")
        return json.loads(text)
    except (LoadError, ValueError, RecursionError, UnicodeDecodeError, OSError, TypeError) as e:
        why = str(e).removeprefix(f"{label}[model_config]: ")
        notes.append(f"{label}: its model_config is not used ({why}); its layers go by their own names")
        return None


def _class_names(config: Any) -> dict[str, str]:
    """Each layer's own name → the name Keras 3 stores it under: its class in snake case,
    counted per class in the model's order (``naming.to_snake_case`` and ``saving_lib``)."""
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    try:
        for layer in config["config"]["layers"]:
            snake = _snake_case(layer["class_name"])
            stored = snake if snake not in counts else f"{snake}_{counts[snake] + 1}"
            counts[snake] = counts.get(snake, -1) + 1
            names.setdefault(str(layer["config"]["name"]), stored)
    except (KeyError, TypeError, AttributeError, IndexError):
        return {}
    return names


def _snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``: ``EinsumDense`` → ``einsum_dense``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", str(name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


MAX_H5_ITEMS = 100_000  # groups and datasets walked in a Keras 3 store: a model's has a few per layer


def _keras3_layers(h5: Any, label: str) -> list[_Dense]:
    """Layers of a Keras 3 weights store: groups ``…/NAME/vars`` whose ``0`` is a matrix, found by
    visiting at most :data:`MAX_H5_ITEMS` groups and datasets (a crafted file holds millions)."""
    found: list[_Dense] = []
    seen = 0

    def visit(name: str, obj: Any) -> bool | None:
        nonlocal seen
        seen += 1
        if seen > MAX_H5_ITEMS:
            return True  # stops the walk
        if not name.endswith("/vars") or name.startswith("optimizer"):
            return None
        kernel = member(obj, "0", label)
        if getattr(kernel, "ndim", 0) != 2 or member(obj, "2", label) is not None:
            return None  # a recurrent layer's vars/1 is its recurrent kernel, vars/2 its bias: not Dense-like
        bias = member(obj, "1", label)  # Dense's bias, of shape (K,): any other is refused when used
        if not hasattr(bias, "shape"):
            bias = None
        layer = name.removesuffix("/vars")
        for prefix in ("layers/", "_layer_checkpoint_dependencies/"):
            layer = layer.removeprefix(prefix)
        found.append(_Dense(layer, kernel, bias))
        return None

    if h5.visititems(visit):
        raise _too_many(label)
    return found


def _too_many(label: str) -> LoadError:
    return LoadError(
        f"{label}: holds more than {MAX_H5_ITEMS:,} HDF5 groups and datasets, more than a model's "
        f"weights store; smjac looks through at most {MAX_H5_ITEMS:,}"
    )


_MAX_SOFT_LINKS = 32  # HDF5's own default limit on soft links followed in one path (H5L_NUM_LINKS is 16)


def member(group: Any, path: str, label: str) -> Any:
    """``group[path]`` read only from this file: None when absent, a refusal when it would reach out.

    HDF5 lets a name lead elsewhere: an external link opens another file (or a FIFO, which hangs),
    a dataset with external storage or a virtual dataset takes its bytes from other files, and soft
    links can loop. A checkpoint is trusted to name only itself, so each link of the path is
    looked at before it is followed: hard links are followed, soft links only within the file and
    at most ``_MAX_SOFT_LINKS`` times, external links never; a dataset reached must keep its bytes in
    this file.
    """
    h5py = h5py_module(label)
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
        where = f"{label}[{shown(obj.name.rstrip('/'))}/{shown(part)}]"
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
                f"{label}[{shown(obj.name.lstrip('/'))}]: is a virtual dataset, whose data lie in other files; "
                "smjac reads nothing but the file it is given"
            )
        if plist.get_external_count() > 0:
            raise LoadError(
                f"{label}[{shown(obj.name.lstrip('/'))}]: keeps its data in an external file; "
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
    root = member(h5, "model_weights", label) or h5
    found: list[_Dense] = []
    names = _attr_names(root, "layer_names") or list(itertools.islice(root.keys(), MAX_H5_ITEMS + 1))
    seen = len(names)  # layers and their weights looked at, at most MAX_H5_ITEMS, as a Keras 3 walk
    for name in names:
        group = member(root, name, label)
        if group is None or not hasattr(group, "attrs"):
            continue
        weights = _attr_names(group, "weight_names")
        seen += len(weights)
        if seen > MAX_H5_ITEMS:
            break
        kernel = bias = None
        for weight in weights:
            leaf = weight.rsplit("/", 1)[-1].split(":")[0]
            ds = member(group, weight, label)
            if leaf == "kernel" and getattr(ds, "ndim", 0) == 2:
                kernel = ds
            elif leaf == "bias" and hasattr(ds, "shape"):
                bias = ds  # Dense's is of shape (K,): any other is refused when used, never dropped
        if kernel is not None:
            found.append(_Dense(name, kernel, bias))
    if seen > MAX_H5_ITEMS:
        raise _too_many(label)
    return found


def _h5_dtype(ds: Any, label: str, *, strict: bool = True) -> str | None:
    """A dataset's dtype in safetensors' spelling; an integer or bool one is refused (or None)."""
    # Keras 3 writes a bfloat16 variable as raw 2-byte values with an attribute saying so
    if ds.attrs.get("dtype") in ("bfloat16", b"bfloat16") and ds.dtype.itemsize == 2:
        return "BF16"
    name = st.NUMPY_NAME.get(np.dtype(ds.dtype).newbyteorder("="))
    if name is None and strict:
        raise LoadError(
            f"{label}: has dtype {ds.dtype}; smjac reads floating-point weights (float16, bfloat16, "
            "float32, float64), not integer or bool arrays"
        )
    return name


def _h5_read(ds: Any, dtype: str | None) -> np.ndarray:
    if dtype == "BF16":
        return st.bf16_to_f32(np.asarray(ds[()]).view("<u2"))
    return np.asarray(ds[()], dtype=st.FLOATS[dtype or "F64"])
