"""What the commands' pictures say: the function, the derivative, the method, the sample of a batch,
and the labels of the axes and of the colour bar."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from smjac.cli import app

from .conftest import ROOT
from .test_plot import pdf_info, svg_text

pytest.importorskip("matplotlib")

BLOG = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]
BATCH = ["-W", str(ROOT / "samples/batch/W.json"), "-x", str(ROOT / "samples/batch/X.json")]


def picture(tmp_path, *args: str, suffix: str = ".svg") -> bytes:
    out = tmp_path / f"p{suffix}"
    result = CliRunner().invoke(app, [*args, "-o", str(out)], env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    return out.read_bytes()


@pytest.mark.parametrize(
    "args,title,axes",
    [
        (
            ["jacobian", *BLOG],
            "softmax: ∂h/∂W, shortcut method, 5×15",
            ["output hₜ", "weight w[i,j] (column i·n + j)", "∂hₜ/∂w[i,j]"],
        ),
        (
            ["jacobian", *BATCH, "--sample", "1", "--method", "chain"],
            "softmax: ∂h/∂W, chain method, 5×15, sample 1 of 4",
            ["output hₜ", "∂hₜ/∂w[i,j]"],
        ),
        (
            ["jacobian", *BLOG, "--function", "log-softmax", "--wrt", "z"],
            "log-softmax: ∂(log h)/∂z, shortcut method, 5×5",
            ["output log hₜ", "logit zᵢ", "∂(log hₜ)/∂zᵢ"],
        ),
        (
            # z is before the softmax and its temperature, and has no method: the title says so
            ["jacobian", *BLOG, "--of", "z", "--wrt", "x", "--temperature", "2"],
            "the logits z, before the softmax: ∂z/∂x, 5×3",
            ["logit zₜ", "input xⱼ", "∂zₜ/∂xⱼ"],
        ),
        (["forward", *BATCH, "--sample", "2"], "h = softmax(z), sample 2 of 4", ["output t", "hₜ"]),
        (["forward", *BLOG, "--function", "log-softmax"], "log h = log-softmax(z)", ["log hₜ"]),
        (["grad", *BLOG, "--target", "2"], "softmax: ∂Loss/∂W, in W's shape", ["input xⱼ", "output zᵢ"]),
        (
            ["grad", *BATCH, "--target", "2", "--reduce", "sum"],
            "cross-entropy, sum over 4 samples, loss =",
            ["input xⱼ", "output zᵢ"],
        ),
    ],
    ids=[
        "post",
        "batch-chain",
        "log-softmax",
        "temperature",
        "forward-batch",
        "forward-log",
        "grad",
        "grad-batch",
    ],
)
def test_a_picture_says_what_it_draws(tmp_path, args, title, axes):
    text = svg_text(picture(tmp_path, *args))
    assert title in text.replace("-\n", "-").replace("\n", " "), text  # a long title wraps
    for label in axes:
        assert label in text.split("\n"), (label, text)


def test_a_pdf_is_titled_by_what_it_draws(tmp_path):
    info = pdf_info(picture(tmp_path, "jacobian", *BATCH, "--sample", "3", suffix=".pdf"))
    assert info == {"Title": "softmax: ∂h/∂W, shortcut method, 5×15, sample 3 of 4", "Creator": "smjac"}
