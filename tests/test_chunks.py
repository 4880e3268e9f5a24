"""Batches larger than memory: a memory-mapped x, walked in row chunks (smjac.inputs.map_npy,
forward_chunks, grad_chunks). The numbers are those of forward and grad on the whole batch."""

from __future__ import annotations

import os

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import smjac
from smjac import inputs
from smjac.errors import LoadError
from smjac.formats.npy import NpyFile

from .conftest import central_diff


@pytest.fixture
def mapped(tmp_path, rng):
    W = rng.normal(size=(6, 5)) / 2
    X = rng.normal(size=(23, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    return W.astype(np.float32), X, inputs.map_npy(tmp_path / "x.npy")


def test_map_npy_reads_the_same_numbers_block_by_block(mapped):
    _, X, x = mapped
    assert isinstance(x, NpyFile)  # read with positional reads: no mapped page to fault on
    assert x.dtype == np.float32
    assert_array_equal(x.rows(0, len(X)), X)
    assert_array_equal(x.rows(5, 9), X[5:9])


@pytest.mark.parametrize("function", ["softmax", "log-softmax"])
def test_forward_chunks_match_forward(mapped, function):
    W, X, x = mapped
    whole = smjac.forward(W, X, function=function, temperature=0.8)
    seen = 0
    for r0, f in smjac.forward_chunks(W, x, function=function, temperature=0.8, chunk_bytes=5 * 24):
        assert r0 == seen and f.h.dtype == np.float32
        assert_array_equal(f.h, whole.h[r0 : r0 + len(f.h)])  # rows are computed alike: same bits
        assert_array_equal(f.z, whole.z[r0 : r0 + len(f.z)])
        seen += len(f.h)
    assert seen == len(X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_chunks_give_the_whole_batchs_floats_at_any_chunk_that_holds_a_span(tmp_path, rng, dtype):
    # A product's last bits depend on the rows one BLAS call is given (OpenBLAS here: from 7 to 500
    # rows at a time, a third of the logits of a 20000 x 128 x 300 batch differed from one call's).
    # Chunks were cut by the budget alone, so a mapped forward pass gave other floats at another
    # --max-memory; now they are whole spans of the pass in memory.
    N, n, K = 20_000, 128, 300
    W = rng.normal(size=(n, K)).astype(dtype)
    X = rng.normal(size=(N, n)).astype(dtype)
    np.save(tmp_path / "x.npy", X)
    x = inputs.map_npy(tmp_path / "x.npy")
    whole = smjac.forward(W, X)
    span = smjac.maths.forward_pass.sweep_spans(N, n, K, X.itemsize)[0]
    least = (span[1] - span[0]) * (n + smjac.maths.LOGIT_COPIES * K) * X.itemsize  # a chunk of one span
    for chunk_bytes in (least, 3 * least + 1, 10**9):
        parts = list(smjac.forward_chunks(W, x, chunk_bytes=chunk_bytes))
        assert len(parts) > 1 or chunk_bytes == 10**9
        assert_array_equal(np.concatenate([f.z for _, f in parts]), whole.z)
        assert_array_equal(np.concatenate([f.h for _, f in parts]), whole.h)
    # below a span, chunks are cut to fit: their logits agree to rounding (a few units of the
    # last place of a sum of n = 128 terms)
    small = np.concatenate([f.z for _, f in smjac.forward_chunks(W, x, chunk_bytes=least // 3)])
    assert_allclose(small, whole.z, rtol=0, atol=n * np.finfo(dtype).eps * np.abs(whole.z).max())


def test_span_chunks_cover_the_rows_once_in_order_and_keep_every_span_whole():
    from smjac.maths.forward_pass import span_chunks, sweep_spans

    for N, n, K, rows in [
        (20_000, 128, 300, 5000),
        (20_000, 128, 300, 100),
        (1000, 512, 1000, 600),
        (50, 2, 2, 7),
    ]:
        chunks = span_chunks(N, n, K, 8, rows)
        assert (
            [c[0] for c in chunks[1:]] == [c[1] for c in chunks[:-1]]
            and chunks[0][0] == 0
            and chunks[-1][1] == N
        )
        assert all(b - a <= rows for a, b, _ in chunks)
        spans = set(sweep_spans(N, n, K, 8))
        for a, b, inside in chunks:
            if inside is not None:
                assert {(a + s0, a + s1) for s0, s1 in inside} <= spans and inside[-1][1] == b - a


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("layout", ["in-out", "out-in"])
def test_grad_chunks_match_grad_and_finite_differences(mapped, rng, reduce, layout):
    W, X, x = mapped
    M = W if layout == "in-out" else np.ascontiguousarray(W.T)
    t = rng.integers(0, 5, len(X))
    whole = smjac.grad(M, X, target=t, reduce=reduce, layout=layout)
    part = smjac.grad_chunks(M, x, target=t, reduce=reduce, layout=layout, chunk_bytes=4 * 24)
    assert part.W.dtype == np.float32 and part.z is None
    assert_allclose(part.W, whole.W, rtol=2e-6, atol=1e-6)
    assert_allclose(part.b, whole.b, rtol=2e-6, atol=1e-6)
    assert part.loss == pytest.approx(whole.loss, rel=1e-6)
    # and against central differences of the loss, in float64
    X64 = X.astype(np.float64)

    def loss(flat):
        Wf = flat.reshape(M.shape).astype(np.float64)
        Z = X64 @ (Wf if layout == "in-out" else Wf.T)
        Z = Z - Z.max(axis=1, keepdims=True)
        ls = np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(len(t)), t]
        return np.array([ls.sum() / (len(t) if reduce == "mean" else 1)])

    fd = central_diff(loss, M.astype(np.float64).ravel()).reshape(M.shape)
    assert_allclose(part.W, fd, rtol=1e-3, atol=1e-4)


def test_grad_chunks_with_upstream(mapped, rng):
    W, X, x = mapped
    g = rng.normal(size=(len(X), 5)).astype(np.float32)
    part = smjac.grad_chunks(W, x, upstream=g, chunk_bytes=7 * 24)
    assert_allclose(part.W, smjac.grad(W, X, upstream=g).W, rtol=2e-6, atol=1e-6)
    summed = smjac.grad_chunks(W, x, upstream=g, reduce="sum", chunk_bytes=7 * 24)
    assert_allclose(summed.W, part.W * len(X), rtol=1e-6)
    with pytest.raises(smjac.InputError, match="does not keep"):
        _ = part.x


def test_the_chunked_functions_take_any_array_like_x_as_the_others_do(rng, tmp_path, monkeypatch):
    # nested lists, as forward and grad take them (it was an AttributeError: no .ndim on a list)
    W, X, t = rng.normal(size=(3, 2)), rng.normal(size=(5, 3)), [0, 1, 1, 0, 1]
    chunks = dict(smjac.forward_chunks(W.tolist(), X.tolist(), chunk_bytes=64))
    assert_array_equal(np.concatenate([chunks[r].h for r in sorted(chunks)]), smjac.forward(W, X).h)
    g = smjac.grad_chunks(W.tolist(), X.tolist(), target=t, chunk_bytes=64)
    assert_allclose(g.W, smjac.grad(W, X, target=t).W, rtol=1e-12)
    with pytest.raises(smjac.ShapeError, match=r"x must be .*a batch \(N×n\).* shape \(1, 1, 3\)"):
        smjac.grad_chunks(W, [[[1.0, 2.0, 3.0]]], target=0)
    with pytest.raises(smjac.InputError, match="x has dtype <U32; smjac needs real numbers"):
        list(smjac.forward_chunks(W, [[1.0, 2.0, "a"]]))
    # a memory map is read as it is, a chunk at a time, not copied whole first
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    from smjac.maths import gradients

    read, walked = gradients.read_rows, []
    monkeypatch.setattr(gradients, "read_rows", lambda x, r0, r1: walked.append(x) or read(x, r0, r1))
    assert_allclose(smjac.grad_chunks(W, mm, target=t, chunk_bytes=64).W, g.W, rtol=1e-12)
    assert len(walked) > 1 and all(x is mm for x in walked)


def test_a_non_finite_row_is_refused_when_its_chunk_is_read(tmp_path, rng):
    X = rng.normal(size=(20, 3))
    X[17, 1] = np.nan
    np.save(tmp_path / "x.npy", X)
    x = inputs.map_npy(tmp_path / "x.npy")
    named = f"^{tmp_path / 'x.npy'}, row 17: holds NaN or infinite values; every number must be finite$"
    with pytest.raises(LoadError, match=named):
        smjac.grad_chunks(np.ones((3, 2)), x, target=0, chunk_bytes=48)
    chunks = smjac.forward_chunks(np.ones((3, 2)), x, chunk_bytes=48)
    assert next(chunks)[0] == 0
    with pytest.raises(LoadError, match=named):
        list(chunks)
    # a number finite in the file that float32 cannot hold is the cast's, and said so
    X[17, 1] = 1e39
    np.save(tmp_path / "x.npy", X)
    x = inputs.map_npy(tmp_path / "x.npy", dtype="float32")
    with pytest.raises(LoadError, match=r"x.npy, row 17: 1e\+39 overflows float32 when cast"):
        list(smjac.forward_chunks(np.ones((3, 2), np.float32), x, chunk_bytes=48))


def test_map_npy_checks_the_header_and_never_unpickles(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(smjac.LoadError, match="pickle"):
        inputs.map_npy(tmp_path / "obj.npy")
    np.save(tmp_path / "x.npy", np.ones((4, 3)))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[:-8])
    with pytest.raises(smjac.LoadError, match="truncated"):
        inputs.map_npy(tmp_path / "short.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an npy file")
    with pytest.raises(smjac.LoadError, match="not an NPY"):
        inputs.map_npy(tmp_path / "junk.npy")
    np.save(tmp_path / "v.npy", np.ones(3))
    with pytest.raises(smjac.LoadError, match="batch"):
        inputs.map_npy(tmp_path / "v.npy")
    with pytest.raises(smjac.LoadError, match="no such file"):
        inputs.map_npy(tmp_path / "missing.npy")


def test_many_outputs_make_smaller_chunks_and_the_budget_holds(tmp_path, rng):
    # n = 2, K = 5000: a chunk sized by x's rows alone held 418 MiB of logits at --max-memory 64M.
    # Each chunk's work (x's rows and six N×K logit arrays) now fits a quarter of the budget.
    from typer.testing import CliRunner

    from smjac.cli import app

    W, X = rng.normal(size=(2, 5000)), rng.normal(size=(30000, 2))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "X.npy", X)
    spans = smjac.maths.row_chunks(X, 2**20, outputs=5000)
    assert len(spans) > 1 and all((r1 - r0) * (2 + 6 * 5000) * 8 <= 2**20 for r0, r1 in spans)
    args = [
        "--max-input-bytes",
        "100000",
        "grad",
        "-W",
        str(tmp_path / "W.npy"),
        "-x",
        str(tmp_path / "X.npy"),
    ]
    result = CliRunner().invoke(
        app, [*args, "--target", "1", "--max-memory", "4M", "-o", str(tmp_path / "g.npy")]
    )
    assert result.exit_code == 0, result.stderr
    assert_allclose(np.load(tmp_path / "g.npy"), smjac.grad(W, X, target=1).W, rtol=1e-12, atol=1e-15)


def test_a_mapped_forward_writes_the_same_floats_at_any_budget_and_as_in_memory(tmp_path, rng):
    from typer.testing import CliRunner

    from smjac.cli import app

    # a shape whose products' bits differ with the rows of a call (see above): 4 spans of 1,500 rows
    W, X = rng.normal(size=(128, 300)), rng.normal(size=(6000, 128))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "X.npy", X)
    layer = ["forward", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "X.npy")]
    # in memory, then mapped: as .npz where the budget holds it whole, and as CSV streamed in chunks
    # of two spans
    for name, cap, budget in (
        ("memory.npz", "1G", "1G"),
        ("mapped.npz", "1M", "1G"),
        ("mapped.csv", "1M", "200M"),
    ):
        args = ["--max-input-bytes", cap, *layer, "--max-memory", budget, "-o", str(tmp_path / name)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.stderr
    whole, mapped = np.load(tmp_path / "memory.npz"), np.load(tmp_path / "mapped.npz")
    streamed = np.loadtxt(tmp_path / "mapped.csv", delimiter=",", skiprows=1)
    for key, column in (("z", 2), ("h", 3)):
        assert_array_equal(mapped[key], whole[key])
        assert_array_equal(streamed[:, column].reshape(6000, 300), whole[key])


@pytest.mark.parametrize("walk", ["forward", "grad"])
def test_a_mapped_x_cut_short_while_read_is_refused_not_a_bus_error(tmp_path, rng, walk):
    # A training loop re-saving x while smjac reads it: touching a page past the new end would be
    # SIGBUS (exit 135, no message). Each chunk's rows are checked against the file's size first.
    W, X = rng.normal(size=(4, 3)), rng.normal(size=(400, 4))
    path = tmp_path / "X.npy"
    np.save(path, X)
    x = inputs.map_npy(path)
    cut = lambda: os.truncate(path, 128 + 100 * 4 * 8)  # header and 100 rows left  # noqa: E731
    with pytest.raises(smjac.LoadError, match=r"X\.npy: was cut short while smjac read it"):
        if walk == "forward":
            for r0, _ in smjac.forward_chunks(W, x, chunk_bytes=64 * (4 + 18) * 8):
                if r0 == 0:
                    cut()
        else:
            first = [True]
            real = smjac.maths.forward_pass.release_rows

            def release_then_cut(x, r0, r1):
                real(x, r0, r1)
                if first[0]:
                    first[0] = False
                    cut()

            import smjac.maths.gradients as gradients

            gradients.release_rows = release_then_cut
            try:
                smjac.grad_chunks(W, x, target=0, chunk_bytes=64 * (4 + 18) * 8)
            finally:
                gradients.release_rows = real


def test_a_mapped_forward_streamed_as_csv_keeps_a_budget_below_one_row_by_refusing(tmp_path, rng):
    # at --max-memory 1 it wrote the CSV anyway, a row at a time, each row over the budget
    from typer.testing import CliRunner

    from smjac.cli import app

    W, X = rng.normal(size=(64, 10)), rng.normal(size=(5000, 64))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "X.npy", X)
    L = smjac.make_layer(W, X[:1])._replace(batched=True)
    row = smjac.maths.estimate_bytes(L, "forward", text="csv")  # one row's logits and text
    args = [
        "--max-input-bytes",
        "1M",
        "forward",
        "-W",
        str(tmp_path / "W.npy"),
        "-x",
        str(tmp_path / "X.npy"),
    ]
    out = tmp_path / "f.csv"
    refused = CliRunner().invoke(app, [*args, "--max-memory", str(row - 1), "-o", str(out)])
    assert refused.exit_code == 2 and not out.exists()
    assert "the forward pass streamed as csv would take" in refused.stderr
    assert refused.stderr.rstrip().endswith("That is one row at a time")
    kept = CliRunner().invoke(app, [*args, "--max-memory", str(row), "-o", str(out)])
    assert kept.exit_code == 0, kept.stderr
    # a row at a time, under a span of the pass in memory: the same numbers to rounding
    h = np.loadtxt(out, delimiter=",", skiprows=1)[:, 3].reshape(5000, 10)
    assert_allclose(h, smjac.forward(W, X).h, rtol=1e-12, atol=0)


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_copy_on_write_map_keeps_the_callers_changes(tmp_path, rng, order):
    # the walk hands mapped pages back to the kernel as it goes; a private (mode="c") map's pages
    # hold the caller's own changes, which that would undo: x*2 was read as x, and x put back
    path = tmp_path / "x.dat"
    X0, W, t = rng.standard_normal((20000, 8)), rng.standard_normal((8, 5)), rng.integers(0, 5, 20000)
    np.memmap(path, np.float64, "w+", shape=X0.shape, order=order)[:] = X0
    x = np.memmap(path, np.float64, mode="c", shape=X0.shape, order=order)
    x *= 2
    g = smjac.grad_chunks(W, x, target=t, chunk_bytes=100_000)
    h = np.concatenate([f.h for _, f in smjac.forward_chunks(W, x, chunk_bytes=100_000)])
    assert_array_equal(x, 2 * X0)
    assert_allclose(g.W, smjac.grad(W, 2 * X0, target=t).W, rtol=1e-12, atol=1e-15)
    assert_allclose(h, smjac.forward(W, 2 * X0).h, rtol=1e-12, atol=1e-300)


def test_an_upstream_of_another_batch_is_refused_as_grad_refuses_it(rng):
    W, X = rng.standard_normal((3, 4)), rng.standard_normal((7, 3))
    for upstream in (np.ones((9, 4)), np.ones((5, 4)), 1.0):  # the first 7 rows of 9 were taken
        with pytest.raises(smjac.ShapeError, match="upstream has shape"):
            smjac.grad_chunks(W, X, upstream=upstream, chunk_bytes=64)
