"""Hostile checkpoints (issue 19): each is refused in one line naming the file and the limit, or
said in a note; none is read past the input cap or the memory budget, none hangs, none gives a
layer without its bias."""

from __future__ import annotations

import io
import json
import os
import shlex
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from smjac.cli import app
from smjac.errors import LoadError
from smjac.formats import checkpoints

h5py = pytest.importorskip("h5py")
st = pytest.importorskip("safetensors.numpy")

ENV = {"COLUMNS": "100", "TERMINAL_WIDTH": "100", "NO_COLOR": "1"}
W = np.arange(12, dtype=np.float32).reshape(3, 4) / 10  # Keras' n×K: 3 inputs, 4 outputs
# a model's JSON that is large but valid: parsed, it takes ~25 bytes a byte of text
BIG_JSON = b"[" + b"{}," * 200_000 + b"{}]"


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=ENV)


def weights_h5(bias: np.ndarray | None, name: str = "dense") -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        g = f.create_group(f"layers/{name}/vars")
        g["0"] = W
        if bias is not None:
            g["1"] = bias
    return buf.getvalue()


def keras_zip(path: Path, weights: bytes, config: bytes = b"{}", members: int = 0) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", config)
        z.writestr("model.weights.h5", weights)
        for i in range(members):
            z.writestr(zipfile.ZipInfo(f"asset{i}"), b"", compress_type=zipfile.ZIP_STORED)
    return path


def legacy_h5(path: Path, bias: np.ndarray | None, model_config: str | None = None) -> Path:
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights/dense")
        names = [b"dense/kernel:0"] + ([b"dense/bias:0"] if bias is not None else [])
        g.attrs["weight_names"] = names
        g["dense/kernel:0"] = W
        if bias is not None:
            g["dense/bias:0"] = bias
        f["model_weights"].attrs["layer_names"] = [b"dense"]
        if model_config is not None:
            f.attrs["model_config"] = model_config
    return path


def safetensors_file(path: Path, header: dict, data: bytes) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


# ---------------------------------------------------------------- F13: a bias is never dropped


@pytest.mark.parametrize("bias", [np.zeros((1, 4), np.float32), np.float32(0.5)], ids=["1xK", "scalar"])
@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_a_keras_bias_of_the_wrong_shape_is_refused_not_dropped(tmp_path, kind, bias):
    # Keras' Dense bias is always (units,): a (1, K) or scalar one is no Dense bias
    if kind == "keras":
        path = keras_zip(tmp_path / "m.keras", weights_h5(bias))
    else:
        path = legacy_h5(tmp_path / "m.h5", bias)
    with pytest.raises(LoadError, match=r"bias.*: is F32 of shape \((1, 4|)\); a bias is one row of K"):
        checkpoints.read(path)
    listed = checkpoints.layers(path).candidates
    assert [c.bias_shape for c in listed] == [np.shape(bias)]  # inspect says it has one


def test_a_keras_bias_of_the_right_shape_is_read(tmp_path):
    b = np.array([1, 2, 3, 4], np.float32)
    ck = checkpoints.read(keras_zip(tmp_path / "m.keras", weights_h5(b)))
    assert ck.b is not None and ck.b.tolist() == b.tolist()


# ---------------------------------------------------------------- F3: a model's JSON within the limits


def test_a_save_pretrained_config_over_the_limits_is_not_parsed(tmp_path):
    folder = tmp_path / "pre"
    folder.mkdir()
    st.save_file({"classifier.weight": W.T.copy()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_bytes(BIG_JSON)
    ck = checkpoints.read(folder, max_bytes=100_000)
    assert any(
        f"config.json: it takes {len(BIG_JSON):,} bytes, over the input size cap of 100,000" in n
        for n in ck.notes
    )
    ck = checkpoints.read(folder, memory_budget=2**20)
    assert any(
        "config.json: parsing it (585.9 KiB)" in n and "memory budget of 1.0 MiB" in n for n in ck.notes
    )
    assert checkpoints.read(folder).notes[0].startswith(f"{folder}/config.json: is not a JSON object")


def test_a_keras_config_over_the_limits_is_not_parsed_and_said_so(tmp_path):
    path = keras_zip(tmp_path / "m.keras", weights_h5(None), config=BIG_JSON)
    assert os.path.getsize(path) < 10_000  # it deflates from a few kilobytes
    ck = checkpoints.read(path, memory_budget=2**20)
    assert ck.notes[0].startswith(f"{path}: its config.json is not used (parsing it (585.9 KiB) takes about")


def test_a_legacy_model_config_over_the_limits_is_not_parsed_and_said_so(tmp_path):
    # variable length (as h5py stores a str or bytes), and fixed (under HDF5's 64 KiB for one)
    for name, config in (("v.h5", BIG_JSON.decode()), ("f.h5", np.bytes_(BIG_JSON[:50_000]))):
        path = legacy_h5(tmp_path / name, None, model_config=config)
        ck = checkpoints.read(path, max_bytes=20_000)
        assert ck.notes[0].startswith(
            f"{path}: its model_config is not used (it takes {len(config):,} bytes, over the input size cap"
        )


@pytest.mark.parametrize("kind", ["variable", "fixed"])
def test_a_variable_length_model_config_is_not_read_past_the_budget(tmp_path, kind):
    # h5py reads a variable-length string (as it stores Keras' bytes) whole before its size is
    # known: one of 60 MB was read, 127 MiB, under a 64M budget. Now such a string is read only
    # when the file that holds it fits the budget; a fixed-length one is sized before it is read.
    config = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
    path = legacy_h5(
        tmp_path / "m.h5", None, model_config=config if kind == "variable" else np.bytes_(config)
    )
    with h5py.File(path, "a") as f:
        f["padding"] = np.zeros(2**18)  # 2 MB
    ck = checkpoints.read(path, memory_budget=2**20)
    if kind == "fixed":
        assert not any("model_config" in n for n in ck.notes)
    else:
        assert ck.notes[0] == (
            f"{path}: its model_config is not used (it is a variable-length string, read whole before its "
            f"size is known: up to the file's 2.0 MiB, over the memory budget of 1.0 MiB (max_memory)); "
            "its layers go by their own names"
        )
    assert ck.W.shape == W.shape  # the layer is read either way: the config only names it
    assert not any("model_config" in n for n in checkpoints.read(path, memory_budget=2**22).notes)


@pytest.mark.parametrize(
    ("config", "why"),
    [(b"[" * 100_000 + b"]" * 100_000, "maximum recursion"), (b"{not json", "Expecting property name")],
)
def test_a_keras_config_that_cannot_be_parsed_is_said_in_a_note(tmp_path, config, why):
    path = keras_zip(tmp_path / "m.keras", weights_h5(None), config=config)
    ck = checkpoints.read(path)
    assert ck.notes[0].startswith(f"{path}: its config.json is not used (") and why in ck.notes[0]


# ---------------------------------------------------------------- F4: the safetensors header


def test_a_safetensors_header_is_held_to_the_input_cap_and_the_budget(tmp_path):
    header = {
        f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(2000)
    }
    path = safetensors_file(tmp_path / "h.safetensors", header, b"\0" * 8000)
    size = struct.unpack("<Q", path.read_bytes()[:8])[0]
    with pytest.raises(
        LoadError, match=rf"its header takes {size:,} bytes, over the input size cap of 10,000"
    ):
        checkpoints.read(path, max_bytes=10_000)
    with pytest.raises(
        LoadError, match=r"parsing its header \(.* KiB\) takes about .* over the memory budget"
    ):
        checkpoints.layers(path, memory_budget=size * 10)
    with pytest.raises(LoadError, match="no float matrix"):  # within both, it is read
        checkpoints.read(path, memory_budget=size * 100)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (
            b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
            "its header gives a twice",
        ),
        (
            b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
            b'"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
            "the bytes of b overlap those of a",
        ),
    ],
    ids=["duplicate", "overlap"],
)
def test_safetensors_refuses_what_the_library_refuses(tmp_path, header, why):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 12)
    from safetensors import SafetensorError

    with pytest.raises(SafetensorError):  # the official library refuses it too
        st.load_file(str(path))
    with pytest.raises(LoadError, match=f"is not a valid safetensors file \\({why}\\)"):
        checkpoints.read(path, key="a")


# ---------------------------------------------------------------- F5: a zip's directory


def test_a_keras_zip_directory_is_held_to_the_limits_before_it_is_listed(tmp_path):
    path = keras_zip(tmp_path / "m.keras", weights_h5(None), members=3000)
    with pytest.raises(
        LoadError, match=r"its zip directory takes [\d,]+ bytes \(3,002 members\), over the input"
    ):
        checkpoints.read(path, max_bytes=50_000)
    with pytest.raises(
        LoadError, match=r"zip directory of 3,002 members .* over the memory budget of 1.0 MiB"
    ):
        checkpoints.read(path, memory_budget=2**20)
    assert checkpoints.read(path).W.shape == W.shape


# ---------------------------------------------------------------- F14: not float, not regular


@pytest.mark.parametrize(
    "dtype", ["S4", "complex64", [("a", "<f4"), ("b", "<f4")]], ids=["str", "complex", "compound"]
)
def test_keras_kernels_that_are_not_float_are_said_so(tmp_path, dtype):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights/dense")
        g.attrs["weight_names"] = [b"dense/kernel:0"]
        g["dense/kernel:0"] = np.zeros((3, 4), dtype=dtype)
    with pytest.raises(LoadError) as e:
        checkpoints.read(path)
    assert "none of its 1 Dense-like layers holds floating-point weights (dense (" in str(e.value)
    assert "0 layers" not in str(e.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name", ["m.h5", "m.keras", "folder/model.safetensors", "folder/config.json"])
def test_a_fifo_is_refused_not_opened(tmp_path, name):
    fifo = tmp_path / name
    fifo.parent.mkdir(exist_ok=True)
    if fifo.name == "config.json":
        st.save_file({"classifier.weight": W.T.copy()}, str(fifo.parent / "model.safetensors"))
    os.mkfifo(fifo)  # opening it to read would block until a writer came: forever
    target = fifo.parent if fifo.parent.name == "folder" else fifo
    if fifo.name == "config.json":
        ck = checkpoints.read(target)
        assert ck.notes[0] == f"{fifo}: is not a regular file; its hints on the head are not used"
        return
    with pytest.raises(LoadError, match=f"^{fifo}: is not a regular file$"):
        checkpoints.read(target)
    result = run("inspect", str(target))
    assert result.exit_code == 2 and "is not a regular file" in result.stderr


# ---------------------------------------------------------------- a weights store of many groups


@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_a_keras3_store_of_more_groups_than_the_limit_is_refused_not_walked(tmp_path, kind, monkeypatch):
    # every group and dataset of the file was visited: millions of empty groups took minutes
    from smjac.formats import keras

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        g = f.create_group("layers/dense/vars")
        g["0"], g["1"] = W, np.zeros(4, np.float32)
        for i in range(30):
            f.create_group(f"layers/pad{i}")
    # layers, its 31 groups, vars and its 2 datasets: 35 items
    path = tmp_path / f"m.{kind}"
    if kind == "keras":
        keras_zip(path, buf.getvalue())
    else:
        path.write_bytes(buf.getvalue())
    monkeypatch.setattr(keras, "MAX_H5_ITEMS", 35)
    assert checkpoints.read(path).W.shape == (3, 4)  # at the limit: read
    monkeypatch.setattr(keras, "MAX_H5_ITEMS", 34)
    with pytest.raises(LoadError) as e:
        checkpoints.read(path)
    assert str(e.value) == (
        f"{path}: holds more than 34 HDF5 groups and datasets, more than a model's weights store; "
        "smjac looks through at most 34"
    )
    result = run("inspect", str(path))
    assert result.exit_code == 2 and result.stderr == f"Error: {e.value}\n"


# ---------------------------------------------------------------- F2: names in the table


def test_the_inspect_table_shows_names_escaped(tmp_path):
    path = tmp_path / "weird.safetensors"
    st.save_file({"ev\nil\x1b[31m.weight": np.ones((2, 3), np.float32)}, str(path))
    result = run("inspect", str(path), "--format", "table")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "ev\\nil\\x1b[31m" in result.stdout
    assert all(line.isprintable() for line in result.stdout.splitlines())


def test_advice_naming_a_layer_with_a_newline_can_be_pasted(tmp_path):
    # it said --key 'ev\nil', which a shell reads as a backslash and an n: no such layer
    path = tmp_path / "weird.safetensors"
    st.save_file(
        {"ev\nil.weight": np.ones((3, 2), np.float32), "ok.weight": np.ones((4, 2), np.float32)}, str(path)
    )
    x = tmp_path / "x.json"
    x.write_text("[1, 2]")
    result = run("forward", "--layer", str(path), "-x", str(x))
    assert result.exit_code == 2 and "(e.g. --key $'ev\\nil')" in result.stderr
    assert run("forward", "--layer", str(path), "-x", str(x), "--key", "ev\nil").exit_code == 0


def test_the_inspect_command_in_advice_is_quoted_for_the_shell(tmp_path):
    folder = tmp_path / "my models"
    folder.mkdir()
    many, one = folder / "many.safetensors", folder / "one.safetensors"
    st.save_file({f"l{i}.weight": np.ones((3, 2), np.float32) for i in range(12)}, str(many))
    st.save_file({"classifier.weight": np.ones((3, 2), np.float32)}, str(one))
    x = tmp_path / "x.json"
    x.write_text("[1, 2, 3]")
    result = run("forward", "--layer", str(many), "-x", str(x))
    assert (
        result.exit_code == 2
        and f"and 2 more: smjac inspect {shlex.quote(str(many))} lists them all" in result.stderr
    )
    result = run("forward", "--layer", str(one), "-x", str(x))
    assert (
        result.exit_code == 2 and f"(smjac inspect {shlex.quote(str(one))} lists its layers)" in result.stderr
    )


def test_a_stored_name_is_refused_when_the_config_that_gives_it_was_not_read(tmp_path):
    # under a small budget the config was skipped and the layers counted: key="dense" then read a
    # layer the config names otherwise (a SimpleRNN's kernel, silently); now it is refused
    path = tmp_path / "m.h5"
    layers = [
        {"class_name": "SimpleRNN", "config": {"name": "rnn"}},
        {"class_name": "Dense", "config": {"name": "out"}},
    ]
    with h5py.File(path, "w") as f:
        for name, shape in (("rnn", (3, 6)), ("out", (6, 4))):
            g = f.create_group(f"model_weights/{name}")
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode()]
            g[f"{name}/kernel:0"] = np.full(shape, 0.5, np.float32)
        f["model_weights"].attrs["layer_names"] = [b"rnn", b"out"]
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": layers}})
        f["padding"] = np.zeros(2**15)
    assert checkpoints.read(path, key="dense").W.shape == (6, 4)  # the config read: "dense" is out
    with pytest.raises(
        LoadError, match=r"key='dense' is a name only its model_config can give a layer.*'rnn', 'out'"
    ):
        checkpoints.read(path, key="dense", memory_budget=2**16)
    assert checkpoints.read(path, key="out", memory_budget=2**16).W.shape == (6, 4)


@pytest.mark.parametrize("named", [True, False])
def test_a_legacy_h5_of_more_layers_than_the_limit_is_refused_not_walked(tmp_path, named, monkeypatch):
    # its layers are the root's layer_names, or, without them, every name in the root
    from smjac.formats import keras

    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("dense")
        g.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        g["dense/kernel:0"], g["dense/bias:0"] = W, np.zeros(4, np.float32)
        pads = [f"pad{i}" for i in range(30)]
        for name in pads:
            f.create_group(name).attrs["weight_names"] = np.array([], dtype="S1")
        if named:
            f.attrs["layer_names"] = [n.encode() for n in ["dense", *pads]]
    # 31 layers and the two weights of one: 33 looked at
    monkeypatch.setattr(keras, "MAX_H5_ITEMS", 33)
    assert checkpoints.read(path).W.shape == (3, 4)
    monkeypatch.setattr(keras, "MAX_H5_ITEMS", 32)
    with pytest.raises(LoadError, match=f"^{path}: holds more than 32 HDF5 groups and datasets"):
        checkpoints.read(path)
