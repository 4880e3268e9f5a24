"""Large layers: the in-place fast path, row blocks, streaming, the memory guard, factors, progress.

These check behaviour (same numbers, bounded buffers, files written whole or not at all); how
fast and how much memory is measured by benchmarks/bench.py, not here.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

import smjac
from smjac import budget, errors, maths
from smjac.cli import app
from smjac.formats import document
from smjac.formats import text as text_format
from smjac.outputs import atomic
from smjac.outputs.progress import Progress

from .conftest import BLOG_W, BLOG_X, ROOT, post_l_dir_shortcut, post_softmax

ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
LAYER = ["--layer", str(ROOT / "samples/blog/layer.npz")]


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=ENV)


@pytest.fixture
def big(rng):
    n, K, N = 7, 6, 3
    return rng.normal(size=(n, K)), rng.normal(size=(N, n))


def test_out_receives_the_jacobian(big):
    W, X = big
    out = np.full((3, 6, 42), np.nan)
    J = smjac.jacobian(W, X, out=out)
    assert J is out
    assert_allclose(
        out[1], post_l_dir_shortcut(W, post_softmax(W.T @ X[1] - (W.T @ X[1]).max()), X[1]).T, atol=1e-16
    )
    with pytest.raises(
        smjac.ShapeError, match=r"of shape \(3, 6, 42\) and dtype float64, not shape \(3, 6, 41\)"
    ):
        smjac.jacobian(W, X, out=np.empty((3, 6, 41)))
    # numpy's own errors said neither what out must be nor what it was
    for wrong, given in [
        ([[0.0] * 15] * 5, "not a list"),
        (np.zeros(3), r"of shape \(5, 15\) and dtype float64, not shape \(3,\)"),
        (np.broadcast_to(np.zeros(15), (5, 15)), "not a read-only array"),
    ]:
        with pytest.raises(smjac.ShapeError, match=given):
            smjac.jacobian(BLOG_W, BLOG_X, out=wrong)
    single = np.empty((5, 15))
    assert smjac.jacobian(BLOG_W, BLOG_X, out=single) is not None
    assert_array_equal(single, smjac.jacobian(BLOG_W, BLOG_X))


@pytest.mark.parametrize("K", [3, 130])  # one block on the calling thread; several blocks on a pool
def test_long_rows_match_kron_and_leave_numpy_s_buffer_size_alone(rng, K):
    # Rows of n >= 128 numbers run with a smaller ufunc buffer (see smjac.maths._parallel.bufsize_for_rows).
    n = 200
    W, x = rng.normal(size=(n, K)) / 10, rng.normal(size=n)
    A = smjac.softmax_jacobian(smjac.forward(W, x).h)
    with np.errstate():
        np.setbufsize(4096)
        J = smjac.jacobian(W, x)
        assert np.getbufsize() == 4096
    assert_array_equal(J, np.kron(A, x[None, :]))
    assert J.nbytes > maths.BLOCK_BYTES if K == 130 else J.nbytes < maths.BLOCK_BYTES


@pytest.mark.parametrize("method", ["shortcut", "chain"])
@pytest.mark.parametrize("wrt", ["W", "x", "z"])
def test_row_blocks_make_up_the_whole(big, method, wrt):
    W, X = big
    L = maths.make_layer(W, X)
    whole = maths.layer_jacobian(L, wrt=wrt, method=method)
    blocks = maths.jacobian_blocks(L, wrt=wrt, method=method, block_bytes=2 * 42 * 8)  # two rows a block
    assert blocks.shape == whole.shape
    pieces = [b.copy() for b in blocks.rows]
    assert_array_equal(np.concatenate(pieces).reshape(whole.shape), whole)
    if wrt == "W":
        assert max(len(p) for p in pieces) == 2  # memory is bounded by the block, not the whole


def test_row_blocks_reuse_one_buffer(big):
    W, X = big
    rows = maths.jacobian_blocks(maths.make_layer(W, X), block_bytes=2 * 42 * 8).rows
    first = next(rows)
    second = next(rows)
    assert np.shares_memory(first, second)


def test_factors_give_every_entry(big):
    W, X = big
    F = smjac.jacobian_factors(W, X)
    J = smjac.jacobian(W, X)
    assert F.shape == J.shape
    assert_array_equal(F.dense(), J)
    for s, t, i, j in [(0, 0, 0, 0), (2, 5, 3, 6), (1, 2, 2, 4)]:
        assert F.entry(t, i, j, sample=s) == J[s, t, i * 7 + j]
    with pytest.raises(smjac.InputError, match="j = 7 is out of range"):
        F.entry(0, 0, 7)


def test_dz_dw_factors_are_the_identity():
    F = smjac.jacobian_factors(BLOG_W, BLOG_X, of="z")
    assert_array_equal(F.A, np.eye(5))
    assert_array_equal(F.dense(), smjac.dz_dW(BLOG_X, 5))


def test_the_gradient_s_x_part_is_computed_when_asked(big):
    W, X = big
    g = smjac.grad(W, X[0], target=2)
    assert "x" not in g.__dict__
    assert_allclose(g.x, W @ g.z, rtol=1e-14)


# ---------------------------------------------------------------- BLAS threads


def blas_threads() -> int:
    """numpy's BLAS thread count as threadpoolctl sees it; 0 when it controls no BLAS here."""
    from threadpoolctl import threadpool_info

    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=0)


@pytest.mark.parametrize("n, K", [(2000, 2000), (40, 50)])  # OpenBLAS threads the first, not the second
def test_logits_have_the_same_digits_whatever_the_number_of_blas_threads(rng, n, K):
    # A product split over threads sums in another order: at 2000×2000 in float32 the two differ
    # here in the last digits. smjac runs it in one thread, so the caller's setting doesn't matter.
    from threadpoolctl import threadpool_limits

    if not blas_threads():
        pytest.skip("numpy's BLAS is not one that threadpoolctl can set")
    W, x = rng.normal(size=(n, K)).astype(np.float32), rng.normal(size=n).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        one_thread = x @ W
    with threadpool_limits(limits=2, user_api="blas"):
        z = smjac.forward(W, x).z
        assert blas_threads() == 2  # the caller's setting stands
        g = smjac.grad(W, x, target=0)
    assert_array_equal(z, one_thread)
    assert_array_equal(g.z, smjac.grad(W, x, target=0).z)


def test_concurrent_large_forward_passes_give_back_the_caller_s_blas_threads(rng):
    # The limit is process-wide; entered from many threads at once, the last to leave restores it.
    from concurrent.futures import ThreadPoolExecutor

    W, X = rng.normal(size=(300, 200)), rng.normal(size=(3, 300))
    before, expected = blas_threads(), smjac.forward(W, X).z
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: smjac.forward(W, X).z, range(400)))
    assert blas_threads() == before
    for z in results:
        assert_array_equal(z, expected)


def test_small_layers_leave_threadpoolctl_unloaded():
    import subprocess

    code = (
        "import sys, numpy as np, smjac\n"
        "smjac.jacobian(np.ones((60, 100)), np.ones(60))\n"
        "print('threadpoolctl' in sys.modules)\n"
        "smjac.forward(np.ones((100, 100)), np.ones(100))\n"
        "print('threadpoolctl' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


# ---------------------------------------------------------------- streaming to files


@pytest.mark.parametrize("suffix", ["npy", "csv"])
def test_blocks_stream_to_a_file(tmp_path, big, suffix):
    W, X = big
    L = maths.make_layer(W, X)
    blocks = maths.jacobian_blocks(L, block_bytes=3 * 42 * 8)
    done = []
    atomic.write_blocks(
        tmp_path / f"J.{suffix}", blocks.shape, blocks.dtype, blocks.rows, progress=done.append
    )
    J = maths.layer_jacobian(L)
    back = np.load(tmp_path / "J.npy") if suffix == "npy" else np.loadtxt(tmp_path / "J.csv", delimiter=",")
    assert_array_equal(back.reshape(J.shape), J)
    assert sum(done) == J.nbytes
    assert os.listdir(tmp_path) == [f"J.{suffix}"]


def test_a_stream_that_fails_leaves_nothing(tmp_path):
    def rows():
        yield np.ones((2, 3))
        raise OSError(28, "No space left on device")

    with pytest.raises(errors.OutputError, match="No space left"):
        atomic.write_blocks(tmp_path / "J.npy", (4, 3), np.dtype("float64"), rows())
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A 30 × 30 layer in .npy files: its inputs fit in 100 KiB, its dh/dW (216,000 bytes) does not.
    The budget holds for loading too, so the inputs must fit in it."""
    folder = tmp_path_factory.mktemp("wide")
    rng = np.random.default_rng(7)
    arrays = {"W": rng.normal(size=(30, 30)), "x": rng.normal(size=30), "X": rng.normal(size=(4, 30))}
    for name, a in arrays.items():
        np.save(folder / f"{name}.npy", a)
    return folder, arrays


def test_cli_streams_npy_past_the_memory_budget(tmp_path, wide):
    folder, a = wide
    out = tmp_path / "J.npy"
    args = ["-W", str(folder / "W.npy"), "-x", str(folder / "x.npy")]
    result = run("jacobian", *args, "--max-memory", "100K", "-o", str(out))  # 216,000 bytes > 100 KiB
    assert result.exit_code == 0, result.stderr
    assert_array_equal(np.load(out), smjac.jacobian(a["W"], a["x"]))


def test_memory_guard_refuses_and_says_how_on(wide):
    folder, _ = wide
    args = ["-W", str(folder / "W.npy"), "-x", str(folder / "x.npy")]
    result = run("jacobian", *args, "--max-memory", "100K", "-f", "table")
    assert result.exit_code == 2 and result.stdout == ""
    message = result.stderr
    # the figure is the core's one estimate, which holds at least the 216,000 bytes of dh/dW itself
    need = maths.estimate_bytes(
        maths.make_layer(np.load(folder / "W.npy"), np.load(folder / "x.npy")), "jacobian", text="table"
    )
    assert need >= 30 * 900 * 8
    said = f"dh/dW (30 × 900 float64) as table would take {budget.format_size(need)}, over the memory budget of 100.0 KiB"
    assert said in message
    assert "-o J.npy" in message and "--format csv" in message
    assert "--format factored" in message and "--entry T,I,J" in message
    assert message.count("\n") == 1
    assert run("jacobian", *args, "--max-memory", "1G", "-f", "json").exit_code == 0


def test_a_result_printed_whole_as_text_counts_its_text_against_the_budget(wide):
    # Was a wrong answer to the budget: a 150×150 layer's dh/dW as JSON peaked at 343 MiB under
    # --max-memory 40M, sized by its binary bytes alone. Between the two estimates, the binary
    # result fits and its whole text does not: JSON is refused before any work. Markdown and
    # LaTeX are written a piece of a row at a time and fit.
    folder, _ = wide
    L = maths.make_layer(np.load(folder / "W.npy"), np.load(folder / "x.npy"))
    binary, text = maths.estimate_bytes(L, "jacobian"), maths.estimate_bytes(L, "jacobian", text="json")
    assert text > 2 * binary and text == maths.estimate_bytes(L, "jacobian", text=True)
    between = (binary + text) // 2
    args = [
        "jacobian",
        "-W",
        str(folder / "W.npy"),
        "-x",
        str(folder / "x.npy"),
        "--max-memory",
        str(between),
    ]
    refused = run(*args, "-f", "json")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert f"as json would take {budget.format_size(text)}, over the memory budget" in refused.stderr
    for fmt in ("markdown", "latex", "table"):
        need = maths.estimate_bytes(L, "jacobian", text=fmt)
        assert binary < need < text
        fits = [*args[:-1], str(need)]
        assert run(*fits, "-f", fmt).exit_code == 0
        assert run(*fits, "-f", "json").exit_code == 2


@pytest.mark.parametrize("wrt", ["W", "x", "z"])
@pytest.mark.parametrize("sample", ["x", "X"])
def test_csv_to_a_pipe_streams_past_the_budget(wrt, sample, wide):
    # Plain data to a pipe is written block by block, in blocks that fit the budget: a result
    # larger than the budget is written whole as long as one row a block fits it. The text is what
    # the whole array gives, and reads back to the very numbers the API returns.
    folder, a = wide
    W, x = str(folder / "W.npy"), str(folder / f"{sample}.npy")
    J = smjac.jacobian(a["W"], a[sample], wrt=wrt)
    row = maths.estimate_bytes(
        maths.make_layer(a["W"], a[sample]), "streamed", wrt=wrt, text="csv", block_bytes=8
    )
    assert J.nbytes > row  # the budget below
    for extra in ([], ["-f", "csv"]):
        result = run("jacobian", "-W", W, "-x", x, "--wrt", wrt, "--max-memory", str(row), *extra)
        assert result.exit_code == 0, result.stderr
        expected = text_format.to_csv(document.Document({"jacobian": J}, matrix="jacobian"))
        assert result.stdout == expected
        back = np.array([[float(c) for c in line.split(",")] for line in result.stdout.splitlines()])
        assert_array_equal(back, J.reshape(-1, J.shape[-1]))
        refused = run("jacobian", "-W", W, "-x", x, "--wrt", wrt, "--max-memory", str(row - 1), *extra)
        assert refused.exit_code == 2 and refused.stdout == ""
        assert (
            "streamed as csv would take" in refused.stderr
            and "That is one row at a time; instead write it to a file as it is, -o J.npy" in refused.stderr
        )
    assert run("jacobian", "-W", W, "-x", x, "--max-memory", str(row), "-f", "json").exit_code == 2


def test_memory_budget_from_the_environment_and_bad_sizes():
    result = CliRunner().invoke(
        app, ["jacobian", *LAYER, "-f", "json"], env={**ENV, "SMJAC_MAX_MEMORY": "64"}
    )
    assert result.exit_code == 2 and "memory budget of 64 bytes" in result.stderr
    result = run("jacobian", *LAYER, "--max-memory", "lots")
    assert result.exit_code == 2 and "'lots' is not a size" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4G", 4 * 2**30), ("512MiB", 512 * 2**20), ("1.5g", 3 * 2**29), ("1000", 1000), ("2 KB", 2048)],
)
def test_sizes(text, expected):
    assert budget.parse_size(text) == expected


def test_default_budget_is_half_the_available_memory():
    available = budget.available_memory()
    assert available is not None and available > 0  # this machine tells
    assert abs(budget.default_memory_budget() - available // 2) < available // 10  # memory moves a little


# ---------------------------------------------------------------- factors and entries on the command line


def test_cli_factored():
    doc = json.loads(run("jacobian", *LAYER, "--format", "factored").stdout)
    assert doc["formula"] == "J[t, i*n + j] = A[t, i] * x[j]" and doc["shape"] == [5, 15]
    A, x = np.array(doc["A"]), np.array(doc["x"])
    assert_array_equal(A, smjac.softmax_jacobian(smjac.forward(BLOG_W, BLOG_X).h))
    assert_array_equal(x, BLOG_X)
    assert run("jacobian", *LAYER, "--format", "factored", "--wrt", "x").exit_code == 2
    assert run("forward", *LAYER, "--format", "factored").exit_code == 2


def test_cli_factored_to_a_file(tmp_path):
    out = tmp_path / "factors.npz"
    assert run("jacobian", *LAYER, "--format", "factored", "-o", str(out)).exit_code == 0
    with np.load(out) as data:
        assert sorted(data.files) == ["A", "x"]


def test_cli_entry():
    J = smjac.jacobian(BLOG_W, BLOG_X)
    assert run("jacobian", *LAYER, "--entry", "1,1,2").stdout == f"{float(J[1, 1 * 3 + 2])!r}\n"
    table = run("jacobian", *LAYER, "--entry", "1,1,2", "-f", "table").stdout
    assert table == f"∂h₁/∂w[1,2] = {float(J[1, 5])!r}\n"
    doc = json.loads(run("jacobian", *LAYER, "--entry", "4,0", "--wrt", "x", "-f", "json").stdout)
    assert doc == {"entry": [4, 0], "value": smjac.jacobian(BLOG_W, BLOG_X, wrt="x")[4, 0]}
    for bad, message in [
        ("1,1", "takes T,I,J"),
        ("1,x,2", "give indices from 0"),
        ("1,9,2", "i = 9 is out of range"),
    ]:
        result = run("jacobian", *LAYER, "--entry", bad)
        assert result.exit_code == 2 and message in result.stderr


def test_cli_entry_of_a_batch_names_its_sample_and_is_the_whole_s_float(tmp_path, rng):
    W, X = rng.normal(size=(30, 20)) * 3, rng.normal(size=(40, 30))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "X.npy", X)
    files = ["-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "X.npy")]
    whole = json.loads(run("jacobian", *files, "-f", "json").stdout)["jacobian"]
    for sample in (None, "0", "17"):
        picked = [] if sample is None else ["--sample", sample]
        result = run("jacobian", *files, "--entry", "3,4,5", "-f", "json", *picked)
        s = int(sample or 0)
        assert json.loads(result.stdout) == {
            "entry": [3, 4, 5],
            "sample": s,
            "value": whole[s][3][4 * 30 + 5],
        }
        how = "; --sample I picks another\n" if s == 0 else "\n"  # the default says how to pick another
        assert f"the entry of sample {s} of 40{how}" in result.stderr
    for digits in ("3,4,1_0", "3,٤,5", "3,4,5,"):
        result = run("jacobian", *files, "--entry", digits)
        assert result.exit_code == 2 and "give indices from 0, such as 1,2,3 (ASCII digits)" in result.stderr


# ---------------------------------------------------------------- progress


def test_progress_draws_on_stderr_only_at_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(Progress, "DELAY", 0.0)
    bar = Progress(100, "dh/dW", stream=sys.stderr, enabled=True)
    bar(50)
    bar(50)
    bar.close()
    out, err = capsys.readouterr()
    assert out == "" and "dh/dW" in err
    silent = Progress(100, "dh/dW", stream=sys.stderr, enabled=False)  # --quiet, or not a terminal
    silent(100)
    silent.close()
    assert capsys.readouterr() == ("", "")


def test_no_progress_for_quick_work(capsys, monkeypatch):
    bar = Progress(
        100, "dh/dW", stream=sys.stderr, enabled=True
    )  # the default delay of a second has not passed
    bar(100)
    bar.close()
    assert capsys.readouterr() == ("", "")


def test_the_benchmark_script_runs(tmp_path):
    # Not a timing test: it checks the script still runs end to end and reports what it measured.
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/bench.py"), "--quick", "--sections", "streaming,gradient"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 64 × 4096 float64 |" in proc.stdout and "| yes |" in proc.stdout
    assert "| 256 × 2000 |" in proc.stdout
