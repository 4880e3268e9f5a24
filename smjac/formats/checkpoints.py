"""Read a softmax layer's weights out of a model checkpoint, and write its gradient back as one.

Four kinds of path hold a real model's head:

* a Hugging Face ``save_pretrained`` folder, its ``model.safetensors.index.json`` (shards), or one
  ``.safetensors`` file (:mod:`smjac.formats.pretrained`): a head is ``NAME.weight`` (K×n,
  PyTorch's ``out-in`` layout) and ``NAME.bias``; a language model's head may be tied to its
  input embedding;
* ``.keras`` and ``.h5`` (:mod:`smjac.formats.keras`): a Dense layer's kernel (n×K, the post's
  ``in-out`` layout) and bias.

Without ``key`` the head is chosen the way the architecture names it (:mod:`smjac.formats.heads`)
and a note says which. Only arrays are read, never a model: nothing in a file can run code.
Pickled PyTorch files are refused, with the one line that converts them. Nothing here prints;
notes come back as strings for the caller to show.
"""

from __future__ import annotations

import contextlib
import math
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from ..budget import DEFAULT_MAX_INPUT_BYTES, resolve
from ..errors import LoadError, OutputError, ShapeError, SmjacError, shell_word, shown
from . import safetensors as st
from .heads import Candidate, Hints, choose, likeliest, listing
from .keras import KERAS_EXTRA, Keras
from .pretrained import Pretrained, bias_for
from .table import Format, refuse_pickle

if TYPE_CHECKING:
    from ..maths.layer import LayoutName

__all__ = ["KERAS_EXTRA", "Checkpoint", "bias_for", "gradient_bytes", "kind", "layers", "read"]


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
        The layer's name, as ``key`` takes it (``classifier``, ``lm_head``, ``dense_1``).
    weight_key, bias_key : str
        The tensors' own names in the file (for a tied head, the embedding's).
    dtype : str
        The stored dtype, in safetensors' spelling (``F32``, ``F16``, ``BF16``, ``F64``).
    label : str
        The path given, for messages.
    notes : tuple of str
        What was chosen without being asked (the head, a tied embedding).
    tied_to : str, optional
        For a head tied to the input embedding, the embedding's tensor: the head's gradient is
        written back under ``KEY.weight``, saying it is the head's share only.
    bias_dtype : str, optional
        The bias' stored dtype when it differs from the weight's (mixed precision: a BF16 weight
        with an F32 bias); its gradient is written back in it.
    """

    W: np.ndarray
    b: np.ndarray | None
    layout: LayoutName
    source: str
    key: str
    weight_key: str
    bias_key: str | None
    dtype: str
    label: str
    notes: tuple[str, ...] = field(default=())
    tied_to: str | None = None
    bias_dtype: str | None = None

    def names(self) -> tuple[str, str]:
        """W's and b's labels for error messages: ``model.safetensors[classifier.weight]``."""
        return f"{self.label}[{shown(self.weight_key)}]", f"{self.label}[{shown(self.bias_key or 'bias')}]"

    def notes_for(self, layout: str | None) -> list[str]:
        """The notes to show when the user gave ``layout`` (None: they left it to the file)."""
        notes = list(self.notes)
        if layout is None and self.layout == "out-in":
            K, n = self.W.shape
            notes.append(
                f"{self.label}: {shown(self.weight_key)} is {K}×{n}, PyTorch's layout (K outputs × n inputs): "
                'read with layout="out-in"; layout="in-out" overrides it'
            )
        return notes

    @property
    def gradient_key(self) -> str:
        """The name the weight's gradient is written back under: a tied head's own, else the tensor's."""
        return f"{self.key}.weight" if self.tied_to else self.weight_key


def kind(path: str | Path) -> str | None:
    """``"safetensors"``, ``"folder"``, ``"keras"`` or ``"pickle"``; None for other files.

    Examples
    --------
    >>> kind("model.safetensors"), kind("model.h5"), kind("model.pt"), kind("W.json")
    ('safetensors', 'keras', 'pickle', None)
    >>> kind("out/model.safetensors.index.json")
    'safetensors'
    """
    fmt = Format.of_path(path)
    if fmt in (Format.safetensors, Format.safetensors_index):
        return "safetensors"
    if fmt in (Format.keras, Format.h5):
        return "keras"
    if fmt is Format.pickle:
        return "pickle"
    return "folder" if Path(path).is_dir() else None


class _Source(Protocol):
    label: str
    source: str
    notes: list[str]
    hints: Hints

    def candidates(self) -> list[Candidate]: ...
    def matrices(self) -> list[Candidate]: ...
    def find(self, key: str) -> tuple[Candidate, list[str]]: ...
    def load(self, name: str) -> np.ndarray: ...
    def unpaired(self, c: Candidate) -> list[str]: ...
    def close(self) -> None: ...


def _open(path: str | Path, limits: st.Limits) -> _Source:
    label = str(path)
    what = kind(path)
    if what == "pickle":
        raise refuse_pickle(label)
    if what in ("safetensors", "folder"):
        return Pretrained(Path(path), label, limits)
    if what == "keras":
        return Keras(Path(path), label, limits)
    raise LoadError(
        f"{label}: not a checkpoint; smjac reads a save_pretrained folder, .safetensors (or its "
        ".safetensors.index.json), .keras, .h5 and .hdf5"
    )


def read(
    path: str | Path,
    *,
    key: str | None = None,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    memory_budget: int | None = None,
) -> Checkpoint:
    """Read one layer's W (and b) from a checkpoint: a folder, a safetensors file or index, Keras.

    Parameters
    ----------
    path : str or Path
        The checkpoint: a ``save_pretrained`` folder, ``model.safetensors.index.json``, a
        ``.safetensors``, ``.keras`` or ``.h5`` file.
    key : str, optional
        The layer: ``classifier`` (``classifier.weight`` and ``classifier.bias``; a full tensor
        name works too), ``lm_head`` (tied to the input embedding when the file has none), or a
        Keras layer's name (``classifier`` or ``dense_1``, in both Keras formats). Without it the
        head is chosen by its name and the config's sizes, with a note; when that is unsure, a
        LoadError lists the likeliest layers.
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
        For a pickle, an unknown or missing key, a head that cannot be chosen (the message lists
        the ten likeliest layers), an integer or bool tensor, a tensor over the caps, a damaged
        file, or a Keras file without h5py installed (the message names ``smjac[keras]``).

    Examples
    --------
    >>> read("model.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    smjac.errors.LoadError: model.pt: is a pickled PyTorch file; ...
    """
    limits = st.Limits(max_bytes, resolve(memory_budget))
    with damaged(str(path)):
        return _read(path, key, limits)


def _read(path: str | Path, key: str | None, limits: st.Limits) -> Checkpoint:
    src = _open(path, limits)
    try:
        notes = list(src.notes)
        if key is None:
            c, note = choose(_candidates(src), src.hints, src.label, only=_only(src))
            notes.append(note)
        else:
            c, more = src.find(key)
            notes += more
        if c.tied_to and isinstance(src, Pretrained):
            notes.append(src.tie_note(c))
        notes += src.unpaired(c)
        _check_bias(src.label, c)
        shapes = [c.shape] + ([c.bias_shape] if c.bias_shape else [])
        _check_size(src.label, limits, shapes, st.ITEMSIZE.get(c.dtype, 8))
        W = src.load(c.weight_key)
        b = src.load(c.bias_key) if c.bias_key else None
    finally:
        src.close()
    return Checkpoint(
        W=W,
        b=b,
        layout=c.layout,
        source=src.source,
        key=c.key,
        weight_key=c.weight_key,
        bias_key=c.bias_key,
        dtype=c.dtype,
        label=src.label,
        notes=tuple(notes),
        tied_to=c.tied_to,
        bias_dtype=c.bias_dtype if c.bias_key and c.bias_dtype != c.dtype else None,
    )


# what a damaged file can raise from zipfile, zlib and h5py: none of them a LoadError
_DAMAGE = (OSError, EOFError, zlib.error, zipfile.BadZipFile)


@contextlib.contextmanager
def damaged(label: str) -> Iterator[None]:
    """A damaged checkpoint is a LoadError naming the file, whatever the library below raised.

    h5py's OSError for a corrupt gzip chunk names no file, and would otherwise be taken for a
    failure to write to standard output.
    """
    try:
        yield
    except SmjacError:
        raise
    except _DAMAGE as e:
        if isinstance(e, OSError) and e.filename is not None:
            raise LoadError(f"{label}: cannot read {e.filename} ({e.strerror or e})") from None
        raise LoadError(f"{label}: cannot be read; the file is damaged or cut short ({e})") from None


def _check_bias(label: str, c: Candidate) -> None:
    if not st.is_float(c.dtype):
        raise LoadError(
            f"{label}[{shown(c.weight_key)}]: has dtype {c.dtype}; smjac reads floating-point weights "
            "(F16, BF16, F32, F64), not integer, bool or 8-bit float tensors"
        )
    # mixed precision (a BF16 weight, an F32 bias) is how real checkpoints are kept: any float bias;
    # one of another shape ((1, K), a scalar) is refused, never dropped: Keras' and PyTorch's are (K,)
    # (its length is checked against K in the layout used, which layout= may set)
    if c.bias_key is not None and (not st.is_float(c.bias_dtype or "") or len(c.bias_shape or ()) != 1):
        raise LoadError(
            f"{label}[{shown(c.bias_key)}]: is {c.bias_dtype} of shape {c.bias_shape}; a bias is one row of K "
            "floating-point numbers, of shape (K,) (give b=FILE for another)"
        )


def _only(src: _Source) -> str:
    return "2-D tensor" if src.source == "safetensors" else "Dense-like layer"


def _candidates(src: _Source) -> list[Candidate]:
    """The source's float layers; none, when it has layers that are not float, is said so."""
    found = src.candidates()
    others = [c for c in src.matrices() if not st.is_float(c.dtype)] if not found else []
    if others:
        listed = ", ".join(f"{shown(c.key)} ({c.dtype})" for c in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        raise LoadError(
            f"{src.label}: none of its {len(others)} {_only(src)}s holds floating-point weights ({listed}{more}); "
            "smjac reads float16, bfloat16, float32 and float64, not integer, bool, string, complex or compound arrays"
        )
    return found


class Layers(NamedTuple):
    """A checkpoint's candidate layers, likeliest head first, and the head (None when unsure)."""

    label: str
    candidates: list[Candidate]
    head: Candidate | None
    notes: list[str]
    hints: Hints = Hints()


def layers(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_INPUT_BYTES, memory_budget: int | None = None
) -> Layers:
    """The layers a checkpoint holds (headers only: no tensor is read), and which is its head.

    The headers and the model's JSON are held to ``max_bytes`` and ``memory_budget`` (half the
    available memory by default) before they are read."""
    with damaged(str(path)):
        return _layers(path, st.Limits(max_bytes, resolve(memory_budget)))


def _layers(path: str | Path, limits: st.Limits) -> Layers:
    src = _open(path, limits)
    try:
        found = _candidates(src)
        notes = list(src.notes)
        try:
            head, note = choose(found, src.hints, src.label, only=_only(src))
            notes.append(note)
        except LoadError as e:
            head = None
            notes.append(str(e).split("; pick the layer", 1)[0] + "; no head is marked: key=NAME picks one")
        ranked = likeliest(found, src.hints)
    finally:
        src.close()
    return Layers(str(path), ranked, head, notes, src.hints)


def mismatch(
    ckpt: Checkpoint,
    layout: str,
    width: int,
    x_name: str,
    *,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    memory_budget: int | None = None,
) -> ShapeError | None:
    """The error for an x that does not fit the layer read: the layers it fits first, the layout second.

    None when it fits. A wrong layer fits no x of the right width, and flipping ``layout`` would
    "fix" that by computing a softmax over another layer's numbers; so the keys whose inputs take
    ``width`` entries are named first (:func:`layers` reads only headers to find them, within
    ``max_bytes`` and ``memory_budget`` as the layer was read).
    """
    W = ckpt.W
    n = W.shape[1] if layout == "out-in" else W.shape[0]
    if W.ndim != 2 or n == width:
        return None
    dims = "×".join(map(str, W.shape))
    head = f"{ckpt.names()[0]} is {dims} ({layout}: {n} inputs) but {x_name} has {width} entries per sample"
    if layout != ckpt.layout and W.shape[layout == "in-out"] == width:
        return ShapeError(
            f"{head}; as the file stores it ({ckpt.layout}) it takes {width}: leave out layout="
        )
    try:
        found = layers(ckpt.label, max_bytes=max_bytes, memory_budget=memory_budget)
    except LoadError:
        found = Layers(ckpt.label, [], None, [])
    fits = [c for c in found.candidates if c.inputs == width]
    if fits:
        listed = listing(fits, found.hints, label=ckpt.label)
        what = f"; the layers of {ckpt.label} that take {width} inputs, likeliest first:\n{listed}\n"
        what += f"pick one with key={fits[0].key!r}"
    else:
        what = (
            f"; no layer of {ckpt.label} takes {width} inputs: x must be what the head reads "
            f"(smjac inspect {shell_word(ckpt.label)} lists its layers)"
        )
    other = "in-out" if layout == "out-in" else "out-in"
    if W.shape[layout == "in-out"] == width:
        flipped = "as the file stores it" if other == ckpt.layout else "transposed"
        what += (
            f'; layout="{other}" would read {shown(ckpt.weight_key)} {flipped}, right only if it was saved so'
        )
    return ShapeError(head + what)


def _check_size(label: str, limits: st.Limits, shapes: Sequence[tuple[int, ...]], itemsize: int) -> None:
    """Refuse, before reading, tensors over the input cap or whose float64 copies do not fit."""
    count = sum(math.prod(s) for s in shapes)
    if count * itemsize > limits.max_bytes:
        raise LoadError(
            f"{label}: the layer's tensors take {count * itemsize:,} bytes, over the input size "
            f"cap of {limits.max_bytes:,} bytes; raise the cap with max_bytes"
        )
    if count * 8 > limits.memory:
        raise LoadError(
            f"{label}: the layer's tensors would take {count * 8:,} bytes as float64, over the "
            f"memory budget of {limits.memory:,} bytes"
        )


# ---------------------------------------------------------------- writing a gradient back


def gradient_tensors(ckpt: Checkpoint, W: np.ndarray, b: np.ndarray | None) -> dict[str, np.ndarray]:
    """The gradient under the checkpoint's own tensor names and shapes, in float64.

    ``W`` must have the stored weight's shape: the gradient of :func:`smjac.grad` has W's own
    shape and layout, which is the file's unless ``layout`` said otherwise (and then the file's
    tensor was read in that layout too). The bias' gradient goes in only if the file has a bias.
    A tied head's goes under the head's own name (``lm_head.weight``), not the embedding's.
    """
    W = np.asarray(W)
    if W.shape != ckpt.W.shape:
        raise OutputError(
            f"the gradient has shape {W.shape} but {shown(ckpt.weight_key)} in {ckpt.label} is "
            f"{ckpt.W.shape}; it cannot be written back under that name"
        )
    out = {ckpt.gradient_key: W}
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
        Extra ``__metadata__`` strings. A tied head's file says ``tied_to`` and ``share``.

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
    meta: dict[str, Any] = {"format": "np", "producer": "smjac"}
    if ckpt.tied_to:
        meta["tied_to"] = ckpt.tied_to
        meta["share"] = (
            f"the head's share only: dLoss/d{ckpt.gradient_key} through the output layer; the full "
            f"gradient of {ckpt.tied_to} adds the share of its use as the input embedding"
        )
    meta |= dict(metadata or {})
    what = f"{shown(ckpt.weight_key)} in {ckpt.label}"
    tensors = gradient_tensors(ckpt, W, b)
    dtypes = {k: (ckpt.bias_dtype or ckpt.dtype) if k == ckpt.bias_key else ckpt.dtype for k in tensors}
    return st.encode(tensors, dtypes, meta, what=what)
