"""Hugging Face checkpoints: a ``save_pretrained`` folder, a sharded index, or one safetensors file.

A folder holds ``model.safetensors``, or shards listed in ``model.safetensors.index.json``
(``{"metadata": {...}, "weight_map": {tensor: shard file}}``), and a ``config.json``. The config
is read as data, never run (its ``auto_map`` names code smjac does not load), and only for what
says which layer is the head: ``architectures``, ``id2label``, ``vocab_size`` and
``tie_word_embeddings``. Of the shards, a layer read by ``key`` costs the headers and bytes of
the shard(s) holding its weight and bias; choosing the head without ``key`` reads every shard's
header (a few kilobytes each) and still only the head's bytes.

Tied heads: GPT-2 and most small language models compute their logits with the input embedding
(``transformer.wte.weight``, ``model.embed_tokens.weight``), so the file holds no
``lm_head.weight``. ``key="lm_head"`` then reads that embedding (vocab × hidden, out-in) and says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LoadError, reading, shown
from . import safetensors as st
from .heads import Candidate, Hints, is_embedding, refusal

if TYPE_CHECKING:
    from ..maths.layer import LayoutName

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
INDEX_SUFFIX = ".safetensors.index.json"
CONFIG = "config.json"
MAX_JSON_BYTES = 16 * 2**20  # a config.json or an index is kilobytes; a 400B model's index is < 1 MiB
_LM = ("ForCausalLM", "LMHeadModel", "ForMaskedLM", "ForConditionalGeneration", "WithLMHead")
_WEIGHT_LEAVES = ("weight", "kernel")
# GPT-2's Conv1D stores its weight n×K (in-out), unlike nn.Linear: its attention and MLP layers
_CONV1D = {"gpt2": ("c_attn", "c_proj", "c_fc")}


def is_index(path: str | Path) -> bool:
    return Path(path).name.lower().endswith(INDEX_SUFFIX)


def read_json(path: Path, label: str, limits: st.Limits) -> Any:
    """A model's JSON file as data, refused before it is read when over :data:`MAX_JSON_BYTES`,
    the input cap or what the memory budget lets it be parsed into (``limits``)."""
    st.regular_file(path, label)
    with reading(label):
        size = os.stat(path).st_size
        if size > MAX_JSON_BYTES:
            raise LoadError(
                f"{label}: is {size:,} bytes, over the {MAX_JSON_BYTES:,} smjac reads of a model's JSON"
            )
        limits.json(size, label, "it")
        with open(path, "rb") as f:
            data = f.read(size + 1)
    if len(data) > size:  # it grew since: what was checked is not what would be parsed
        raise LoadError(f"{label}: changed while it was read")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise LoadError(f"{label}: is not valid JSON ({e})") from None


# ---------------------------------------------------------------- config.json


@dataclass(frozen=True)
class Config:
    """What a model's ``config.json`` says about its head."""

    tie: bool | None = None  # tie_word_embeddings as written; None: left at transformers' default
    labels: int | None = None  # len(id2label)
    vocab: int | None = None
    architectures: tuple[str, ...] = ()
    model_type: str = ""
    classes: int | None = None  # timm's num_classes

    @property
    def lm(self) -> bool:
        return any(a.endswith(_LM) for a in self.architectures)

    @property
    def ties(self) -> bool:
        """Whether the head is the input embedding: transformers' default is True."""
        return self.tie is not False

    def hints(self) -> Hints:
        if any("Classification" in a for a in self.architectures) and self.labels:
            return Hints(self.labels, f"config.json's id2label ({self.labels} labels)")
        if self.lm and self.vocab:
            return Hints(self.vocab, f"config.json's vocab_size ({self.vocab})", lm=True)
        if self.classes and not self.architectures:
            return Hints(self.classes, f"config.json's num_classes ({self.classes})")
        return Hints(lm=self.lm)


def read_config(path: Path, limits: st.Limits) -> tuple[Config | None, list[str]]:
    """``config.json`` as data, when there is one; an unreadable one costs its hints, said in a note."""
    if not os.path.lexists(path):
        return None, []
    try:
        obj = read_json(path, str(path), limits)
    except LoadError as e:
        return None, [f"{e}; its hints on the head are not used"]
    if not isinstance(obj, dict):
        return None, [f"{path}: is not a JSON object; its hints on the head are not used"]
    if not obj.get("vocab_size") and isinstance(obj.get("text_config"), dict):
        obj = {**obj, "vocab_size": obj["text_config"].get("vocab_size")}  # a multimodal model's LM

    def count(v: Any) -> int | None:
        return v if type(v) is int and v > 0 else None

    labels = obj.get("id2label")
    archs = obj.get("architectures")
    tie = obj.get("tie_word_embeddings")
    return (
        Config(
            tie=tie if isinstance(tie, bool) else None,
            labels=len(labels) if isinstance(labels, dict) and labels else count(obj.get("num_labels")),
            vocab=count(obj.get("vocab_size")),
            architectures=tuple(a for a in archs if isinstance(a, str)) if isinstance(archs, list) else (),
            model_type=str(obj.get("model_type", "")),
            classes=count(obj.get("num_classes")),
        ),
        [],
    )


# ---------------------------------------------------------------- names


def layer_name(weight_key: str) -> str:
    """The layer a weight tensor belongs to, as ``key`` takes it: ``classifier.weight`` →
    ``classifier``; a bare state_dict's ``weight`` stays ``weight``."""
    prefix, dot, leaf = weight_key.rpartition(".")
    return prefix if dot and leaf in _WEIGHT_LEAVES else weight_key


def bias_for(weight_key: str, names: Any) -> str | None:
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


# ---------------------------------------------------------------- the tensors of a checkpoint


class Pretrained:
    """The safetensors tensors a path names, with the model's config when it has one.

    ``path`` is a ``save_pretrained`` folder, its ``model.safetensors.index.json``, or a
    ``.safetensors`` file (whose ``config.json`` beside it is read when the file is named
    ``model.safetensors``, as ``save_pretrained`` names it). Headers are read when first needed.
    """

    source = "safetensors"

    def __init__(self, path: Path, label: str, limits: st.Limits):
        self.label, self.limits = label, limits
        self.notes: list[str] = []
        self._headers: dict[Path, st.Header] = {}
        if path.is_dir():
            folder, path, beside = path, self._in_folder(path), True
        else:  # save_pretrained's own names: the config beside them is the model's
            folder, beside = path.parent, is_index(path) or path.name == WEIGHTS
        self.index: Path | None = path if is_index(path) else None
        self.config: Config | None = None
        if beside:
            self.config, notes = read_config(folder / CONFIG, limits)
            self.notes += notes
        self.hints = self.config.hints() if self.config else Hints()
        if self.index is not None:
            self.shard_of = self._weight_map(self.index)
        else:
            header = self._header(path)
            self.shard_of = dict.fromkeys(header.entries, path)

    def _in_folder(self, folder: Path) -> Path:
        for name in (WEIGHTS, INDEX):
            if os.path.lexists(folder / name):  # a FIFO or a device is refused as such, not passed over
                st.regular_file(folder / name, str(folder / name))
                return folder / name
        found = sorted(p.name for p in folder.glob("*.safetensors"))[:3]
        pickled = [n for n in ("pytorch_model.bin", "pytorch_model.bin.index.json") if (folder / n).exists()]
        hint = f"; it holds {', '.join(found)}: give one as layer={str(folder / found[0])!r}" if found else ""
        if pickled and not found:
            hint = f"; it holds {pickled[0]}, a pickle smjac does not load: save_pretrained(..., safe_serialization=True) writes safetensors"
        raise LoadError(f"{self.label}: holds no {WEIGHTS} nor {INDEX}, as save_pretrained writes{hint}")

    def _weight_map(self, index: Path) -> dict[str, Path]:
        label = str(index)
        obj = read_json(index, label, self.limits)
        wmap = obj.get("weight_map") if isinstance(obj, dict) else None
        if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
            raise LoadError(
                f'{label}: has no "weight_map" of tensor names to shard files; not a safetensors index'
            )
        for shard in set(wmap.values()):
            if Path(shard).name != shard or shard in ("", ".", "..") or not shard.endswith(".safetensors"):
                raise LoadError(
                    f"{label}: names the shard {shard!r}; smjac reads only .safetensors files in the index's own folder"
                )
        return {k: index.parent / v for k, v in wmap.items()}

    def _header(self, shard: Path) -> st.Header:
        if shard not in self._headers:  # the headers read are kept: together they keep the budget
            held = sum(h.data_start - 8 for h in self._headers.values())
            self._headers[shard] = st.read_header(shard, str(shard), self.limits, held=held)
        return self._headers[shard]

    @property
    def names(self) -> dict[str, Path]:
        return self.shard_of

    def entry(self, name: str) -> tuple[st.Header, st.Entry]:
        """A tensor's header entry, reading only the header of the shard that holds it."""
        header = self._header(self.shard_of[name])
        if name not in header.entries:
            raise LoadError(
                f"{self.index}: its weight_map puts {shown(name)} in {shown(header.path.name)}, which does not hold it"
            )
        return header, header.entries[name]

    def load(self, name: str) -> np.ndarray:
        header, _ = self.entry(name)
        return st.read_tensor(header, name)

    # ------------------------------------------------------------ candidates

    def _candidate(self, weight_key: str, order: int = 0, *, key: str | None = None) -> Candidate:
        _, e = self.entry(weight_key)
        bias = bias_for(f"{key}.weight" if key else weight_key, self.names)
        b = self.entry(bias)[1] if bias else None
        return Candidate(
            key=key or layer_name(weight_key),
            weight_key=weight_key,
            shape=(e.shape[0], e.shape[1]),
            dtype=e.dtype,
            bias_key=bias,
            bias_shape=b.shape if b else None,
            bias_dtype=b.dtype if b else None,
            tied_to=weight_key if key else None,
            order=order,
            layout=self._layout(weight_key),
        )

    def _layout(self, weight_key: str) -> LayoutName:
        conv1d = _CONV1D.get(self.config.model_type if self.config else "", ())
        return "in-out" if layer_name(weight_key).rpartition(".")[2] in conv1d else "out-in"

    def matrices(self) -> list[Candidate]:
        """Every 2-D tensor as a layer, of any dtype."""
        return [self._candidate(n, i) for i, n in enumerate(self.names) if len(self.entry(n)[1].shape) == 2]

    def candidates(self) -> list[Candidate]:
        """Every 2-D float tensor as a layer, and a tied ``lm_head`` when the config ties one."""
        found = [c for c in self.matrices() if st.is_float(c.dtype)]
        c = self.config
        if c is not None and c.ties and c.lm and "lm_head.weight" not in self.names:
            tied = self._tied(found)
            if tied is not None:
                found.append(tied)
        return found

    def _tied(self, found: list[Candidate]) -> Candidate | None:
        embeds = [c for c in found if is_embedding(c.key) and c.layout == "out-in"]
        if self.hints.outputs is not None:
            embeds = [c for c in embeds if c.shape[0] == self.hints.outputs]
        if len(embeds) != 1:
            return None
        return self._candidate(embeds[0].weight_key, len(self.names), key="lm_head")

    def tie_note(self, c: Candidate) -> str:
        """What a user must know of a tied head: where it came from and what its gradient is."""
        cfg = self.config
        if cfg is None:
            said = "there is no config.json; assumed tied, as GPT-2 and most small language models are"
        elif cfg.tie:
            said = "config.json: tie_word_embeddings is true"
        else:
            said = "config.json leaves tie_word_embeddings at transformers' default, true"
        V, h = c.shape
        return (
            f"{self.label}: has no lm_head.weight: lm_head is tied to {shown(c.tied_to or '')} ({said}), read as the "
            f"head, {V}×{h} (K×n, out-in); its gradient here is the head's share only, not the "
            "embedding's whole gradient"
        )

    def find(self, key: str) -> tuple[Candidate, list[str]]:
        """The layer ``key`` names (``classifier``, a full tensor name, ``lm_head`` when tied)."""
        names, notes = self.names, []
        weight = key if key in names else f"{key}.weight" if f"{key}.weight" in names else None
        if weight is None and key.removesuffix(".weight") == "lm_head":
            return self._tied_by_key(key)
        if weight is None:
            ends = [n for n in names if n.endswith((f".{key}.weight", f".{key}"))]
            if len(ends) > 1:
                listed = [c for c in self.candidates() if c.weight_key in ends]
                raise refusal(
                    self.label, f"key={key!r} ends the names of {len(ends)} tensors", listed, self.hints
                )
            if not ends:
                raise refusal(
                    self.label, f"no tensor {key!r} or {key + '.weight'!r}", self.candidates(), self.hints
                )
            weight = ends[0]
            notes.append(
                f"{self.label}: key={key!r} read as {shown(weight)}, the one tensor whose name ends so"
            )
        _, e = self.entry(weight)
        if len(e.shape) != 2:
            why = f"{shown(weight)} has shape {e.shape}, not a matrix"
            raise refusal(self.label, why, self.candidates(), self.hints)
        return self._candidate(weight), notes

    def _tied_by_key(self, key: str) -> tuple[Candidate, list[str]]:
        cfg = self.config
        if cfg is not None and cfg.tie is False:
            why = (
                "no lm_head.weight, though config.json says tie_word_embeddings is false: the head is missing"
            )
            raise refusal(self.label, why, self.candidates(), self.hints)
        found = [
            self._candidate(n, i)
            for i, n in enumerate(self.names)
            if is_embedding(layer_name(n))
            and len(self.entry(n)[1].shape) == 2
            and st.is_float(self.entry(n)[1].dtype)
        ]
        tied = self._tied(found)
        if tied is None:
            why = f"no {key}, and no one input embedding it could be tied to"
            raise refusal(self.label, why, found or self.candidates(), self.hints)
        return tied, []

    def unpaired(self, c: Candidate) -> list[str]:
        """A note for each 1-D tensor beside the weight that could be its bias, unpaired by name."""
        if c.bias_key is not None or c.tied_to:
            return []
        header, _ = self.entry(c.weight_key)
        loose = [  # another layer's weight (a norm's, say) is never a bias
            k
            for k, e in header.entries.items()
            if e.shape == (c.outputs,) and st.is_float(e.dtype) and layer_name(k) == k
        ]
        return [
            f"{self.label}: {shown(k)} ({c.outputs} {header.entries[k].dtype}) is not used as {shown(c.weight_key)}'s "
            "bias (its name does not pair with it); give it with b= if it is the bias"
            for k in loose[:3]
        ]

    def close(self) -> None:
        pass
