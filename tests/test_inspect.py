"""smjac inspect: a checkpoint's candidate layers and its head, as a table or JSON; exit 0, or 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from smjac.cli import app

from .conftest import ROOT
from .test_pretrained import GPT2_CONFIG, gpt2, save_pretrained

MODEL = ROOT / "samples" / "model"
ENV = {"COLUMNS": "100", "TERMINAL_WIDTH": "100", "NO_COLOR": "1"}


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=ENV)


def test_json_lists_every_layer_and_marks_the_head():
    result = run("inspect", str(MODEL / "classifier.safetensors"), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "layers": [
            {"key": "classifier", "shape": [4, 6], "dtype": "F32", "bias": "classifier.bias", "layout": "out-in", "tied_to": None, "head": True},
            {"key": "pre_classifier", "shape": [6, 6], "dtype": "F32", "bias": "pre_classifier.bias", "layout": "out-in", "tied_to": None, "head": False},
        ],
        "head": "classifier",
    }  # fmt: skip
    assert "using classifier.weight (4×6 F32) as the head" in result.stderr


def test_a_tied_head_shows_what_it_is_tied_to(tmp_path):
    folder = save_pretrained(tmp_path / "gpt2", GPT2_CONFIG, gpt2())
    doc = json.loads(run("inspect", str(folder), "-f", "json").stdout)
    assert doc["head"] == "lm_head"
    first = doc["layers"][0]
    assert first == {
        "key": "lm_head",
        "shape": [11, 6],
        "dtype": "F32",
        "bias": None,
        "layout": "out-in",
        "tied_to": "transformer.wte.weight",
        "head": True,
    }
    conv = next(r for r in doc["layers"] if r["key"] == "transformer.h.0.mlp.c_fc")
    assert conv["layout"] == "in-out" and conv["shape"] == [6, 24]


@pytest.mark.parametrize("name", ["model.keras", "model.h5"])
def test_keras_layers_by_their_own_names(name):
    doc = json.loads(run("inspect", str(MODEL / name), "-f", "json").stdout)
    assert [(r["key"], r["shape"], r["layout"], r["head"]) for r in doc["layers"]] == [
        ("classifier", [6, 4], "in-out", True),
        ("pre_classifier", [6, 6], "in-out", False),
    ]


def test_a_table_at_a_terminal():
    result = run("inspect", str(MODEL / "tiny-llama"), "--format", "table")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].strip() == f"layers of {MODEL / 'tiny-llama'}"
    assert lines[2].split() == ["key", "shape", "dtype", "bias", "layout", "tied", "to", "head"]
    assert lines[4].split() == ["score", "3×6", "F32", "out-in", "head"]
    assert sum("head" in line.split() for line in lines[4:]) == 1
    assert "3 outputs match config.json's id2label (3 labels)" in result.stderr


def test_no_head_is_marked_when_unsure_and_it_still_exits_0(tmp_path):
    t = {f"model.layers.{i}.mlp.up_proj.weight": np.zeros((4, 2), np.float32) for i in range(3)}
    folder = save_pretrained(tmp_path / "body", {"architectures": ["LlamaModel"]}, t)
    result = run("inspect", str(folder), "-f", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["head"] is None and not any(r["head"] for r in doc["layers"]) and len(doc["layers"]) == 3
    # the reader names its parameter (key=NAME) or the flag; the command line says the flag
    assert re.search(
        r"no layer is named as a head; no head is marked: --key (NAME )?picks one", result.stderr
    )


@pytest.mark.parametrize("bad", ["samples/blog/W.json", "samples/nothing-here", "samples/blog"])
def test_bad_input_exits_2(bad):
    result = run("inspect", str(ROOT / bad))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(("Error:", "Usage:"))


def test_a_pickle_is_refused(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x80\x02")
    result = run("inspect", str(tmp_path / "model.pt"))
    assert result.exit_code == 2 and "CVE-2025-32434" in result.stderr


def test_the_installed_program_answers_in_a_pipe_with_json():
    done = subprocess.run(
        [sys.executable, "-m", "smjac", "inspect", str(MODEL / "tiny-gpt2")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["head"] == "lm_head"
    assert "using lm_head, tied to transformer.wte.weight (10×6 F32) as the head" in done.stderr


def test_chain_ends_counted_once_match_the_pairwise_definition():
    # chain_ends counts the layers' inputs once (50,000 layers took minutes pairwise); the pairwise
    # definition, written out: no *other* layer takes c's outputs as its inputs
    from smjac.formats.heads import Candidate, chain_ends

    rng = np.random.default_rng(7)
    for _ in range(200):
        pool = [
            Candidate(f"l{i}", f"l{i}.weight", (int(k), int(n)), "F32")
            for i, (k, n) in enumerate(rng.integers(1, 4, size=(int(rng.integers(0, 7)), 2)))
        ]
        pairwise = [c for c in pool if not any(d is not c and d.inputs == c.outputs for d in pool)]
        assert chain_ends(pool) == pairwise


@pytest.mark.parametrize("count", [0, 1, 40])
def test_the_layers_table_draws_what_rich_draws_row_by_row(count):
    # the table lays out its header and writes each layer's line itself (50,000 layers: 60 s -> 2 s);
    # rich's own row-by-row table of the same cells is the reference, in colour and without
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from smjac.cli.inspection import _table_of

    rng = np.random.default_rng(count)
    words = ["classifier", "model.layers.0.mlp.up_proj", "頭", "ev\\nil", "x" * 30, "lm_head"]
    rows = [
        (
            str(rng.choice(words)) + str(i),
            f"{rng.integers(1, 5000)}×{rng.integers(1, 99)}",
            str(rng.choice(["F32", "BF16", "float64"])),
            str(rng.choice(["yes", ""])),
            str(rng.choice(["out-in", "in-out"])),
            str(rng.choice(["", "transformer.wte"])),
            "head" if i == 0 else "",
        )
        for i in range(count)
    ]
    reference = Table(
        title="layers of m 頭",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
    )
    for name in ("key", "shape", "dtype", "bias", "layout", "tied to", "head"):
        reference.add_column(name, overflow="fold")
    for r in rows:
        reference.add_row(*map(Text, r))
    for color in (None, "standard"):
        drawn = []
        for table in (_table_of("layers of m 頭", rows), reference):
            console = Console(width=200, color_system=color, force_terminal=color is not None)
            with console.capture() as out:
                console.print(table)
            drawn.append(out.get())
        assert drawn[0] == drawn[1]


def test_the_memory_budget_holds_for_the_headers_too():
    # inspect read headers and configs under half the available memory, whatever the user set
    refused = run("inspect", str(MODEL / "tiny-gpt2"), "--max-memory", "2K")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.startswith(
        f"Error: {MODEL / 'tiny-gpt2' / 'model.safetensors'}: parsing its header ("
    )
    assert refused.stderr.endswith("over the memory budget of 2.0 KiB (--max-memory)\n")
    assert run("inspect", str(MODEL / "tiny-gpt2"), "--max-memory", "1M").exit_code == 0
