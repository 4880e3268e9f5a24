"""Every output format within its estimate (issue 18: "every result takes its size from
maths/cost.py, printed results included"; issue 19: "one budget, every path").

The peak is what numpy and Python allocate while the writer computes and writes the result
(tracemalloc), against :func:`smjac.maths.estimate_bytes` for that format.
"""

from __future__ import annotations

import io
import json
import os
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from typer.testing import CliRunner

from smjac import budget, maths
from smjac.cli import app
from smjac.errors import InputError
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


def layer_args(L: maths.Layer, folder) -> list[str]:
    np.save(folder / "W.npy", L.W)
    np.save(folder / "x.npy", L.X.reshape(-1))  # one sample
    return ["-W", str(folder / "W.npy"), "-x", str(folder / "x.npy")]


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_a_streamed_jacobian_keeps_the_budget_in_blocks_that_fit_it(layer, fmt, tmp_path):
    # blocks were 16 MiB whatever --max-memory said: dh/dW of a 150×150 layer as CSV under 4M
    # peaked 17 MiB over the forward pass's own
    J = maths.layer_jacobian(layer)
    peaks = {}
    for most in (2**20, 2**30):
        peaks[most] = peak_of_writing(layer, Options(fmt=Format(fmt), max_memory=most))
    assert peaks[2**20] <= 2**20, budget.format_size(peaks[2**20])
    assert peaks[2**30] > J.nbytes > 2 * peaks[2**20]  # one block of the whole where the budget allows
    args = ["jacobian", *layer_args(layer, tmp_path), "-f", fmt, "--max-memory", "1M"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.stderr
    streamed = (
        np.loadtxt(io.StringIO(out.stdout), delimiter=",")
        if fmt == "csv"
        else np.load(io.BytesIO(out.stdout_bytes))
    )
    assert_array_equal(streamed, J[0])  # the same numbers, whatever the blocks


def test_a_stream_over_the_budget_even_a_row_at_a_time_is_refused_before_work(layer, tmp_path):
    args = ["jacobian", *layer_args(layer, tmp_path), "-o", str(tmp_path / "J.npy"), "--max-memory", "64K"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2 and not (tmp_path / "J.npy").exists()
    assert "streamed as npy would take" in out.stderr and "over the memory budget of 64.0 KiB" in out.stderr
    # the factors (K×K, and what makes them) are over 64K too: only the entry is offered
    assert maths.estimate_bytes(layer, "factored") > 64 * 2**10 > maths.estimate_bytes(layer, "entry")
    assert "That is one row at a time; instead take one entry of it: --entry T,I,J\n" in out.stderr


def _refusal(L: maths.Layer, max_memory: int, wrt: str = "W", fmt: str = "table") -> str:
    w = Writer(results.JACOBIAN, Options(fmt=Format(fmt), max_memory=max_memory), devnull_env())
    try:
        w.write(results.jacobian(L, of="h", wrt=wrt, method="shortcut", sample=0))
    except InputError as e:
        return str(e)
    finally:
        w.env.stdout.close()
    raise AssertionError("not refused")


def _entry_offer(L: maths.Layer, **where: str) -> int:
    """What one entry takes in its costliest format: the budget from which a refusal offers it."""
    return max(maths.estimate_bytes(L, "entry", text=f, **where) for f in ("table", "json", "csv", "npz"))


def test_an_offered_entry_is_taken_in_the_format_refused(tmp_path):
    # the entry was offered at its JSON cost, and a table (the default at a terminal) of it, 178
    # bytes more, was then refused at the same budget
    rng = np.random.default_rng(7)
    np.save(tmp_path / "W.npy", rng.normal(size=(5, 3)))
    np.save(tmp_path / "x.npy", rng.normal(size=5))
    L = maths.make_layer(np.load(tmp_path / "W.npy"), np.load(tmp_path / "x.npy"))
    args = ["jacobian", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy")]
    for most in range(maths.estimate_bytes(L, "entry", text="json"), _entry_offer(L) + 1, 16):
        for fmt in ("table", "json", "csv"):  # whatever is offered, at this budget, works
            refused = CliRunner().invoke(app, [*args, "--max-memory", str(most), "-f", fmt])
            if "--entry T,I,J" in refused.stderr:
                taken = CliRunner().invoke(
                    app, [*args, "--max-memory", str(most), "-f", fmt, "--entry", "2,2,4"]
                )
                assert taken.exit_code == 0, (most, fmt, taken.stderr)
    most = str(_entry_offer(L))
    for fmt in ("table", "json", "csv"):
        refused = CliRunner().invoke(app, [*args, "--max-memory", most, "-f", fmt])
        assert refused.exit_code == 2 and "--entry T,I,J" in refused.stderr, refused.stderr
        taken = CliRunner().invoke(app, [*args, "--max-memory", most, "-f", fmt, "--entry", "2,2,4"])
        assert taken.exit_code == 0, taken.stderr
    refused = CliRunner().invoke(app, [*args, "--max-memory", str(int(most) - 1), "-f", "table"])
    assert refused.exit_code == 2 and "--entry" not in refused.stderr


def test_a_refusal_offers_only_the_ways_that_apply_and_fit(rng):
    one = maths.make_layer(rng.normal(size=(30, 20)), rng.normal(size=30))
    row = {f: maths.estimate_bytes(one, "streamed", text=f, block_bytes=8) for f in ("npy", "csv")}
    assert maths.estimate_bytes(one, "factored") < row["npy"] < row["csv"]
    both = _refusal(one, row["csv"])
    assert "Stream it in blocks to a file, -o J.npy, or as CSV to a pipe, --format csv" in both
    assert "--format factored" in both and "--entry T,I,J" in both
    npy = _refusal(one, row["csv"] - 1)  # a row as CSV text is over the budget: CSV is not offered
    assert "-o J.npy (as CSV, even a row at a time would not fit)" in npy and "--format csv;" not in npy
    # dh/dx has no factored form, and its entry is T,K
    dx = _refusal(one, _entry_offer(one, wrt="x"), wrt="x")
    assert "--format factored" not in dx and dx.endswith("; or take one entry of it: --entry T,K")
    # a batch's entry takes its forward pass: where that is over the budget, it is not offered
    batch = maths.make_layer(rng.normal(size=(30, 20)), rng.normal(size=(3000, 30)))
    entry = _entry_offer(batch)
    assert 2**20 < entry < maths.estimate_bytes(batch, "streamed", block_bytes=8)
    refused = _refusal(batch, entry - 1, fmt="json")
    least = budget.format_size(maths.estimate_bytes(batch, "streamed", block_bytes=8))
    assert refused.endswith(
        f"(max_memory). Streamed, it would not fit either: one row at a time takes {least}"
    )
    assert _refusal(batch, entry, fmt="json").endswith(
        f"not fit either: one row at a time takes {least}; or take one entry of it: --entry T,I,J"
    )


def test_a_wide_mapped_batch_streams_as_csv_in_chunks_that_fit_the_budget(tmp_path):
    # a chunk was 2^16 // K rows whatever the budget and x's width: for a 10,000-wide x and two
    # outputs, 32,768 rows of x, 2.6 GB, read at once
    from smjac.inputs import map_npy

    rng = np.random.default_rng(5)
    N, n, K = 400, 2000, 2  # x: 6.4 MB
    W, X = rng.normal(size=(n, K)) / 40, rng.normal(size=(N, n))
    np.save(tmp_path / "X.npy", X)
    Xm = map_npy(tmp_path / "X.npy")
    L = maths.make_layer(W, Xm[:1])
    res = results.forward_mapped(L, Xm, precision=6, sample=0, budget=2**20)
    assert res.csv_chunks is not None
    "".join(res.csv_chunks(lambda done: None))  # once first: the modules it imports are not the peak
    tracemalloc.start()
    try:
        text = "".join(res.csv_chunks(lambda done: None))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - len(text) < 2**20, budget.format_size(peak - len(text))  # the text joined aside
    got = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=(-2, -1))
    want = maths.forward(W, X)  # a GEMM of other rows may round otherwise: the chunks' own are forward's
    np.testing.assert_allclose(got, np.column_stack([want.z.reshape(-1), want.h.reshape(-1)]), rtol=1e-12)


@pytest.mark.parametrize(("N", "n", "K"), [(2000, 50, 3), (400, 2000, 2)])
def test_a_mapped_batch_as_csv_holds_the_very_floats_of_its_json(tmp_path, N, n, K):
    # CSV was computed in chunks of its own (2^16 numbers), JSON and .npz in chunks of a quarter
    # of the budget: a GEMM given other rows at once may round otherwise (15 and 88 of these
    # logits differed here), so the two formats of one run disagreed
    from smjac.inputs import map_npy

    rng = np.random.default_rng(8)
    W, X = rng.normal(size=(n, K)) / 9, rng.normal(size=(N, n))
    np.save(tmp_path / "X.npy", X)
    Xm = map_npy(tmp_path / "X.npy")
    res = results.forward_mapped(maths.make_layer(W, Xm[:1]), Xm, precision=6, sample=0, budget=2**20)
    assert res.csv_chunks is not None
    text = "".join(res.csv_chunks(lambda done: None))
    rows = [line.split(",") for line in text.splitlines()[1:]]
    assert len(rows) == N * K
    held = res.data(lambda done: None).fields
    z = np.array([float(r[-2]) for r in rows]).reshape(N, K)
    h = np.array([float(r[-1]) for r in rows]).reshape(N, K)
    assert_array_equal(z, held["z"])
    assert_array_equal(h, held["h"])


def test_the_factors_are_offered_as_they_would_be_written_and_the_offer_works(tmp_path):
    # the factors were judged by their arrays, not by the JSON --format factored writes: offered,
    # then refused; and that refusal offered nothing
    rng = np.random.default_rng(4)
    np.save(tmp_path / "W.npy", rng.normal(size=(50, 200)))
    np.save(tmp_path / "x.npy", rng.normal(size=50))
    layer = ["jacobian", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy")]
    L = maths.make_layer(np.load(tmp_path / "W.npy"), np.load(tmp_path / "x.npy"))
    as_json, as_npz = (maths.estimate_bytes(L, "factored", text=t) for t in ("json", "npz"))
    for most, offer in [(as_json, "--format factored;"), (as_npz, "--format factored -o F.npz;")]:
        refused = CliRunner().invoke(app, [*layer, "--max-memory", str(most), "--format", "json"])
        assert refused.exit_code == 2 and offer in refused.stderr, refused.stderr
        taken = offer.rstrip(";").split()[2:]  # "-o F.npz", or nothing
        out = tmp_path / "F.npz" if taken else None
        args = [*layer, "--max-memory", str(most), "--format", "factored", *(["-o", str(out)] if out else [])]
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 0, done.stderr
        F = np.load(out) if out else json.loads(done.stdout)
        assert np.shape(F["A"]) == (200, 200) and np.shape(F["x"]) == (50,)
    # over the budget as JSON, the factors offer the file that fits
    refused = CliRunner().invoke(app, [*layer, "--max-memory", str(as_npz), "--format", "factored"])
    assert refused.exit_code == 2 and refused.stderr.rstrip().endswith(
        "(--max-memory). Write them to a file, -o F.npz"
    )
    # under both, neither is offered
    refused = CliRunner().invoke(app, [*layer, "--max-memory", str(as_npz - 1), "--format", "json"])
    assert refused.exit_code == 2 and "factored" not in refused.stderr


def test_a_mapped_forward_over_the_budget_offers_csv_which_then_works(tmp_path):
    # the refusal of JSON (or a table, .npz) said nothing, though CSV streams in chunks
    rng = np.random.default_rng(5)
    np.save(tmp_path / "W.npy", rng.normal(size=(150, 3)))
    np.save(tmp_path / "X.npy", rng.normal(size=(600, 150)))
    W, X = str(tmp_path / "W.npy"), str(tmp_path / "X.npy")
    args = ["--max-input-bytes", "4000", "forward", "-W", W, "-x", X]
    for fmt in ("json", "table", "npz"):
        refused = CliRunner().invoke(app, [*args, "--max-memory", "20K", "-f", fmt])
        assert refused.exit_code == 2
        assert refused.stderr.rstrip().endswith(
            "Stream it as CSV, a chunk of rows at a time: --format csv, or -o F.csv"
        )
    done = CliRunner().invoke(app, [*args, "--max-memory", "20K", "-o", str(tmp_path / "F.csv")])
    assert done.exit_code == 0, done.stderr
    assert len((tmp_path / "F.csv").read_text().splitlines()) == 1 + 600 * 3


def test_a_refusal_with_a_streaming_file_given_says_to_leave_out_the_other_copy(tmp_path):
    # -f json -o J.npy: the JSON copy on stdout was over the budget, and the refusal offered -o J.npy
    rng = np.random.default_rng(0)
    np.save(tmp_path / "W.npy", rng.normal(size=(5, 3)))
    np.save(tmp_path / "x.npy", rng.normal(size=5))
    out = tmp_path / "J.npy"
    args = ["jacobian", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "--max-memory", "600"]
    refused = CliRunner().invoke(app, [*args, "-f", "json", "-o", str(out)])
    assert refused.exit_code == 2 and not out.exists()
    assert (
        f"(--max-memory). {out} alone would be streamed in blocks: leave out --format json;" in refused.stderr
    )
    done = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert done.exit_code == 0 and np.load(out).shape == (3, 15)
