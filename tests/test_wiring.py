"""The commands that sit on the verify, checkpoint and picture libraries, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from smjac.cli import app
from smjac.formats.table import Format

from .conftest import BLOG_W, BLOG_X, ROOT, post_l_dir_shortcut, post_softmax

BLOG = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]
MISTAKES = ROOT / "samples/mistakes"


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "120", "NO_COLOR": "1"})


def test_verify_names_the_mistake_and_exits_1():
    result = run("verify", *BLOG, "--jacobian", str(MISTAKES / "diagonal-only.json"), "-f", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and [d["mistake"] for d in doc["diagnosis"]] == ["diagonal-only"]
    assert doc["outside"] > 0 and doc["worst"]


def test_verify_accepts_the_posts_own_answer(tmp_path):
    # the post's loops, written out by hand in conftest, not smjac's
    h = post_softmax(BLOG_W.T @ BLOG_X)
    answer = tmp_path / "mine.json"
    answer.write_text(
        json.dumps(post_l_dir_shortcut(BLOG_W, h, BLOG_X).T.tolist())
    )  # the post prints it transposed
    result = run("verify", *BLOG, "--jacobian", str(answer), "-f", "table")
    assert result.exit_code == 0, result.stdout + result.stderr


def test_verify_needs_exactly_one_answer():
    result = run("verify", *BLOG)
    assert result.exit_code == 2 and "exactly one of --grad" in result.stderr


def test_a_safetensors_head_is_read_in_pytorchs_layout_with_a_note():
    layer = ["--layer", str(ROOT / "samples/model/classifier.safetensors"), "--key", "classifier"]
    result = run("forward", *layer, "-x", str(ROOT / "samples/model/x.json"), "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert "out-in" in result.stderr
    from safetensors.numpy import load_file

    tensors = load_file(str(ROOT / "samples/model/classifier.safetensors"))
    W, b = tensors["classifier.weight"].astype(float), tensors["classifier.bias"].astype(float)
    x = np.array(json.loads((ROOT / "samples/model/x.json").read_text()))
    z = W @ x + b  # PyTorch's nn.Linear, written out
    assert np.allclose(json.loads(result.stdout)["h"], post_softmax(z), rtol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_pictures_are_written_through_the_writer(tmp_path, suffix):
    out = tmp_path / f"J{suffix}"
    result = run("jacobian", *BLOG, "-o", str(out))
    assert result.exit_code == 0 and f"wrote {out}" in result.stderr
    head = out.read_bytes()[:8]
    assert head.startswith({".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix])
    again = run("jacobian", *BLOG, "-o", str(out))
    assert again.exit_code == 2 and "exists; add --force" in again.stderr


def test_a_picture_of_a_table_is_refused_before_any_work(tmp_path):
    result = run("check", *BLOG, "-o", str(tmp_path / "c.png"))
    assert result.exit_code == 2 and "has no picture" in result.stderr and not list(tmp_path.iterdir())


ARGS = {
    "forward": ["forward", *BLOG],
    "jacobian": ["jacobian", *BLOG],
    "jacobian --entry": ["jacobian", *BLOG, "--entry", "1,1,2"],
    "jacobian --format factored": ["jacobian", *BLOG, "--format", "factored"],
    "jacobian --legend": ["jacobian", *BLOG, "--legend"],
    "grad": ["grad", *BLOG, "--target", "2"],
    "grad --layer CHECKPOINT": [
        "grad",
        "--layer",
        str(ROOT / "samples/model/classifier.safetensors"),
        "--key",
        "classifier",
        "-x",
        str(ROOT / "samples/model/x.json"),
        "--target",
        "1",
    ],
    "check": ["check", *BLOG],
    "verify": ["verify", *BLOG, "--jacobian", str(MISTAKES / "diagonal-only.json")],
}
_CELLS = [(name, f) for name in ARGS for f in Format if f.suffix or f.printable]  # what a result can be


@pytest.mark.parametrize(("name", "fmt"), _CELLS, ids=[f"{n}-{f.value}" for n, f in _CELLS])
def test_every_cell_of_the_options_matrix_does_what_it_says(tmp_path, name, fmt):
    from smjac.outputs.results import COMMANDS
    from smjac.outputs.writer import left_out, refusal

    shape = COMMANDS[name]
    args = list(ARGS[name])
    if "--format" in args and fmt.printable:
        return  # factored is chosen by --format itself; its -o cells are the ones to run
    out = tmp_path / f"r{fmt.suffix}" if fmt.suffix else None
    run_args = (
        [*args, "-o", str(out)]
        if out and (not fmt.printable or "--format" in args)
        else [*args, "-f", fmt.value]
    )
    result = run(*run_args)
    refused = refusal(fmt, shape) is not None
    if refused:
        assert result.exit_code == 2 and result.stdout == "" and not list(tmp_path.iterdir()), result.stderr
        return
    assert result.exit_code == (1 if name == "verify" else 0), result.stderr
    if out is not None and "-o" in run_args:
        assert out.stat().st_size > 0
    else:
        assert result.stdout.strip()
    if left_out(fmt, shape):
        if fmt is Format.table or fmt.picture:  # they show the loss, in the caption or the title
            assert "loss (= " not in result.stderr
        else:
            assert "holds grad only, not " in result.stderr and "loss (= " in result.stderr


@pytest.mark.parametrize(
    ("fmt", "missing"),
    [
        ("table", "grad_b"),
        ("markdown", "grad_b or loss (= "),
        ("latex", "grad_b or loss (= "),
        ("heatmap", "grad_b or loss (= "),
        ("csv", "grad_b or loss (= "),
        ("r.md", "grad_b or loss (= "),
        ("r.png", "grad_b"),
        ("r.svg", "grad_b"),
        ("r.npy", "grad_b or loss (= "),
    ],
)
def test_what_draws_the_gradient_alone_says_what_it_leaves_out(tmp_path, fmt, missing):
    # Markdown, LaTeX, a table and pictures held dL/dW alone without a word; CSV and .npy said so
    W = np.arange(12.0).reshape(3, 4) / 10
    for name, a in (("W", W), ("x", np.array([0.1, 0.5, 0.4])), ("b", np.array([0.1, -0.2, 0.3, 0.0]))):
        np.save(tmp_path / f"{name}.npy", a)
    where = ["-o", str(tmp_path / fmt)] if "." in fmt else ["-f", fmt]
    layer = ["-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "-b", str(tmp_path / "b.npy")]
    result = run("grad", *layer, "--target", "2", *where)
    assert result.exit_code == 0, result.stderr
    said = f"holds grad only, not {missing}"
    assert said in result.stderr and result.stderr.rstrip().endswith("; .json or .npz holds it all")


MODEL = ROOT / "samples/model"


@pytest.mark.parametrize("layout", [[], ["--layout", "out-in"]])
def test_a_gradient_goes_back_into_the_checkpoints_names_shape_and_dtype(tmp_path, layout):
    from safetensors.numpy import load_file

    out = tmp_path / "grads.safetensors"
    args = [
        "--layer",
        str(MODEL / "classifier.safetensors"),
        "--key",
        "classifier",
        "-x",
        str(MODEL / "x.json"),
    ]
    result = run("grad", *args, *layout, "--target", "0", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    back, model = load_file(str(out)), load_file(str(MODEL / "classifier.safetensors"))
    assert set(back) == {"classifier.weight", "classifier.bias"}
    assert back["classifier.weight"].shape == model["classifier.weight"].shape
    assert back["classifier.weight"].dtype == model["classifier.weight"].dtype
    # cross-entropy by hand, PyTorch's layout: dL/dW = (p − e_0) xᵀ, dL/db = p − e_0
    W, b = model["classifier.weight"].astype(float), model["classifier.bias"].astype(float)
    x = np.array(json.loads((MODEL / "x.json").read_text()))
    delta = post_softmax(W @ x + b) - np.eye(len(b))[0]
    assert np.allclose(back["classifier.weight"], np.outer(delta, x), rtol=1e-5, atol=1e-7)
    assert np.allclose(back["classifier.bias"], delta, rtol=1e-5, atol=1e-7)


def test_safetensors_out_needs_a_checkpoint_in_and_is_refused_before_work(tmp_path):
    result = run("grad", *BLOG, "--target", "0", "-o", str(tmp_path / "g.safetensors"))
    assert (
        result.exit_code == 2
        and "only smjac grad writes one, the gradient of a layer read from a checkpoint" in result.stderr
    )
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_or_a_pickle_given_as_w_is_pointed_the_right_way(tmp_path):
    result = run("forward", "-W", str(MODEL / "classifier.safetensors"), "-x", str(MODEL / "x.json"))
    assert (
        result.exit_code == 2 and "is a model checkpoint, not one matrix: give it as --layer" in result.stderr
    )
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x02")
    result = run("forward", "-W", str(pickle), "-x", str(MODEL / "x.json"))
    assert result.exit_code == 2 and "CVE-2025-32434" in result.stderr and "save_file" in result.stderr


@pytest.mark.parametrize(("no_color", "glyphs"), [(True, True), (False, False)])
def test_a_heatmap_at_a_terminal_honours_no_color(no_color, glyphs):
    # the writer takes its facts from an Environment, so a terminal can be staged (as httpie does)
    import io

    import smjac
    from smjac.outputs import results
    from smjac.outputs.writer import Environment, Format, Options, Writer

    out, err = io.StringIO(), io.StringIO()
    env = Environment(
        out, err, stdout_isatty=True, stderr_isatty=False, no_color=no_color, width=60, height=20
    )
    L = smjac.make_layer(BLOG_W, BLOG_X)
    w = Writer(results.JACOBIAN, Options(fmt=Format.heatmap), env)
    assert w.write(results.jacobian(L, of="h", wrt="W", method="shortcut", sample=0)) == 0
    text = out.getvalue()
    assert ("▀" not in text and set("+#") & set(text)) if glyphs else ("▀" in text and "\x1b[" in text)


# ------------------------------------------------------------- the inputs' own checks, wired


def test_verify_holds_its_comparison_to_max_memory(tmp_path):
    # 40 × 1,200 dh/dW compared in blocks: it fits in 200K, not in 100K, and is refused before work
    rng = np.random.default_rng(0)
    np.save(tmp_path / "W.npy", rng.normal(size=(30, 40)))
    np.save(tmp_path / "x.npy", rng.normal(size=30))
    np.save(tmp_path / "J.npy", rng.normal(size=(40, 1200)))
    args = ["verify", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "--jacobian"]
    fits = run(*args, str(tmp_path / "J.npy"), "--max-memory", "400K", "-f", "json")
    assert fits.exit_code == 1 and json.loads(fits.stdout)["ok"] is False  # random numbers: wrong
    refused = run(*args, str(tmp_path / "J.npy"), "--max-memory", "100K", "-f", "json")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "over the memory budget of 100.0 KiB (--max-memory)" in refused.stderr


def test_a_long_answer_of_more_numbers_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    # 5 × 600 numbers where dh/dW is 5 × 15: refused by counting, never handed to a parser
    from smjac import inputs

    parse = inputs.parse

    def no_parse(data, fmt, *args, **kwargs):
        if fmt is Format.json:  # the layer's .npz members are parsed as .npy
            raise AssertionError("the answer was parsed")
        return parse(data, fmt, *args, **kwargs)

    answer = tmp_path / "big.json"
    answer.write_text(json.dumps(np.full((5, 600), 0.125).tolist()))
    monkeypatch.setattr(inputs, "parse", no_parse)
    result = run("verify", "--layer", str(ROOT / "samples/blog/layer.npz"), "--jacobian", str(answer))
    assert result.exit_code == 2 and result.stdout == ""
    assert f"Error: {answer}: holds at least" in result.stderr and "5 × 15 (75 numbers)" in result.stderr


@pytest.mark.parametrize("suffix", [".json", ".npy"])
def test_an_answer_of_another_size_is_still_diagnosed_by_its_shape(tmp_path, suffix):
    # dh/dx (K × n) given for dh/dW: short enough to read, so verify says what its shape would be
    wrong = np.asarray(json.loads((MISTAKES / "shape.json").read_text()))
    assert wrong.shape == (5, 3)
    path = tmp_path / f"dh_dx{suffix}"
    path.write_text(json.dumps(wrong.tolist())) if suffix == ".json" else np.save(path, wrong)
    result = run("verify", *BLOG, "--jacobian", str(path), "-f", "json")
    assert result.exit_code == 1, result.stderr
    (diagnosis,) = json.loads(result.stdout)["diagnosis"]
    assert diagnosis["mistake"] == "shape" and "which would be dh/dx" in diagnosis["detail"]


def test_upstream_is_cast_to_the_layers_dtype_and_refused_when_it_overflows(tmp_path):
    # 1e39 is a float64 but not a float32: the float32 gradient would hold 1e37s computed from it
    upstream = tmp_path / "g.json"
    upstream.write_text("[1e39, 0, 0, 0, 0]")
    args = ["grad", *BLOG, "--upstream", str(upstream), "-f", "json"]
    assert run(*args).exit_code == 0  # in float64 it is a number like any other
    result = run(*args, "--dtype", "float32")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {upstream}: 1e+39 overflows float32")


def test_a_vector_x_over_the_input_cap_is_refused_naming_the_cap(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(30.0))  # 368 bytes: mapped only as a batch
    result = run("--max-input-bytes", "100", "forward", "-W", str(ROOT / "samples/blog/W.json"),
                 "-x", str(tmp_path / "x.npy"))  # fmt: skip
    assert result.exit_code == 2
    assert "is 368 bytes, over the input size cap of 100 bytes" in result.stderr
