"""A Keras layer's names work alike in .keras and .h5: its own (classifier) and Keras 3's stored
one (dense_1), with the files laid out as Keras writes them (h5py here, not smjac)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from smjac.errors import LoadError
from smjac.formats import checkpoints

h5py = pytest.importorskip("h5py")

RNG = np.random.default_rng(5)
N_IN = 5


def model(own: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dense layers in order: own name → (kernel n×K, bias); each of its own size, to tell them apart."""
    return {
        name: (
            RNG.standard_normal((N_IN, 2 + i)).astype(np.float32),
            RNG.standard_normal(2 + i).astype(np.float32),
        )
        for i, name in enumerate(own)
    }


def config(layers: dict) -> dict:
    dense = [
        {"class_name": "Dense", "config": {"name": n, "units": int(b.size)}} for n, (_, b) in layers.items()
    ]
    body = [{"class_name": "InputLayer", "config": {"name": "input_1"}}, *dense]
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": body}}


def keras3(path: Path, layers: dict) -> None:
    """model.keras: Keras 3 stores layer i of a class as layers/<class>[_i]/vars/0 and /1."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        for i, (kernel, bias) in enumerate(layers.values()):
            g = f.create_group(f"layers/{'dense' if i == 0 else f'dense_{i}'}/vars")
            g["0"], g["1"] = kernel, bias
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.4.1"}))
        z.writestr("config.json", json.dumps(config(layers)))
        z.writestr("model.weights.h5", buf.getvalue())


def keras2(path: Path, layers: dict, *, with_config: bool = True) -> None:
    """model.h5 as Keras 2's model.save writes it: model_config, then groups under the own names."""
    with h5py.File(path, "w") as f:
        if with_config:
            f.attrs["model_config"] = json.dumps(config(layers)).encode()
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"input_1", *(n.encode() for n in layers)]
        root.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        for name, (kernel, bias) in layers.items():
            g = root.create_group(name)
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            g[f"{name}/kernel:0"], g[f"{name}/bias:0"] = kernel, bias


WRITERS = {"model.keras": keras3, "model.h5": keras2}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_own_and_stored_names_work_in_both(tmp_path, name):
    layers = model(["hidden", "pre_classifier", "classifier"])
    path = tmp_path / name
    WRITERS[name](path, layers)
    for key, own in [
        ("hidden", "hidden"),
        ("dense", "hidden"),
        ("dense_1", "pre_classifier"),
        ("dense_2", "classifier"),
        ("classifier", "classifier"),
    ]:
        ck = checkpoints.read(path, key=key)
        assert (ck.key, ck.layout) == (own, "in-out") and not ck.notes
        assert_array_equal(ck.W, layers[own][0])
        assert_array_equal(ck.b, layers[own][1])
    assert checkpoints.read(path).key == "classifier"  # without --key: the one named as a head
    with pytest.raises(LoadError, match=r"no layer 'dense_3'"):
        checkpoints.read(path, key="dense_3")


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_an_own_name_that_is_another_layers_stored_name_wins_and_says_so(tmp_path, name):
    # Keras 2 numbers its automatic names across a session: a second model's layers are dense_1, dense_2
    layers = model(["dense_1", "dense_2"])
    path = tmp_path / name
    WRITERS[name](path, layers)
    ck = checkpoints.read(path, key="dense_1")
    assert ck.key == "dense_1"
    assert_array_equal(ck.W, layers["dense_1"][0])
    assert ck.notes == (
        f"{path}: key='dense_1' is the layer named dense_1; Keras 3 stores another, dense_2, as dense_1: "
        "give key='dense_2' for that one",
    )
    # neither is named as a head: the model's last Dense layer, said so
    ck = checkpoints.read(path)
    assert ck.key == "dense_2" and "the model's last Dense-like layer; key=NAME picks another" in ck.notes[0]


def test_a_weights_only_h5_counts_its_dense_layers_and_says_so(tmp_path):
    layers = model(["hidden", "classifier"])
    path = tmp_path / "weights.h5"
    keras2(path, layers, with_config=False)
    ck = checkpoints.read(path, key="dense_1")
    assert ck.key == "classifier"
    assert "the file says no layer classes" in ck.notes[0]
