"""Every file in samples/ loads, holds what it says, and runs through the CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from typer.testing import CliRunner

from smjac import inputs
from smjac.cli import app
from smjac.outputs.demo import blog_example

from .conftest import BLOG_W, BLOG_X, ROOT

# samples/mistakes (wrong answers for smjac verify) is accounted for in test_verify.py
SAMPLES = sorted(
    p for p in (ROOT / "samples").rglob("*") if p.is_file() and "mistakes" not in p.relative_to(ROOT).parts
)
BLOG = ROOT / "samples" / "blog"
BATCH_X = np.array([[0.1, 0.5, 0.4], [1.0, 0.0, -1.0], [0.3, 0.3, 0.3], [-0.2, 0.9, 0.1]])

# What each sample holds, typed in here from the post (not read from another sample).
EXPECTED = {
    "blog/W.json": BLOG_W,
    "blog/W.csv": BLOG_W,
    "blog/W.npy": BLOG_W,
    "blog/x.json": BLOG_X,
    "blog/x.csv": BLOG_X,
    "blog/x.npy": BLOG_X,
    "pytorch/W.json": BLOG_W.T,  # nn.Linear(3, 5).weight is K×n
    "pytorch/x.json": BLOG_X,
    "pytorch/b.json": np.array([0.05, -0.05, 0.0, 0.1, -0.1]),
    "batch/W.json": BLOG_W,
    "batch/X.json": BATCH_X,
    "batch/targets.csv": np.array([3.0, 0.0, 2.0, 1.0]),
    "batch/class-weights.json": np.array([1.0, 2.0, 0.5, 1.0, 3.0]),  # one per class of batch/W
    # binary logistic regression as scikit-learn stores it: coef_ 1×n (out-in), intercept_, 0/1 targets
    "binary/coef.json": np.array([[1.2, -0.8, 0.5]]),
    "binary/intercept.json": np.array([0.1]),
    "binary/X.json": BATCH_X,
    "binary/y.csv": np.array([1.0, 0.0, 1.0, 0.0]),
    "model/x.json": np.array([-0.58, -0.19, 0.17, -0.34, 1.52, -0.36]),
}
BUNDLES = {"blog/layer.npz", "blog/layer.json"}
# model checkpoints and the script that writes them: tests/test_checkpoints.py reads them
MODELS = {"model/make.py", "model/classifier.safetensors", "model/model.keras", "model/model.h5"}
MODELS |= {f"model/tiny-gpt2/{n}" for n in ("config.json", "model.safetensors")}
MODELS |= {f"model/tiny-llama/{n}" for n in ("config.json", "model.safetensors.index.json")}
MODELS |= {f"model/tiny-llama/model-0000{i}-of-00002.safetensors" for i in (1, 2)}


def test_every_sample_is_accounted_for():
    assert {p.relative_to(ROOT / "samples").as_posix() for p in SAMPLES} == set(EXPECTED) | BUNDLES | MODELS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_holds_what_it_says(name):
    expected = EXPECTED[name]
    assert_array_equal(inputs.load_array(ROOT / "samples" / name).reshape(expected.shape), expected)


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_bundles_hold_the_posts_layer(name):
    arrays = inputs.load_bundle(ROOT / "samples" / name)
    assert sorted(arrays) == ["W", "x"]
    assert_array_equal(arrays["W"], BLOG_W)
    assert_array_equal(arrays["x"], BLOG_X)


def test_the_demo_ships_the_same_example():
    W, x = blog_example()
    assert_array_equal(W, BLOG_W)
    assert_array_equal(x, BLOG_X)


def ok(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(("wf", "xf"), list(itertools.product(["json", "csv", "npy"], repeat=2)))
def test_every_pair_of_blog_formats_checks_out(wf, xf):
    assert ok("check", "-W", str(BLOG / f"W.{wf}"), "-x", str(BLOG / f"x.{xf}"))["ok"] is True


def test_every_sample_set_runs():
    s = ROOT / "samples"
    for bundle in BUNDLES:
        assert ok("check", "--layer", str(s / bundle))["ok"] is True
    torch = [
        "-W",
        str(s / "pytorch/W.json"),
        "-x",
        str(s / "pytorch/x.json"),
        "-b",
        str(s / "pytorch/b.json"),
    ]
    assert ok("check", *torch, "--layout", "out-in")["ok"] is True
    batch = ["-W", str(s / "batch/W.json"), "-x", str(s / "batch/X.json")]
    assert ok("check", *batch)["ok"] is True
    assert ok("grad", *batch, "--target", str(s / "batch/targets.csv"))["loss"] > 0
    weighted = [
        "--target",
        str(s / "batch/targets.csv"),
        "--class-weights",
        str(s / "batch/class-weights.json"),
    ]
    assert ok("grad", *batch, *weighted)["loss"] > 0
    binary = [
        "-W",
        str(s / "binary/coef.json"),
        "-b",
        str(s / "binary/intercept.json"),
        "-x",
        str(s / "binary/X.json"),
    ]
    binary += ["--layout", "out-in", "--target", str(s / "binary/y.csv")]
    assert ok("check", *binary)["ok"] is True
