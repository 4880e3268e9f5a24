"""Every file in samples/ loads, holds the post's example, and runs through the CLI."""

from __future__ import annotations

import itertools
import json

import pytest
from numpy.testing import assert_array_equal
from typer.testing import CliRunner

from smjac import io as smio
from smjac.cli import app
from smjac.demo import blog_example

from .conftest import BLOG_W, BLOG_X, ROOT

SAMPLES = sorted(p for p in (ROOT / "samples").rglob("*") if p.is_file())
BLOG = ROOT / "samples" / "blog"


def test_the_samples_are_there():
    names = {p.relative_to(BLOG).as_posix() for p in SAMPLES if p.parent == BLOG}
    assert names >= {f"{a}.{f}" for a in "Wx" for f in ("json", "csv", "npy")}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_sample_loads_as_the_posts_example(path):
    expected = {"W": BLOG_W, "x": BLOG_X}[path.stem]
    assert_array_equal(smio.load_array(path).reshape(expected.shape), expected)


def test_the_demo_ships_the_same_example():
    W, x = blog_example()
    assert_array_equal(W, BLOG_W)
    assert_array_equal(x, BLOG_X)


@pytest.mark.parametrize(("wf", "xf"), list(itertools.product(["json", "csv", "npy"], repeat=2)))
def test_every_pair_of_sample_formats_checks_out(wf, xf):
    result = CliRunner().invoke(
        app, ["check", "-W", str(BLOG / f"W.{wf}"), "-x", str(BLOG / f"x.{xf}"), "-f", "json"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
