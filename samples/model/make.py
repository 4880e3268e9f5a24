"""Write the small model checkpoints in samples/model/: one classifier head in three formats.

A two-layer classifier on n = 6 inputs and K = 4 classes: ``pre_classifier`` (6 → 6) then
``classifier`` (6 → 4), the head smjac looks at. The same numbers go into each file, each in its
framework's layout:

* ``classifier.safetensors``: Hugging Face / PyTorch names and layout, ``classifier.weight``
  K×n and ``classifier.bias``, plus ``pre_classifier.weight`` and ``.bias`` (so ``--key`` matters);
* ``model.keras``: Keras 3's zip, whose ``model.weights.h5`` holds ``layers/dense/vars/0`` (the
  hidden kernel, n×n) and ``layers/dense_1/vars/0`` and ``/1`` (the head's kernel n×K, bias K),
  with a ``config.json`` naming them ``pre_classifier`` and ``classifier``;
* ``model.h5``: Keras' legacy HDF5, ``model_weights/classifier/classifier/kernel:0`` and
  ``bias:0``, listed in the ``layer_names`` and ``weight_names`` attributes;
* ``tiny-gpt2/``: a ``save_pretrained`` folder of a GPT-2-like language model (vocabulary 10,
  hidden size 6, one block): ``config.json`` and ``model.safetensors`` with
  ``transformer.wte.weight`` and no ``lm_head.weight``, since GPT-2 ties its head to the embedding;
  GPT-2's own ``Conv1D`` layers store their weights n×K, as its checkpoints do;
* ``tiny-llama/``: a Llama-like sequence classifier (two blocks, a ``score`` head of 3 labels),
  sharded as ``save_pretrained(max_shard_size=...)`` writes it: ``model-00001-of-00002.safetensors``
  (the embedding and both blocks), ``model-00002-of-00002.safetensors`` (the final norm and
  ``score.weight``) and ``model.safetensors.index.json``;
* ``x.json``: one input (hidden size 6, so it fits every head here).

Only numpy, safetensors and h5py are needed (no torch, no TensorFlow). Run it from anywhere:
``python samples/model/make.py``; the files are rewritten byte for byte the same.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
from safetensors.numpy import save_file

HERE = Path(__file__).resolve().parent
N_IN, K = 6, 4


def arrays() -> dict[str, np.ndarray]:
    """The model's numbers (PyTorch's layout: weight K×n), rounded so they print short."""
    rng = np.random.default_rng(2025)

    def draw(*shape: int) -> np.ndarray:
        return np.round(rng.standard_normal(shape), 2).astype(np.float32)

    return {
        "pre_classifier.weight": draw(N_IN, N_IN),
        "pre_classifier.bias": draw(N_IN),
        "classifier.weight": draw(K, N_IN),
        "classifier.bias": draw(K),
        "x": np.round(rng.standard_normal(N_IN), 2),
    }


def _gpt2(rng: np.random.Generator) -> dict[str, np.ndarray]:
    V, H = 10, N_IN

    def draw(*shape: int) -> np.ndarray:
        return np.round(rng.standard_normal(shape), 2).astype(np.float32)

    t = {"transformer.wte.weight": draw(V, H), "transformer.wpe.weight": draw(8, H)}
    for name, shape in (
        ("ln_1", None),
        ("attn.c_attn", (H, 3 * H)),  # Conv1D: n×K
        ("attn.c_proj", (H, H)),
        ("ln_2", None),
        ("mlp.c_fc", (H, 4 * H)),
        ("mlp.c_proj", (4 * H, H)),
    ):
        out = H if shape is None else shape[1]
        t[f"transformer.h.0.{name}.weight"] = np.ones(H, np.float32) if shape is None else draw(*shape)
        t[f"transformer.h.0.{name}.bias"] = np.zeros(out, np.float32)
    t["transformer.ln_f.weight"], t["transformer.ln_f.bias"] = np.ones(H, np.float32), np.zeros(H, np.float32)
    return t


GPT2_CONFIG = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "n_embd": N_IN,
    "n_head": 2,
    "n_layer": 1,
    "n_positions": 8,
    "tie_word_embeddings": True,
    "vocab_size": 10,
}


def _llama(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    V, H, F = 16, N_IN, 12

    def draw(*shape: int) -> np.ndarray:
        return np.round(rng.standard_normal(shape), 2).astype(np.float32)

    first = {"model.embed_tokens.weight": draw(V, H)}
    for i in range(2):
        p = f"model.layers.{i}."
        first |= {
            p + "input_layernorm.weight": np.ones(H, np.float32),
            p + "self_attn.q_proj.weight": draw(H, H),
            p + "self_attn.k_proj.weight": draw(H, H),
            p + "self_attn.v_proj.weight": draw(H, H),
            p + "self_attn.o_proj.weight": draw(H, H),
            p + "post_attention_layernorm.weight": np.ones(H, np.float32),
            p + "mlp.gate_proj.weight": draw(F, H),
            p + "mlp.up_proj.weight": draw(F, H),
            p + "mlp.down_proj.weight": draw(H, F),
        }
    second = {"model.norm.weight": np.ones(H, np.float32), "score.weight": draw(3, H)}
    return first, second


LLAMA_CONFIG = {
    "architectures": ["LlamaForSequenceClassification"],
    "hidden_size": N_IN,
    "id2label": {"0": "negative", "1": "neutral", "2": "positive"},
    "label2id": {"negative": 0, "neutral": 1, "positive": 2},
    "intermediate_size": 12,
    "model_type": "llama",
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "vocab_size": 16,
}


def _save_pretrained(folder: Path, config: dict, *shards: dict[str, np.ndarray]) -> None:
    """A folder as transformers' save_pretrained writes it: config.json, then one model.safetensors
    or numbered shards and the index mapping each tensor to its shard."""
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], folder / "model.safetensors", metadata=meta)
        return
    weight_map, size = {}, 0
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, folder / name, metadata=meta)
        weight_map |= dict.fromkeys(shard, name)
        size += sum(a.nbytes for a in shard.values())
    index = {"metadata": {"total_size": size}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _keras3_weights(a: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w", track_order=True) as f:
        f.create_group("vars")  # the model's own (none), as Keras writes it
        for stored, layer in (("dense", "pre_classifier"), ("dense_1", "classifier")):
            g = f.create_group(f"layers/{stored}/vars")
            g.create_dataset("0", data=a[f"{layer}.weight"].T, track_times=False)  # Keras: n×K
            g.create_dataset("1", data=a[f"{layer}.bias"], track_times=False)
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def _legacy_h5(path: Path, a: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(_keras2_config()).encode()
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"pre_classifier", b"classifier"]
        for layer in ("pre_classifier", "classifier"):
            g = root.create_group(layer)
            names = [f"{layer}/kernel:0", f"{layer}/bias:0"]
            g.attrs["weight_names"] = [n.encode() for n in names]
            g.create_dataset(names[0], data=a[f"{layer}.weight"].T, track_times=False)
            g.create_dataset(names[1], data=a[f"{layer}.bias"], track_times=False)


def _keras2_config() -> dict:
    """The model_config attribute Keras 2's model.save("model.h5") writes: the layers' classes."""
    layers = [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, N_IN], "name": "input_1"}},
        {"class_name": "Dense", "config": {"name": "pre_classifier", "units": N_IN, "activation": "relu"}},
        {"class_name": "Dense", "config": {"name": "classifier", "units": K, "activation": "softmax"}},
    ]
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def main() -> None:
    a = arrays()
    save_file({k: v for k, v in a.items() if k != "x"}, HERE / "classifier.safetensors")
    layers = [
        {"class_name": "InputLayer", "config": {"name": "input_layer", "batch_shape": [None, N_IN]}},
        {"class_name": "Dense", "config": {"name": "pre_classifier", "units": N_IN, "activation": "relu"}},
        {"class_name": "Dense", "config": {"name": "classifier", "units": K, "activation": "softmax"}},
    ]
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    _zip(
        HERE / "model.keras",
        {
            "metadata.json": json.dumps({"keras_version": "3.4.1"}).encode(),
            "config.json": json.dumps(config).encode(),
            "model.weights.h5": _keras3_weights(a),
        },
    )
    _legacy_h5(HERE / "model.h5", a)
    (HERE / "x.json").write_text(json.dumps(a["x"].tolist()) + "\n")
    rng = np.random.default_rng(2026)
    _save_pretrained(HERE / "tiny-gpt2", GPT2_CONFIG, _gpt2(rng))
    _save_pretrained(HERE / "tiny-llama", LLAMA_CONFIG, *_llama(rng))


if __name__ == "__main__":
    main()
