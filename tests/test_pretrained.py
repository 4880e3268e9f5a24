"""Hugging Face folders, shards, tied heads and head discovery, on checkpoints laid out as
transformers' save_pretrained writes them (written here with safetensors and json, not by smjac).
Numbers are checked against softmax cross-entropy written out in numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

from smjac.cli import app
from smjac.errors import LoadError, ShapeError
from smjac.formats import checkpoints, pretrained
from smjac.formats import safetensors as st_codec
from smjac.inputs import load_layer

st = pytest.importorskip("safetensors.numpy")

H, LABELS, VOCAB = 6, 3, 11
RNG = np.random.default_rng(20)


def draw(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def save_pretrained(folder: Path, config: dict | None, *shards: dict[str, np.ndarray]) -> Path:
    """As transformers writes a model: config.json (indented, keys sorted), then model.safetensors
    with metadata {"format": "pt"}, or numbered shards and model.safetensors.index.json."""
    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if len(shards) == 1:
        st.save_file(shards[0], folder / "model.safetensors", metadata={"format": "pt"})
        return folder
    weight_map, size = {}, 0
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        st.save_file(shard, folder / name, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(shard, name)
        size += sum(a.nbytes for a in shard.values())
    index = {"metadata": {"total_size": size}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return folder


def labels(n: int) -> dict[str, str]:
    return {str(i): f"LABEL_{i}" for i in range(n)}


def bert(layers: int = 1) -> dict[str, np.ndarray]:
    t = {
        "bert.embeddings.word_embeddings.weight": draw(VOCAB, H),
        "bert.embeddings.position_embeddings.weight": draw(8, H),
        "bert.embeddings.LayerNorm.weight": np.ones(H, np.float32),
        "bert.embeddings.LayerNorm.bias": np.zeros(H, np.float32),
    }
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for name, shape in (
            ("attention.self.query", (H, H)),
            ("attention.self.key", (H, H)),
            ("attention.self.value", (H, H)),
            ("attention.output.dense", (H, H)),
            ("intermediate.dense", (4 * H, H)),
            ("output.dense", (H, 4 * H)),
        ):
            t[p + name + ".weight"], t[p + name + ".bias"] = draw(*shape), draw(shape[0])
    t |= {"bert.pooler.dense.weight": draw(H, H), "bert.pooler.dense.bias": draw(H)}
    return t | {"classifier.weight": draw(LABELS, H), "classifier.bias": draw(LABELS)}


def distilbert() -> dict[str, np.ndarray]:
    t = {"distilbert.embeddings.word_embeddings.weight": draw(VOCAB, H)}
    t |= {"distilbert.transformer.layer.0.ffn.lin1.weight": draw(4 * H, H)}
    t |= {"pre_classifier.weight": draw(H, H), "pre_classifier.bias": draw(H)}
    return t | {"classifier.weight": draw(LABELS, H), "classifier.bias": draw(LABELS)}


def llama(layers: int = 2) -> dict[str, np.ndarray]:
    t = {"model.embed_tokens.weight": draw(VOCAB, H)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t |= {p + f"self_attn.{k}_proj.weight": draw(H, H) for k in "qkvo"}
        t |= {p + "mlp.gate_proj.weight": draw(2 * H, H), p + "mlp.up_proj.weight": draw(2 * H, H)}
        t |= {
            p + "mlp.down_proj.weight": draw(H, 2 * H),
            p + "input_layernorm.weight": np.ones(H, np.float32),
        }
    return t | {"model.norm.weight": np.ones(H, np.float32)}


def gpt2() -> dict[str, np.ndarray]:
    """GPT-2's layers, Conv1D weights n×K as GPT-2 stores them; no lm_head.weight (tied)."""
    t = {"transformer.wte.weight": draw(VOCAB, H), "transformer.wpe.weight": draw(8, H)}
    for name, (n, k) in (("attn.c_attn", (H, 3 * H)), ("attn.c_proj", (H, H)), ("mlp.c_fc", (H, 4 * H))):
        t[f"transformer.h.0.{name}.weight"], t[f"transformer.h.0.{name}.bias"] = draw(n, k), draw(k)
    return t | {
        "transformer.ln_f.weight": np.ones(H, np.float32),
        "transformer.ln_f.bias": np.zeros(H, np.float32),
    }


GPT2_CONFIG = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": H, "vocab_size": VOCAB}


def softmax_ce(W: np.ndarray, b: np.ndarray | None, x: np.ndarray, target: int):
    """Cross-entropy by hand, PyTorch's layout (z = W x + b): the loss, dL/dW, dL/db."""
    z = W.astype(float) @ x + (0 if b is None else b.astype(float))
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    delta = p - np.eye(len(z))[target]
    return -np.log(p[target]), np.outer(delta, x), delta


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "120", "NO_COLOR": "1"})


def write_x(tmp_path: Path, x: np.ndarray) -> Path:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(x.tolist()))
    return path


# ---------------------------------------------------------------- choosing the head


@pytest.mark.parametrize("with_config", [True, False])
def test_bert_folder_takes_classifier_and_its_numbers(tmp_path, with_config):
    t = bert()
    config = {"architectures": ["BertForSequenceClassification"], "id2label": labels(LABELS)}
    folder = save_pretrained(tmp_path / "bert", config if with_config else None, t)
    ck = checkpoints.read(folder)
    assert (ck.key, ck.weight_key, ck.bias_key, ck.layout) == (
        "classifier",
        "classifier.weight",
        "classifier.bias",
        "out-in",
    )
    match = ", and its 3 outputs match config.json's id2label (3 labels)" if with_config else ""
    assert ck.notes == (
        f"{folder}: using classifier.weight (3×6 F32) as the head: its name says so{match}; key=NAME picks another",
    )
    # x is BERT's pooled output: tanh(pooler(h[CLS]))
    h_cls = RNG.standard_normal(H)
    x = np.tanh(t["bert.pooler.dense.weight"].astype(float) @ h_cls + t["bert.pooler.dense.bias"])
    result = run(
        "grad", "--layer", str(folder), "-x", str(write_x(tmp_path, x)), "--target", "2", "-f", "json"
    )
    assert result.exit_code == 0, result.stderr
    loss, dW, db = softmax_ce(t["classifier.weight"], t["classifier.bias"], x, 2)
    doc = json.loads(result.stdout)
    assert_allclose(doc["loss"], loss, rtol=1e-6)
    assert_allclose(doc["grad"], dW, rtol=1e-6, atol=1e-7)
    assert_allclose(doc["grad_b"], db, rtol=1e-6, atol=1e-7)
    assert "using classifier.weight (3×6 F32) as the head" in result.stderr


def test_distilbert_takes_classifier_not_pre_classifier(tmp_path):
    t = distilbert()
    config = {"architectures": ["DistilBertForSequenceClassification"], "id2label": labels(LABELS)}
    folder = save_pretrained(tmp_path / "distilbert", config, t)
    # x is relu(pre_classifier(h[:, 0])), the input of the classifier
    h0 = RNG.standard_normal(H)
    x = np.maximum(t["pre_classifier.weight"].astype(float) @ h0 + t["pre_classifier.bias"], 0)
    L = load_layer(None, write_x(tmp_path, x), layer=folder)
    assert_allclose(L.W, t["classifier.weight"].T.astype(float))
    z = t["classifier.weight"].astype(float) @ x + t["classifier.bias"]
    from smjac import layer_forward

    assert_allclose(layer_forward(L).h, np.exp(z) / np.exp(z).sum(), rtol=1e-12)


def test_llama_sequence_classifier_takes_score(tmp_path):
    t = llama() | {"score.weight": draw(LABELS, H)}
    config = {
        "architectures": ["LlamaForSequenceClassification"],
        "id2label": labels(LABELS),
        "tie_word_embeddings": False,
    }
    folder = save_pretrained(tmp_path / "llama", config, t)
    ck = checkpoints.read(folder)
    assert (ck.key, ck.bias_key) == ("score", None)
    assert not any("is not used as" in n for n in ck.notes)  # the norms' weights are nobody's bias
    x = RNG.standard_normal(H)  # the final normalised hidden state at the last position
    result = run(
        "grad", "--layer", str(folder), "-x", str(write_x(tmp_path, x)), "--target", "0", "-f", "json"
    )
    assert result.exit_code == 0, result.stderr
    loss, dW, _ = softmax_ce(t["score.weight"], None, x, 0)
    assert_allclose(json.loads(result.stdout)["grad"], dW, rtol=1e-6, atol=1e-7)
    assert_allclose(json.loads(result.stdout)["loss"], loss, rtol=1e-6)


def test_untied_language_model_takes_lm_head_not_the_embedding(tmp_path):
    t = llama() | {"lm_head.weight": draw(VOCAB, H)}
    config = {"architectures": ["LlamaForCausalLM"], "vocab_size": VOCAB, "tie_word_embeddings": False}
    ck = checkpoints.read(save_pretrained(tmp_path / "lm", config, t))
    assert (ck.key, ck.tied_to) == ("lm_head", None)
    assert_array_equal(ck.W, t["lm_head.weight"])


def test_id2label_disagreeing_with_every_head_is_refused(tmp_path):
    config = {"architectures": ["BertForSequenceClassification"], "id2label": labels(5)}
    folder = save_pretrained(tmp_path / "bert", config, bert())
    with pytest.raises(
        LoadError,
        match=r"config.json's id2label \(5 labels\) says the head has 5 outputs, but classifier has 3",
    ):
        checkpoints.read(folder)


def test_the_only_layer_of_the_configs_size_is_taken(tmp_path):
    t = {"body.weight": draw(H, H), "proj.weight": draw(LABELS, H)}
    config = {"architectures": ["MyModelForSequenceClassification"], "id2label": labels(LABELS)}
    ck = checkpoints.read(save_pretrained(tmp_path / "m", config, t))
    assert ck.key == "proj" and "the only layer with 3 outputs" in ck.notes[0]


def test_a_7b_models_names_give_ten_lines_not_eleven_thousand_characters(tmp_path):
    # LlamaModel (no head): 32 blocks of 7 matrices and the embedding, names exactly as Llama's
    t = {
        "model.embed_tokens.weight": np.zeros((4, 2), np.float32),
        "model.norm.weight": np.ones(2, np.float32),
    }
    for i in range(32):
        for k in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        ):
            t[f"model.layers.{i}.{k}.weight"] = np.zeros((2, 2), np.float32)
    folder = save_pretrained(tmp_path / "llama7b", {"architectures": ["LlamaModel"]}, t)
    x = write_x(tmp_path, np.ones(2))
    result = run("forward", "--layer", str(folder), "-x", str(x))
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 12 and max(map(len, lines)) < 300, result.stderr
    assert lines[0].startswith(
        f"Error: {folder}: no layer is named as a head; pick the layer with --key NAME"
    )
    assert lines[0].endswith("(e.g. --key model.embed_tokens). The likeliest of its 225 layers:")
    assert lines[1] == "  model.embed_tokens.weight (4×2 F32)"
    assert lines[-1] == f"  and 215 more: smjac inspect {folder} lists them all"


# ---------------------------------------------------------------- shards


def sharded_llama(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    first = llama(layers=2)
    second = {"score.weight": draw(LABELS, H)}
    config = {"architectures": ["LlamaForSequenceClassification"], "id2label": labels(LABELS)}
    return save_pretrained(tmp_path / "sharded", config, first, second), first | second


def test_a_key_reads_only_the_shard_that_holds_it(tmp_path, monkeypatch):
    folder, t = sharded_llama(tmp_path)
    # the other shard is damaged: reading so much as its header would fail
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"\xff" * 64)
    opened = []
    real = st_codec.read_header
    monkeypatch.setattr(
        st_codec,
        "read_header",
        lambda path, *rest, **kw: opened.append(Path(path).name) or real(path, *rest, **kw),
    )
    for layer in (folder, folder / "model.safetensors.index.json"):
        ck = checkpoints.read(layer, key="score")
        assert_array_equal(ck.W, t["score.weight"])
    assert set(opened) == {"model-00002-of-00002.safetensors"}


def test_the_shards_headers_keep_the_budget_together(tmp_path):
    # each shard's header was held to the budget alone, and all of them were kept: three headers
    # that each fit took three times the budget together
    shards = [
        {f"model.layers.{s}.{i}.weight": np.zeros((1, 1), np.float32) for i in range(600)} for s in range(3)
    ]
    shards[-1]["score.weight"] = draw(LABELS, H)
    folder = save_pretrained(
        tmp_path / "m",
        {"architectures": ["LlamaForSequenceClassification"], "id2label": labels(LABELS)},
        *shards,
    )
    one = max((folder / f"model-0000{s}-of-00003.safetensors").read_bytes()[:8] for s in (1, 2, 3))
    size = int.from_bytes(one, "little")
    budget = int(2.5 * size * st_codec.MODEL_JSON_BYTES_PER_BYTE)  # two headers fit, not three
    with pytest.raises(
        LoadError, match=r"parsing its header and those of the shards before it \(.*over the memory budget"
    ):
        checkpoints.layers(folder, memory_budget=budget)
    assert checkpoints.read(folder, key="score", memory_budget=budget).W.shape == (LABELS, H)  # one header
    assert checkpoints.layers(folder, memory_budget=2 * budget).head is not None


def test_without_a_key_every_header_is_read_but_only_the_heads_bytes(tmp_path, monkeypatch):
    folder, _ = sharded_llama(tmp_path)
    read = []
    real = st_codec.read_tensor
    monkeypatch.setattr(st_codec, "read_tensor", lambda header, name: read.append(name) or real(header, name))
    ck = checkpoints.read(folder)
    assert ck.key == "score" and read == ["score.weight"]
    assert "3 outputs match config.json's id2label (3 labels)" in ck.notes[0]


def test_an_index_naming_a_shard_outside_its_folder_is_refused(tmp_path):
    folder, _ = sharded_llama(tmp_path)
    index = folder / "model.safetensors.index.json"
    doc = json.loads(index.read_text())
    doc["weight_map"]["score.weight"] = "../elsewhere.safetensors"
    index.write_text(json.dumps(doc))
    with pytest.raises(LoadError, match=r"names the shard '\.\./elsewhere\.safetensors'; smjac reads only"):
        checkpoints.read(folder, key="score")


def test_an_index_that_lies_about_a_shard_is_an_error(tmp_path):
    folder, _ = sharded_llama(tmp_path)
    index = folder / "model.safetensors.index.json"
    doc = json.loads(index.read_text())
    doc["weight_map"]["score.weight"] = "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(doc))
    with pytest.raises(
        LoadError,
        match=r"weight_map puts score.weight in model-00001-of-00002.safetensors, which does not hold it",
    ):
        checkpoints.read(folder, key="score")


def test_folders_without_safetensors_say_what_they_hold(tmp_path):
    (tmp_path / "pt").mkdir()
    (tmp_path / "pt" / "pytorch_model.bin").write_bytes(b"\x80\x02")
    with pytest.raises(
        LoadError,
        match=r"holds no model.safetensors nor model.safetensors.index.json.*pytorch_model.bin, a pickle",
    ):
        checkpoints.read(tmp_path / "pt")
    (tmp_path / "other").mkdir()
    st.save_file({"w": draw(2, 2)}, tmp_path / "other" / "adapter_model.safetensors")
    with pytest.raises(LoadError, match=r"it holds adapter_model.safetensors: give one as layer='"):
        checkpoints.read(tmp_path / "other")


def test_config_is_data_and_a_bad_one_costs_only_its_hints(tmp_path):
    folder = save_pretrained(tmp_path / "m", None, distilbert())
    (folder / "config.json").write_text('{"architectures": ["X"], "auto_map": {"AutoModel": "evil.Model"}')
    ck = checkpoints.read(folder)
    assert ck.key == "classifier"
    assert any(
        "config.json: is not valid JSON" in n and "its hints on the head are not used" in n for n in ck.notes
    )
    (folder / "config.json").write_bytes(b" " * (pretrained.MAX_JSON_BYTES + 1))
    assert any("over the 16,777,216 smjac reads" in n for n in checkpoints.read(folder).notes)


# ---------------------------------------------------------------- tied heads


@pytest.mark.parametrize(
    ("tie", "said"),
    [
        (True, "config.json: tie_word_embeddings is true"),
        (None, "config.json leaves tie_word_embeddings at transformers' default, true"),
    ],
)
def test_gpt2_tied_head_reads_the_embedding_and_says_so(tmp_path, tie, said):
    t = gpt2()
    config = GPT2_CONFIG | ({} if tie is None else {"tie_word_embeddings": tie})
    folder = save_pretrained(tmp_path / "gpt2", config, t)
    for key in (None, "lm_head", "lm_head.weight"):
        ck = checkpoints.read(folder, key=key)
        assert (ck.key, ck.weight_key, ck.tied_to, ck.layout, ck.bias_key) == (
            "lm_head",
            "transformer.wte.weight",
            "transformer.wte.weight",
            "out-in",
            None,
        )
        assert_array_equal(ck.W, t["transformer.wte.weight"])
        tie_note = [n for n in ck.notes if "has no lm_head.weight" in n]
        assert len(tie_note) == 1 and said in tie_note[0] and "the head's share only" in tie_note[0]


def test_gpt2_gradient_written_back_is_the_heads_share(tmp_path):
    t = gpt2()
    folder = save_pretrained(tmp_path / "gpt2", GPT2_CONFIG | {"tie_word_embeddings": True}, t)
    x = RNG.standard_normal(H)  # the final hidden state, after ln_f
    out = tmp_path / "grads.safetensors"
    result = run(
        "grad",
        "--layer",
        str(folder),
        "--key",
        "lm_head",
        "-x",
        str(write_x(tmp_path, x)),
        "--target",
        "7",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    assert "the head's share only" in result.stderr and f"wrote {out}" in result.stderr
    back = st.load_file(out)
    assert set(back) == {"lm_head.weight"} and back["lm_head.weight"].dtype == np.float32
    _, dW, _ = softmax_ce(t["transformer.wte.weight"], None, x, 7)
    assert_allclose(back["lm_head.weight"], dW, rtol=1e-5, atol=1e-7)
    from safetensors import safe_open

    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    assert meta["tied_to"] == "transformer.wte.weight" and meta["share"].startswith("the head's share only")


def test_gpt2_conv1d_layers_are_in_out(tmp_path):
    folder = save_pretrained(tmp_path / "gpt2", GPT2_CONFIG, gpt2())
    ck = checkpoints.read(folder, key="transformer.h.0.mlp.c_fc")
    assert ck.layout == "in-out" and ck.W.shape == (H, 4 * H)


def test_a_config_that_unties_refuses_a_missing_lm_head(tmp_path):
    folder = save_pretrained(tmp_path / "gpt2", GPT2_CONFIG | {"tie_word_embeddings": False}, gpt2())
    with pytest.raises(
        LoadError, match=r"no lm_head\.weight, though config\.json says tie_word_embeddings is false"
    ):
        checkpoints.read(folder, key="lm_head")


def test_without_a_config_lm_head_is_assumed_tied_only_when_asked(tmp_path):
    path = tmp_path / "model.safetensors"
    st.save_file(gpt2(), path)
    ck = checkpoints.read(path, key="lm_head")
    assert ck.tied_to == "transformer.wte.weight"
    assert any("there is no config.json; assumed tied" in n for n in ck.notes)
    with pytest.raises(LoadError, match="no layer is named as a head"):
        checkpoints.read(path)  # without --key nothing is guessed


# ---------------------------------------------------------------- x that fits another layer


def test_a_shape_mismatch_names_the_keys_that_fit_before_the_layout(tmp_path):
    folder = save_pretrained(
        tmp_path / "bert",
        {"architectures": ["BertForSequenceClassification"], "id2label": labels(LABELS)},
        bert(),
    )
    x = write_x(tmp_path, RNG.standard_normal(H))
    with pytest.raises(ShapeError) as e:
        load_layer(None, x, layer=folder, key="bert.encoder.layer.0.output.dense")
    msg = str(e.value)
    assert msg.startswith(
        f"{folder}[bert.encoder.layer.0.output.dense.weight] is 6×24 (out-in: 24 inputs) but {x} has 6 entries per sample"
    )
    assert "\n  classifier.weight (3×6 F32)\n" in msg
    assert msg.index("pick one with key='classifier'") < msg.index('layout="in-out" would read')
    x4 = write_x(tmp_path, np.ones(5))
    with pytest.raises(ShapeError, match=f"no layer of {folder} takes 5 inputs"):
        load_layer(None, x4, layer=folder, key="classifier")


def test_the_layers_that_fit_are_found_within_the_limits_the_layer_was_read_with(tmp_path, monkeypatch):
    # the headers were read again with the default cap and budget: a checkpoint read only with a
    # raised --max-input-bytes got "no layer takes 6 inputs", a wrong hint, from the second read
    folder = save_pretrained(
        tmp_path / "bert",
        {"architectures": ["BertForSequenceClassification"], "id2label": labels(LABELS)},
        bert(),
    )
    x = write_x(tmp_path, RNG.standard_normal(H))
    asked = []
    real = checkpoints.layers

    def spy(path, **limits):
        asked.append(limits)
        return real(path, **limits)

    monkeypatch.setattr(checkpoints, "layers", spy)
    with pytest.raises(ShapeError, match="pick one with key='classifier'"):
        load_layer(
            None,
            x,
            layer=folder,
            key="bert.encoder.layer.0.output.dense",
            max_bytes=3 * 2**30,
            max_memory=2**26,
        )
    assert asked == [{"max_bytes": 3 * 2**30, "memory_budget": 2**26}]


def test_the_cli_says_it_with_exit_2(tmp_path):
    folder, _ = sharded_llama(tmp_path)
    x = write_x(tmp_path, np.ones(2 * H))
    result = run("forward", "--layer", str(folder), "-x", str(x))
    assert (
        result.exit_code == 2
        and "the layers of" in result.stderr
        and "--key model.layers.0.mlp.down_proj" in result.stderr
    )


def test_timm_config_num_classes_checks_the_head(tmp_path):
    # a timm ViT: blocks.N.attn.qkv, blocks.N.mlp.fc1 and fc2, then head; config.json names no architectures
    t = {"patch_embed.proj.weight": draw(H, 3, 4, 4), "blocks.0.attn.qkv.weight": draw(3 * H, H)}
    t |= {"blocks.0.mlp.fc1.weight": draw(4 * H, H), "blocks.0.mlp.fc2.weight": draw(H, 4 * H)}
    t |= {"head.weight": draw(LABELS, H), "head.bias": draw(LABELS)}
    config = {"architecture": "vit_tiny_patch16_224", "num_classes": LABELS, "num_features": H}
    ck = checkpoints.read(save_pretrained(tmp_path / "timm", config, t))
    assert ck.key == "head" and "its 3 outputs match config.json's num_classes (3)" in ck.notes[0]


def test_a_shard_that_is_a_fifo_is_refused_without_opening_it(tmp_path):
    import os

    folder, _ = sharded_llama(tmp_path)
    shard = folder / "model-00002-of-00002.safetensors"
    shard.unlink()
    os.mkfifo(shard)
    with pytest.raises(LoadError, match=r"model-00002-of-00002\.safetensors: is not a regular file"):
        checkpoints.read(folder, key="score")


def test_the_cli_takes_the_index_itself_and_points_w_to_layer(tmp_path):
    folder, t = sharded_llama(tmp_path)
    index = folder / "model.safetensors.index.json"
    x = RNG.standard_normal(H)
    result = run("forward", "--layer", str(index), "-x", str(write_x(tmp_path, x)), "-f", "json")
    assert result.exit_code == 0, result.stderr
    z = t["score.weight"].astype(float) @ x
    assert_allclose(json.loads(result.stdout)["z"], z, rtol=1e-6)
    result = run("forward", "-W", str(index), "-x", str(tmp_path / "x.json"))
    assert (
        result.exit_code == 2 and "is a model checkpoint, not one matrix: give it as --layer" in result.stderr
    )


def test_a_layout_against_the_files_own_is_named_as_the_cause(tmp_path):
    x = write_x(tmp_path, RNG.standard_normal(6))
    model = Path(__file__).resolve().parent.parent / "samples" / "model" / "classifier.safetensors"
    with pytest.raises(ShapeError, match=r"as the file stores it \(out-in\) it takes 6: leave out layout=$"):
        load_layer(None, x, layer=model, key="classifier", layout="in-out")
