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
* ``x.json``: one input.

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
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"pre_classifier", b"classifier"]
        for layer in ("pre_classifier", "classifier"):
            g = root.create_group(layer)
            names = [f"{layer}/kernel:0", f"{layer}/bias:0"]
            g.attrs["weight_names"] = [n.encode() for n in names]
            g.create_dataset(names[0], data=a[f"{layer}.weight"].T, track_times=False)
            g.create_dataset(names[1], data=a[f"{layer}.bias"], track_times=False)


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


if __name__ == "__main__":
    main()
