"""Model checkpoints in, gradients out: files written here by safetensors and h5py, not by smjac."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import smjac
from smjac.errors import LoadError, OutputError
from smjac.formats import checkpoints
from smjac.inputs import load_layer

h5py = pytest.importorskip("h5py")
st = pytest.importorskip("safetensors.numpy")

RNG = np.random.default_rng(13)
K, N_IN = 4, 6
X = RNG.standard_normal(N_IN)


def head(dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    return RNG.standard_normal((K, N_IN)).astype(dtype), RNG.standard_normal(K).astype(dtype)


def write_x(tmp_path: Path) -> Path:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(X.tolist()))
    return path


def bf16_file(path: Path, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A BF16 safetensors file written by hand (8-byte length, JSON header, data); returns the
    float32 values it holds, which are exact: each float32's low 16 bits are cleared first."""
    header, blobs, offset, exact = {}, [], 0, {}
    for name, a in tensors.items():
        bits32 = np.ascontiguousarray(a, dtype="<f4").view("<u4") & np.uint32(0xFFFF0000)
        exact[name] = bits32.view("<f4").copy()
        raw = (bits32 >> np.uint32(16)).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return exact


# ---------------------------------------------------------------- safetensors


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_safetensors_key_reads_weight_and_bias_in_pytorch_layout(tmp_path, dtype):
    W, b = head(dtype)
    pre = RNG.standard_normal((N_IN, N_IN)).astype(dtype)
    path = tmp_path / "model.safetensors"
    st.save_file({"classifier.weight": W, "classifier.bias": b, "pre_classifier.weight": pre}, path)
    ck = checkpoints.read(path, key="classifier")
    assert (ck.weight_key, ck.bias_key, ck.layout, ck.source) == (
        "classifier.weight",
        "classifier.bias",
        "out-in",
        "safetensors",
    )
    assert ck.dtype == {np.float32: "F32", np.float16: "F16", np.float64: "F64"}[dtype]
    assert_array_equal(ck.W, W)
    assert_array_equal(ck.b, b)
    assert ck.W.dtype == dtype
    assert any('read with layout="out-in"; layout="in-out" overrides it' in n for n in ck.notes_for(None))
    assert not any("layout=" in n for n in ck.notes_for("out-in"))
    L = load_layer(None, write_x(tmp_path), layer=path, key="classifier")
    assert L.layout == "out-in" and L.W.dtype == np.float64
    assert_allclose(
        smjac.layer_forward(L).h,
        smjac.forward(W.astype(float), X, b.astype(float), layout="out-in").h,
        rtol=1e-13,
    )


def test_safetensors_bf16_is_read_exactly(tmp_path):
    W, b = head()
    path = tmp_path / "bf16.safetensors"
    exact = bf16_file(path, {"classifier.weight": W, "classifier.bias": b})
    ck = checkpoints.read(path, key="classifier")
    assert ck.dtype == "BF16" and ck.W.dtype == np.float32
    assert_array_equal(ck.W, exact["classifier.weight"])
    assert_array_equal(ck.b, exact["classifier.bias"])


def test_safetensors_without_bias_and_a_full_tensor_name(tmp_path):
    W, _ = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"lm_head.weight": W}, path)
    ck = checkpoints.read(path, key="lm_head.weight")
    assert ck.b is None and ck.bias_key is None and ck.key == "lm_head"
    assert_array_equal(ck.W, W)


def test_bare_state_dict_keeps_its_bias(tmp_path):
    """save_file(nn.Linear(6, 4).state_dict(), ...) stores bare 'weight' and 'bias'; both are used."""
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"weight": W, "bias": b}, path)
    for key in (None, "weight"):
        ck = checkpoints.read(path, key=key)
        assert (ck.weight_key, ck.bias_key) == ("weight", "bias")
        assert_array_equal(ck.b, b)
    # the loss by hand, from the logits z = W x + b (PyTorch's layout), not through smjac
    z = W.astype(float) @ X + b.astype(float)
    loss = np.log(np.exp(z - z.max()).sum()) + z.max() - z[3]
    L = load_layer(None, write_x(tmp_path), layer=checkpoints.read(path))
    g = smjac.layer_grad(L, target=3)
    assert_allclose(g.loss, loss, rtol=1e-14)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert_allclose(g.b, p - np.eye(K)[3], rtol=1e-13, atol=1e-16)
    back = st.load(checkpoints.gradient_bytes(checkpoints.read(path), g.W, g.b))
    assert set(back) == {"weight", "bias"}


@pytest.mark.parametrize(
    ("names", "bias"),
    [
        (("fc.weight", "fc.bias"), "fc.bias"),
        (("dense/kernel", "dense/bias"), "dense/bias"),
        (("kernel", "bias"), "bias"),
        (("fc.weight", "bias"), None),  # another layer's name never pairs
        (("weight", "fc.bias"), None),
    ],
)
def test_bias_pairs_by_name_only(tmp_path, names, bias):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({names[0]: W, names[1]: b}, path)
    ck = checkpoints.read(path, key=names[0])
    assert ck.bias_key == bias
    unpaired = [n for n in ck.notes if "is not used as" in n]
    assert unpaired == (
        []
        if bias
        else [
            f"{path}: {names[1]} (4 F32) is not used as {names[0]}'s bias (its name does not pair with it); give it with b= if it is the bias"
        ]
    )


def test_safetensors_one_matrix_is_used_with_a_note(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"score.weight": W, "score.bias": b, "step": np.array([3], dtype=np.int64)}, path)
    ck = checkpoints.read(path)
    assert ck.key == "score" and ck.bias_key == "score.bias"
    assert ck.notes == (f"{path}: using score.weight (4×6 F32), its only 2-D tensor",)


def test_safetensors_several_unnamed_layers_and_no_key_lists_them(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"dense_a.weight": W, "dense_a.bias": b, "dense_b.weight": W.T.copy()}, path)
    with pytest.raises(LoadError) as e:
        checkpoints.read(path)
    msg = str(e.value)
    assert "no layer is named as a head" in msg and "key=NAME" in msg
    assert "\n  dense_a.weight (4×6 F32)\n" in msg and msg.endswith("\n  dense_b.weight (6×4 F32)")


def test_safetensors_unknown_key_lists_candidates(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"classifier.weight": W, "classifier.bias": b}, path)
    with pytest.raises(
        LoadError, match=r"(?s)no tensor 'head' or 'head.weight'.*classifier.weight \(4×6 F32\)"
    ):
        checkpoints.read(path, key="head")


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.bool_])
def test_safetensors_integer_and_bool_tensors_are_refused(tmp_path, dtype):
    path = tmp_path / "m.safetensors"
    st.save_file({"q.weight": np.ones((K, N_IN), dtype=dtype)}, path)
    with pytest.raises(LoadError, match="floating-point weights"):
        checkpoints.read(path, key="q")


def test_safetensors_caps_are_checked_before_reading(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"classifier.weight": W, "classifier.bias": b}, path)
    with pytest.raises(LoadError, match="over the input size cap"):
        checkpoints.read(path, key="classifier", max_bytes=W.nbytes)
    with pytest.raises(LoadError, match="over the memory budget"):
        checkpoints.read(path, key="classifier", memory_budget=8 * W.size)


def test_damaged_safetensors_is_a_load_error(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(LoadError, match="not a valid safetensors file"):
        checkpoints.read(path)


# ---------------------------------------------------------------- Keras


def keras3_weights(layers: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> bytes:
    """model.weights.h5 as Keras 3 writes it: layers/<name>/vars/0 (kernel), vars/1 (bias)."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        for name, (kernel, bias) in layers.items():
            g = f.create_group(f"layers/{name}/vars")
            g["0"] = kernel
            if bias is not None:
                g["1"] = bias
        f.create_group("optimizer/vars")["0"] = np.array(7)
    return buf.getvalue()


def keras_zip(path: Path, layers, config_layers=()) -> None:
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": list(config_layers)}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.4.1"}))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", keras3_weights(layers))


def legacy_h5(path: Path, layers, *, keras2=True, weights_only=False) -> None:
    """A legacy HDF5 file: layer_names on the weights group, weight_names on each layer's group,
    datasets named by those (``dense_1/kernel:0`` in Keras 2, ``dense_1/kernel`` in Keras 3)."""
    with h5py.File(path, "w") as f:
        root = f if weights_only else f.create_group("model_weights")
        if not weights_only:
            f.attrs["model_config"] = json.dumps({"class_name": "Sequential"}).encode()
        root.attrs["layer_names"] = [n.encode() for n in [*layers, "dropout"]]
        root.create_group("dropout").attrs["weight_names"] = np.array([], dtype="S1")
        for name, (kernel, bias) in layers.items():
            g = root.create_group(name)
            suffix = ":0" if keras2 else ""
            names = [f"{name}/kernel{suffix}"] + ([f"{name}/bias{suffix}"] if bias is not None else [])
            g.attrs["weight_names"] = [n.encode() for n in names]
            g[names[0]] = kernel
            if bias is not None:
                g[names[1]] = bias


def test_keras_zip_key_picks_the_kernel_in_the_posts_layout(tmp_path):
    W, b = head()
    hidden = RNG.standard_normal((3, N_IN)).astype(np.float32)
    path = tmp_path / "model.keras"
    keras_zip(path, {"dense": (hidden, np.zeros(N_IN, np.float32)), "dense_1": (W.T.copy(), b)})
    ck = checkpoints.read(path, key="dense_1")
    assert (ck.layout, ck.source, ck.dtype) == ("in-out", "keras", "F32")
    assert (ck.weight_key, ck.bias_key) == ("layers/dense_1/vars/0", "layers/dense_1/vars/1")
    assert_array_equal(ck.W, W.T)
    assert_array_equal(ck.b, b)
    assert ck.notes_for(None) == []
    L = load_layer(None, write_x(tmp_path), layer=path, key="dense_1")
    assert L.layout == "in-out"
    assert_allclose(
        smjac.layer_forward(L).h,
        smjac.forward(W.astype(float), X, b.astype(float), layout="out-in").h,
        rtol=1e-13,
    )


def test_keras_zip_layer_names_from_config(tmp_path):
    W, b = head()
    path = tmp_path / "model.keras"
    config = [
        {"class_name": "InputLayer", "config": {"name": "input"}},
        {"class_name": "Dense", "config": {"name": "hidden"}},
        {"class_name": "Dense", "config": {"name": "classifier"}},
    ]
    keras_zip(path, {"dense": (W.T.copy(), None), "dense_1": (W.T.copy() * 2, b)}, config)
    ck = checkpoints.read(path, key="classifier")
    assert ck.weight_key == "layers/dense_1/vars/0"
    assert_array_equal(ck.W, 2 * W.T)
    assert checkpoints.read(path, key="dense_1").weight_key == "layers/dense_1/vars/0"  # the stored name too
    ck = checkpoints.read(path)  # no --key: the layer named as a head
    assert ck.weight_key == "layers/dense_1/vars/0"
    assert ck.notes == (
        f"{path}: using classifier (stored as dense_1, kernel 6×4 float32, with bias) as the head: "
        "its name says so; key=NAME picks another",
    )


def test_keras_zip_one_layer_is_used_with_a_note(tmp_path):
    W, b = head()
    path = tmp_path / "model.keras"
    keras_zip(path, {"dense": (W.T.copy(), b)})
    ck = checkpoints.read(path)
    assert ck.key == "dense" and len(ck.notes) == 1 and "only Dense-like layer" in ck.notes[0]


@pytest.mark.parametrize("keras2", [True, False])
@pytest.mark.parametrize("weights_only", [False, True])
def test_legacy_h5(tmp_path, keras2, weights_only):
    W, b = head()
    path = tmp_path / "model.h5"
    legacy_h5(
        path,
        {"dense": (W.T.copy() + 1, b + 1), "dense_1": (W.T.copy(), b)},
        keras2=keras2,
        weights_only=weights_only,
    )
    ck = checkpoints.read(path, key="dense_1")
    assert (ck.layout, ck.source) == ("in-out", "h5")
    assert ck.weight_key.endswith("dense_1/dense_1/kernel" + (":0" if keras2 else ""))
    assert_array_equal(ck.W, W.T)
    assert_array_equal(ck.b, b)
    with pytest.raises(
        LoadError, match=r"no layer 'dense_2'(?s:.*)\n  dense \(kernel 6×4 float32, with bias\)\n  dense_1 \("
    ):
        checkpoints.read(path, key="dense_2")


def test_keras_integer_kernel_is_refused(tmp_path):
    path = tmp_path / "model.h5"
    legacy_h5(path, {"dense": (np.ones((N_IN, K), dtype=np.int32), None)})
    with pytest.raises(LoadError, match="not integer"):
        checkpoints.read(path, key="dense")


def test_keras_bf16_variable(tmp_path):
    W, _ = head()
    exact = (W.T.astype("<f4").view("<u4") & np.uint32(0xFFFF0000)).view("<f4")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        ds = f.create_group("layers/dense/vars").create_dataset(
            "0", data=(exact.view("<u4") >> np.uint32(16)).astype("<u2")
        )
        ds.attrs["dtype"] = "bfloat16"
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.weights.h5", buf.getvalue())
    ck = checkpoints.read(path)
    assert ck.dtype == "BF16"
    assert_array_equal(ck.W, exact)


def test_without_h5py_the_error_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "model.h5"
    legacy_h5(path, {"dense": head()})
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(LoadError, match=r"pip install 'smjac\[keras\]'"):
        checkpoints.read(path)


# ---------------------------------------------------------------- refusals and dispatch


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin"])
def test_pickles_are_refused_with_the_way_to_convert(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x80\x04K\x01.")  # a real pickle: it must never be opened
    with pytest.raises(LoadError) as e:
        load_layer(None, write_x(tmp_path), layer=path)
    msg = str(e.value)
    assert 'safetensors.torch.save_file(model.state_dict(), "model.safetensors")' in msg
    assert "CVE-2025-32434" in msg and "CVE-2026-24747" in msg and "weights_only=True" in msg


def test_key_without_a_checkpoint_is_an_error(tmp_path):
    path = tmp_path / "W.json"
    path.write_text("[[1, 2], [3, 4]]")
    with pytest.raises(LoadError, match=r"^key='classifier': picks a layer in a model checkpoint"):
        load_layer(path, write_x(tmp_path), key="classifier")


def test_explicit_layout_overrides_and_files_replace_the_checkpoints_arrays(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"classifier.weight": W.T.copy(), "classifier.bias": b}, path)  # stored n×K
    L = load_layer(None, write_x(tmp_path), layer=path, key="classifier", layout="in-out", dtype="float32")
    assert L.layout == "in-out" and L.W.dtype == np.float32
    assert_array_equal(L.W, W.T)
    bfile = tmp_path / "b.json"
    bfile.write_text(json.dumps([0.0] * K))
    L = load_layer(None, write_x(tmp_path), bfile, layer=path, key="classifier", layout="in-out")
    assert_array_equal(L.b, np.zeros(K))


def test_a_read_checkpoint_can_be_passed_in(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"classifier.weight": W, "classifier.bias": b}, path)
    ck = checkpoints.read(path)
    L = load_layer(None, write_x(tmp_path), layer=ck)
    assert L.layout == "out-in"
    assert_array_equal(L.W, W.T.astype(float))


# ---------------------------------------------------------------- gradients written back


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_gradient_round_trips_in_the_checkpoints_keys_layout_and_dtype(tmp_path, dtype):
    W, b = head(dtype)
    path = tmp_path / "m.safetensors"
    st.save_file({"classifier.weight": W, "classifier.bias": b}, path)
    ck = checkpoints.read(path, key="classifier")
    L = load_layer(None, write_x(tmp_path), layer=ck)
    g = smjac.layer_grad(L, target=2)
    out = tmp_path / "grads.safetensors"
    out.write_bytes(checkpoints.gradient_bytes(ck, g.W, g.b))
    back = st.load_file(out)
    assert set(back) == {"classifier.weight", "classifier.bias"}
    expected = smjac.grad(W.astype(float), X, b.astype(float), target=2, layout="out-in")
    assert back["classifier.weight"].dtype == dtype and back["classifier.weight"].shape == (K, N_IN)
    assert_array_equal(back["classifier.weight"], expected.W.astype(dtype))
    assert_array_equal(back["classifier.bias"], expected.b.astype(dtype))


def test_gradient_in_bf16_rounds_to_nearest_even(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    bf16_file(path, {"classifier.weight": W, "classifier.bias": b})
    ck = checkpoints.read(path, key="classifier")
    g = smjac.layer_grad(load_layer(None, write_x(tmp_path), layer=ck), target=0)
    data = checkpoints.gradient_bytes(ck, g.W, g.b)
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    assert header["classifier.weight"]["dtype"] == "BF16" and header["classifier.weight"]["shape"] == [
        K,
        N_IN,
    ]
    start, end = header["classifier.weight"]["data_offsets"]
    bits = np.frombuffer(data[8 + size + start : 8 + size + end], dtype="<u2").reshape(K, N_IN)
    # independent rounding: the nearest bfloat16 of each float32, ties to even, by brute force
    f32 = g.W.astype(np.float32)
    low = (f32.view("<u4") >> np.uint32(16)).astype(np.uint32)
    candidates = np.stack([low, low + 1])
    values = (candidates << np.uint32(16)).view("<f4").astype(np.float64)
    err = np.abs(values - f32.astype(np.float64))
    pick = np.where(err[0] < err[1], 0, np.where(err[1] < err[0], 1, (low & 1)))
    assert_array_equal(bits, np.choose(pick, candidates).astype(np.uint16))
    # and it reads back through smjac's own reader, as a checkpoint
    out = tmp_path / "g.safetensors"
    out.write_bytes(data)
    assert_allclose(checkpoints.read(out, key="classifier").W, g.W, rtol=2**-8)


def test_gradient_of_a_keras_layer_keeps_the_kernels_shape(tmp_path):
    W, b = head()
    path = tmp_path / "model.keras"
    keras_zip(path, {"dense": (W.T.copy(), b)})
    ck = checkpoints.read(path)
    g = smjac.layer_grad(load_layer(None, write_x(tmp_path), layer=ck), target=1)
    back = st.load(checkpoints.gradient_bytes(ck, g.W, g.b))
    assert_allclose(
        back["layers/dense/vars/0"],
        smjac.grad(W.T.astype(float), X, b.astype(float), target=1).W.astype(np.float32),
    )


def test_gradient_overflowing_f16_is_an_output_error(tmp_path):
    path = tmp_path / "m.safetensors"
    st.save_file({"h.weight": np.ones((2, 3), np.float16)}, path)
    ck = checkpoints.read(path)
    with pytest.raises(OutputError, match="overflows F16"):
        checkpoints.gradient_bytes(ck, np.full((2, 3), 1e6), None)
    with pytest.raises(OutputError, match="shape"):
        checkpoints.gradient_bytes(ck, np.ones((3, 2)), None)


def test_gradient_bytes_are_reproducible(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"classifier.weight": W, "classifier.bias": b}, path)
    ck = checkpoints.read(path)
    assert checkpoints.gradient_bytes(ck, W * 2, b) == checkpoints.gradient_bytes(ck, W * 2, b)


# ---------------------------------------------------------------- samples/model


def sample_arrays() -> dict[str, np.ndarray]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_models", ROOT / "samples" / "model" / "make.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.arrays()


ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "samples" / "model"


@pytest.mark.parametrize(
    ("name", "weight_key", "layout"),
    [
        ("classifier.safetensors", "classifier.weight", "out-in"),
        ("model.keras", "layers/dense_1/vars/0", "in-out"),
        ("model.h5", "model_weights/classifier/classifier/kernel:0", "in-out"),
    ],
)
def test_samples_hold_the_scripts_head_in_each_format(name, weight_key, layout):
    a = sample_arrays()
    ck = checkpoints.read(MODEL / name, key="classifier")
    assert (ck.weight_key, ck.layout, ck.dtype) == (weight_key, layout, "F32")
    W = a["classifier.weight"]
    assert_array_equal(ck.W, W if layout == "out-in" else W.T)
    assert_array_equal(ck.b, a["classifier.bias"])
    L = load_layer(None, MODEL / "x.json", layer=MODEL / name, key="classifier")
    expected = smjac.forward(W.astype(float), a["x"], a["classifier.bias"].astype(float), layout="out-in").h
    assert_allclose(smjac.layer_forward(L).h, expected, rtol=1e-13)


@pytest.mark.parametrize("name", ["classifier.safetensors", "model.keras", "model.h5"])
def test_samples_without_a_key_take_the_head_by_its_name(name):
    # pre_classifier (6×6, a hidden layer, DistilBERT's name) is never taken for the head
    ck = checkpoints.read(MODEL / name)
    assert ck.key == "classifier" and len(ck.notes) == 1
    assert "as the head: its name says so; key=NAME picks another" in ck.notes[0]


@pytest.mark.parametrize("name", ["model.keras", "model.h5"])
def test_samples_keras_names_work_in_both_formats(name):
    # Keras 3 stores the layers as dense and dense_1; both those and the given names work in both
    a = sample_arrays()
    for key, layer in (("dense", "pre_classifier"), ("dense_1", "classifier"), ("classifier", "classifier")):
        ck = checkpoints.read(MODEL / name, key=key)
        assert ck.key == layer and not ck.notes  # the file says each layer's class: nothing guessed
        assert_array_equal(ck.W, a[f"{layer}.weight"].T)
        assert_array_equal(ck.b, a[f"{layer}.bias"])


# ---------------------------------------------------------------- an HDF5 checkpoint reads only itself


def other_file(tmp_path: Path) -> Path:
    """A second HDF5 file, never named to smjac, holding a plausible kernel."""
    path = tmp_path / "elsewhere.h5"
    with h5py.File(path, "w") as f:
        f["kernel"] = np.full((N_IN, K), 9.0, np.float32)
    return path


def hostile_legacy(path: Path, make_kernel) -> None:
    """A legacy Keras file whose one layer's kernel is made by ``make_kernel(group, name)``."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"dense"]
        g = root.create_group("dense")
        g.attrs["weight_names"] = [b"dense/kernel:0"]
        g.create_group("dense")
        make_kernel(g["dense"], "kernel:0")


def test_external_link_is_refused(tmp_path):
    target = other_file(tmp_path)
    path = tmp_path / "m.h5"
    hostile_legacy(path, lambda g, name: g.__setitem__(name, h5py.ExternalLink(str(target), "/kernel")))
    with pytest.raises(
        LoadError, match=r"dense/kernel:0\]: is an external link to .*elsewhere.h5.*nothing but the file"
    ):
        checkpoints.read(path)


def test_external_link_to_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    path = tmp_path / "m.h5"
    hostile_legacy(path, lambda g, name: g.__setitem__(name, h5py.ExternalLink(str(fifo), "/kernel")))
    # in a child, so that a hang fails the test instead of stalling the suite
    code = f"from smjac.formats import checkpoints\ntry:\n    checkpoints.read({str(path)!r})\nexcept Exception as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "is an external link" in done.stdout


def test_external_storage_is_refused(tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.full((N_IN, K), 9.0, np.float32).tobytes())
    path = tmp_path / "m.h5"

    def make(g, name):
        g.create_dataset(
            name, shape=(N_IN, K), dtype=np.float32, external=[(str(raw), 0, h5py.h5f.UNLIMITED)]
        )

    hostile_legacy(path, make)
    with pytest.raises(LoadError, match=r"keeps its data in an external file"):
        checkpoints.read(path)


def test_virtual_dataset_is_refused(tmp_path):
    target = other_file(tmp_path)
    path = tmp_path / "m.h5"

    def make(g, name):
        layout = h5py.VirtualLayout(shape=(N_IN, K), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(target), "kernel", shape=(N_IN, K))
        g.create_virtual_dataset(name, layout)

    hostile_legacy(path, make)
    with pytest.raises(LoadError, match=r"is a virtual dataset"):
        checkpoints.read(path)


def test_soft_link_loop_is_refused_and_soft_links_within_the_file_work(tmp_path):
    path = tmp_path / "loop.h5"
    hostile_legacy(path, lambda g, name: g.__setitem__(name, h5py.SoftLink(g.name + "/" + name)))
    with pytest.raises(LoadError, match=r"soft links loop"):
        checkpoints.read(path)
    W, _ = head()
    path = tmp_path / "soft.h5"

    def make(g, name):
        g.file["stored"] = W.T.copy()
        g[name] = h5py.SoftLink("/stored")

    hostile_legacy(path, make)
    assert_array_equal(checkpoints.read(path).W, W.T)


def test_keras3_store_with_an_external_link_is_refused(tmp_path):
    target = other_file(tmp_path)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        g = f.create_group("layers/dense/vars")
        g["0"] = h5py.ExternalLink(str(target), "/kernel")
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", buf.getvalue())
    with pytest.raises(LoadError, match=r"is an external link"):
        checkpoints.read(path)


# ---------------------------------------------------------------- damaged .keras zips


def _zip_with(path: Path, weights: bytes, *, config: bytes = b"{}", method=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=method) as z:
        z.writestr("config.json", config)
        z.writestr("model.weights.h5", weights)


def test_a_keras_zip_with_a_bad_crc_is_refused_in_one_line(tmp_path):
    W, b = head()
    weights = keras3_weights({"dense": (W.T.copy(), b)})
    path = tmp_path / "m.keras"
    _zip_with(path, weights)
    raw = bytearray(path.read_bytes())
    at = raw.find(weights[1000:1016])  # a byte inside the stored member: its CRC no longer matches
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(
        LoadError, match=r"m\.keras: its model\.weights\.h5 cannot be read from the zip \(Bad CRC"
    ):
        checkpoints.read(path)


def test_a_keras_zip_config_that_is_deep_or_damaged_costs_only_the_names(tmp_path):
    W, b = head()
    path = tmp_path / "m.keras"
    _zip_with(path, keras3_weights({"dense": (W.T.copy(), b)}), config=b"[" * 100_000 + b"]" * 100_000)
    assert_array_equal(checkpoints.read(path).W, W.T)


def test_keras_weights_are_held_against_the_memory_budget(tmp_path):
    W, b = head()
    path = tmp_path / "m.keras"
    _zip_with(path, keras3_weights({"dense": (W.T.copy(), b)}))
    size = zipfile.ZipFile(path).getinfo("model.weights.h5").file_size
    with pytest.raises(LoadError, match=r"model\.weights\.h5 takes .* in memory, over the memory budget"):
        checkpoints.read(path, memory_budget=size - 1)
    assert checkpoints.read(path, memory_budget=size + 1000).W.shape == W.T.shape


def test_mixed_precision_bf16_weight_and_f32_bias(tmp_path):
    # how real checkpoints are kept: a BF16 weight, an F32 bias; both are read, each in its own dtype
    W, b = head()
    path = tmp_path / "mixed.safetensors"
    exact = bf16_file(tmp_path / "w.safetensors", {"head.weight": W})["head.weight"]
    bits = (np.ascontiguousarray(exact).view("<u4") >> 16).astype("<u2").tobytes()
    header = {
        "head.weight": {"dtype": "BF16", "shape": [K, N_IN], "data_offsets": [0, len(bits)]},
        "head.bias": {"dtype": "F32", "shape": [K], "data_offsets": [len(bits), len(bits) + 4 * K]},
    }
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bits + b.astype("<f4").tobytes())
    ck = checkpoints.read(path)
    assert (ck.dtype, ck.bias_dtype) == ("BF16", "F32")
    assert_array_equal(ck.W, exact)
    assert_array_equal(ck.b, b)
    z = exact.astype(float) @ X + b.astype(float)
    loss = np.log(np.exp(z - z.max()).sum()) + z.max() - z[1]
    g = smjac.layer_grad(load_layer(None, write_x(tmp_path), layer=ck), target=1)
    assert_allclose(g.loss, loss, rtol=1e-14)
    back = tmp_path / "g.safetensors"
    back.write_bytes(checkpoints.gradient_bytes(ck, g.W, g.b))
    from safetensors import safe_open

    with safe_open(str(back), "np") as f:
        names = list(f.keys())
        assert {k: f.get_slice(k).get_dtype() for k in names} == {"head.weight": "BF16", "head.bias": "F32"}


def test_nan_in_a_checkpoint_is_the_files_not_the_casts(tmp_path):
    W, b = head()
    W[1, 2] = np.nan
    path = tmp_path / "m.safetensors"
    st.save_file({"head.weight": W, "head.bias": b}, path)
    with pytest.raises(LoadError, match=r"m\.safetensors\[head\.weight\]: holds NaN or infinite values"):
        load_layer(None, write_x(tmp_path), layer=path)


def _gzipped_h5(kernel: np.ndarray, bias: np.ndarray, *, damage: bool) -> bytes:
    """A legacy .h5 whose kernel is stored gzip-compressed in chunks, its first chunk garbled."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"dense"]
        g = root.create_group("dense")
        g.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        g.create_dataset("dense/kernel:0", data=kernel, compression="gzip", chunks=(2, kernel.shape[1]))
        g["dense/bias:0"] = bias
        chunk = g["dense/kernel:0"].id.get_chunk_info(0)
    data = bytearray(buf.getvalue())
    if damage:  # a deflate block of the reserved type: zlib refuses it, h5py says "filter returned failure"
        data[chunk.byte_offset] = 0x07
    return bytes(data)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_damaged_gzip_chunk_is_a_load_error_naming_the_file(tmp_path, suffix):
    W, b = head()
    path = tmp_path / f"m{suffix}"
    for damage in (False, True):
        data = _gzipped_h5(W.T.copy(), b, damage=damage)
        if suffix == ".keras":  # the zip itself is sound (its CRC is of the damaged bytes)
            _zip_with(path, data)
        else:
            path.write_bytes(data)
        if not damage:
            assert_array_equal(checkpoints.read(path).W, W.T)
    with pytest.raises(LoadError, match=rf"m{suffix}(\[[^]]+\])?: cannot be read; the file is damaged"):
        checkpoints.read(path)
    from typer.testing import CliRunner

    from smjac.cli import app

    x = write_x(tmp_path)
    result = CliRunner().invoke(app, ["forward", "--layer", str(path), "-x", str(x)])
    assert result.exit_code == 2, result.output
    assert "standard output" not in result.stderr and "internal error" not in result.stderr
    assert f"m{suffix}" in result.stderr and "damaged" in result.stderr


def _header(data: bytes) -> dict:
    """A safetensors file's header, read by its format's rules: 8 bytes of length, then JSON."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n])


def _written(L, ck, **loss):
    from smjac.outputs import results

    result = results.grad(L, reduce=loss.pop("reduce", "mean"), precision=6, checkpoint=ck, **loss)
    doc = result.data(None)
    return result, result.checkpoint(doc)


def test_a_gradient_written_back_keeps_its_loss_in_the_metadata(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"classifier.weight": W, "classifier.bias": b}, path)
    ck = checkpoints.read(path)
    X2 = RNG.standard_normal((3, N_IN))
    (tmp_path / "x.json").write_text(json.dumps(X2.tolist()))
    L = load_layer(None, tmp_path / "x.json", layer=ck)
    targets = [1, 0, 3]
    result, data = _written(L, ck, target=targets, upstream=None)
    meta = _header(data)["__metadata__"]
    assert all(isinstance(v, str) for v in meta.values())  # the format allows strings only
    z = X2 @ W.astype(float).T + b.astype(float)  # by hand: the mean of −log softmax(z)[t]
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert float(meta["loss"]) == pytest.approx(-np.mean(logp[np.arange(3), targets]), rel=1e-12)
    assert meta["reduction"] == "mean" and meta["samples"] == "3" and json.loads(meta["target"]) == targets
    assert meta["loss_function"] == "cross-entropy" and meta["combined"] == "mean over 3 samples"
    assert not any("no bias tensor" in n for n in result.notes)
    _, data = _written(L, ck, target=None, upstream=np.ones((3, K)) / K, reduce="sum")
    meta = _header(data)["__metadata__"]
    assert meta["loss"].startswith("none") and meta["reduction"] == "sum" and "target" not in meta


def test_the_command_line_says_the_loss_a_safetensors_gradient_keeps(tmp_path):
    # CSV says on stderr what it leaves out; a .safetensors keeps the loss in its metadata and says so
    from typer.testing import CliRunner

    from smjac.cli import app

    W, b = head()
    st.save_file({"classifier.weight": W, "classifier.bias": b}, tmp_path / "m.safetensors")
    x = RNG.standard_normal(N_IN)
    (tmp_path / "x.json").write_text(json.dumps(x.tolist()))
    out = tmp_path / "g.safetensors"
    args = ["grad", "--layer", str(tmp_path / "m.safetensors"), "-x", str(tmp_path / "x.json")]
    result = CliRunner().invoke(app, [*args, "--target", "2", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    loss = _header(out.read_bytes())["__metadata__"]["loss"]
    z = W.astype(float) @ x + b.astype(float)
    assert float(loss) == pytest.approx(np.log(np.exp(z).sum()) - z[2], rel=1e-12)
    assert f"{out} keeps loss (= {loss}) in its metadata" in result.stderr


def test_a_bias_gradient_with_nowhere_to_go_is_said(tmp_path):
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({"classifier.weight": W}, path)  # no bias tensor
    ck = checkpoints.read(path)
    (tmp_path / "b.json").write_text(json.dumps(b.tolist()))
    L = load_layer(None, write_x(tmp_path), tmp_path / "b.json", layer=ck)
    result, data = _written(L, ck, target=1, upstream=None)
    assert list(_header(data)) == ["__metadata__", "classifier.weight"]  # dLoss/db has no name here
    assert any(
        n.startswith("note: ") and "m.safetensors has no bias tensor" in n and ".json or .npz" in n
        for n in result.notes
    )
    L = load_layer(None, write_x(tmp_path), layer=ck)  # no -b: no bias, nothing dropped
    result, _ = _written(L, ck, target=1, upstream=None)
    assert not any("no bias tensor" in n for n in result.notes)


def test_a_tensor_name_with_control_characters_is_shown_escaped(tmp_path):
    # issue 19: a name from a file can neither forge a line of smjac's own nor act on a terminal
    from typer.testing import CliRunner

    from smjac.cli import app

    forged, clearing = "a\nError: forged", "head\x1b[2J"
    W, b = head()
    path = tmp_path / "m.safetensors"
    st.save_file({f"{forged}.weight": W, f"{clearing}.weight": W.copy(), f"{clearing}.bias": b}, path)
    with pytest.raises(LoadError) as e:
        checkpoints.read(path)
    listed = str(e.value).split("layers:\n", 1)[1].split("\n")
    assert sorted(listed) == ["  a\\nError: forged.weight (4×6 F32)", "  head\\x1b[2J.weight (4×6 F32)"]
    # the same through the command line: every line of stderr smjac's own, no escape sequence
    x = write_x(tmp_path)
    runs = [
        ["forward", "--layer", str(path), "-x", str(x)],
        ["forward", "--layer", str(path), "--key", clearing, "-x", str(tmp_path / "x7.json")],
        ["inspect", str(path)],
    ]
    (tmp_path / "x7.json").write_text(json.dumps([1.0] * 7))
    for args in runs:
        result = CliRunner().invoke(app, args)
        assert "\x1b" not in result.stderr and "Error: forged" not in result.stderr.replace("\\nError", "")
        assert all(line.startswith((str(path), "Error: ", "  ")) for line in result.stderr.splitlines())
    # inspect's listing is its result: JSON, which escapes the names itself
    assert result.exit_code == 0 and "\x1b" not in result.stdout and "\nError" not in result.stdout
    assert sorted(c["key"] for c in json.loads(result.stdout)["layers"]) == [forged, clearing]
    result = CliRunner().invoke(app, runs[1])
    assert result.exit_code == 2
    assert f"Error: {path}[head\\x1b[2J.weight] is 4×6 (out-in: 6 inputs) but" in result.stderr
