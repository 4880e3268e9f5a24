"""Every output format within its estimate (issue 18: "every result takes its size from
maths/cost.py, printed results included"; issue 19: "one budget, every path").

The peak is what numpy and Python allocate while the writer computes and writes the result
(tracemalloc), against :func:`smjac.maths.estimate_bytes` for that format.
"""

from __future__ import annotations

import io
import os
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from typer.testing import CliRunner

from smjac import budget, maths
from smjac.cli import app
from smjac.formats.table import Format
from smjac.outputs import results
from smjac.outputs.writer import Environment, Options, Writer


def devnull_env() -> Environment:
    out = io.TextIOWrapper(open(os.devnull, "wb"), encoding="utf-8")  # noqa: SIM115 - closed by the test
    return Environment(out, io.StringIO(), False, False, True, 200, 50)


def peak_of_writing(L: maths.Layer, opts: Options) -> int:
    small = maths.make_layer(
        L.W[:3, :2], L.X.reshape(-1)[:3]
    )  # once first: the modules it imports are not the peak
    for layer in (small, L):
        peak = _traced(layer, opts)
    return peak


def _traced(L: maths.Layer, opts: Options) -> int:
    env = devnull_env()
    writer = Writer(results.JACOBIAN, opts, env)
    tracemalloc.start()
    try:
        status = writer.write(results.jacobian(L, of="h", wrt="W", method="shortcut", sample=0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        env.stdout.close()
    assert status == 0
    return peak


@pytest.fixture(scope="module")
def layer() -> maths.Layer:
    rng = np.random.default_rng(18)
    n = K = 80  # dh/dW: 80 × 6400, 4 MiB
    return maths.make_layer(rng.normal(size=(n, K)) / 10, rng.normal(size=n))


@pytest.mark.parametrize(
    "fmt, suffix",
    [("markdown", ".md"), ("latex", ".tex"), ("npz", ".npz"), ("json", ".json"), ("markdown", None),
     ("latex", None), ("table", None), ("heatmap", None), ("png", ".png"), ("svg", ".svg")],
)  # fmt: skip
def test_each_format_peaks_within_its_estimate(tmp_path, layer, fmt, suffix):
    # Were over: Markdown 16 times dh/dW, LaTeX 21 (their whole text, its cells and its bytes),
    # a table 4 (the number format's scan of the nonzero entries' indices), .npz 3 (numpy's zip in
    # memory, then its bytes), each estimated at the matrix alone or at JSON's 88 bytes a number;
    # a picture 80 MiB of matplotlib, estimated at the matrix alone.
    if fmt in ("png", "svg"):
        pytest.importorskip("matplotlib")
    opts = Options(output=tmp_path / f"J{suffix}", force=True) if suffix else Options(fmt=Format(fmt))
    peak = peak_of_writing(layer, opts._replace(max_memory=2**30))
    need = maths.estimate_bytes(layer, "jacobian", text=fmt)
    J = maths.layer_jacobian(layer)
    assert J.nbytes < peak <= need, (budget.format_size(peak), budget.format_size(need))
    if suffix == ".md":
        lines = (tmp_path / "J.md").read_text().splitlines()
        assert len(lines) == 2 + 80 and lines[2].count(" | ") == 6400
        assert float(lines[2].split(" | ")[-1].rstrip(" |")) == pytest.approx(
            J.reshape(80, 6400)[0, 6399], rel=1e-6
        )


def test_npz_over_the_budget_is_refused_before_work_with_its_figure(tmp_path, layer):
    folder = tmp_path
    np.save(folder / "W.npy", layer.W)
    np.save(folder / "x.npy", layer.X)
    held, npz = (maths.estimate_bytes(layer, "jacobian", text=f) for f in ("npy", "npz"))
    assert npz >= held + 2 * maths.layer_jacobian(layer).nbytes  # its zip and its bytes
    args = [
        "jacobian",
        "-W",
        str(folder / "W.npy"),
        "-x",
        str(folder / "x.npy"),
        "--max-memory",
        str((held + npz) // 2),
    ]
    refused = CliRunner().invoke(app, [*args, "-o", str(folder / "J.npz")])
    assert refused.exit_code == 2 and not (folder / "J.npz").exists()
    assert f"as npz would take {budget.format_size(npz)}, over the memory budget" in refused.stderr
    assert "(--max-memory)" in refused.stderr


@pytest.mark.parametrize("method", ["shortcut", "chain"])
@pytest.mark.parametrize("of", ["h", "z"])
def test_dh_dx_streams_in_row_blocks_as_dh_dw_does(method, of):
    # Was held whole: each sample's K × n dh/dx was one block, beside the closed form's two
    # temporaries as large (a 5000 × 5000 W to -o J.npy at --max-memory 64M peaked at 609 MiB).
    rng = np.random.default_rng(9)
    n = K = 200
    L = maths.make_layer(rng.normal(size=(n, K)) / 10, rng.normal(size=(2, n)))
    whole = maths.layer_jacobian(L, of=of, wrt="x", method=method).reshape(-1, n)
    done = 0
    tracemalloc.start()
    try:
        for block in maths.jacobian_blocks(L, of=of, wrt="x", method=method, block_bytes=8 * n * 8).rows:
            assert len(block) <= 8
            assert_array_equal(block, whole[done : done + len(block)])  # the very floats of the whole
            done += len(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done == 2 * K
    assert peak < K * n * 8 / 2, budget.format_size(peak)  # half of one sample's dh/dx (numpy 2.2: 117 KiB)
