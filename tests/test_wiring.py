"""The commands that sit on the verify, checkpoint and picture libraries, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from smjac.cli import app

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
    "check": ["check", *BLOG],
    "verify": ["verify", *BLOG, "--jacobian", str(MISTAKES / "diagonal-only.json")],
}
_CELLS = [(name, f) for name in ARGS for f in __import__("smjac.output", fromlist=["Format"]).Format]


@pytest.mark.parametrize(("name", "fmt"), _CELLS, ids=[f"{n}-{f.value}" for n, f in _CELLS])
def test_every_cell_of_the_options_matrix_does_what_it_says(tmp_path, name, fmt):
    from smjac.output import left_out, refusal
    from smjac.results import COMMANDS

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
        assert "holds grad only, not loss" in result.stderr
