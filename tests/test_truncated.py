"""A large .npy cut short while smjac reads it (a training loop re-saving it), and .npy read whole:
a short read refused naming the file, never SIGBUS; sizes refused from the header, before the body
is read; the numbers read once, into one array.

The races are made deterministic: the file is truncated between opening it and reading a block.
"""

from __future__ import annotations

import io
import json
import mmap
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from typer.testing import CliRunner

import smjac
from smjac import LoadError, inputs
from smjac.checking.verification import BLOCK_ARRAYS, layer_verify
from smjac.cli import app
from smjac.formats.npy import NpyFile

HEADER = 128  # what np.save writes before the numbers of a small array


def _saved(path, a):
    np.save(path, a)
    assert os.path.getsize(path) == HEADER + a.nbytes  # the layout the truncations below count on
    return path


# ---------------------------------------------------------------- reading blocks of rows


def _mapped(a) -> bool:
    """Whether ``a`` is a view of a memory map, at any depth."""
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


@pytest.mark.parametrize(
    "a",
    [
        np.arange(24.0).reshape(6, 4),
        np.asfortranarray(np.arange(24.0).reshape(6, 4)),
        np.arange(24, dtype=np.float32).reshape(6, 4),
        np.arange(24.0).reshape(6, 4).astype(">f8"),
        np.arange(48.0).reshape(6, 4, 2),
        np.asfortranarray(np.arange(48.0).reshape(6, 4, 2)),
        np.arange(6, dtype=np.int16),
    ],
    ids=["C", "F", "f32", "big-endian", "3-d", "3-d F", "vector"],
)
def test_rows_are_the_rows_numpy_loads(tmp_path, a):
    np.save(tmp_path / "a.npy", a)
    f = NpyFile(tmp_path / "a.npy")
    whole = np.load(tmp_path / "a.npy")
    assert (f.shape, f.dtype, len(f), f.ndim) == (a.shape, a.dtype, 6, a.ndim)
    for r0, r1 in [(0, 6), (0, 1), (2, 5), (5, 6), (4, 9), (6, 6)]:
        block = f.rows(r0, r1)
        assert block.dtype == a.dtype and not _mapped(block)
        assert_array_equal(block, whole[r0:r1])
    assert_array_equal(f[1:3], whole[1:3])
    assert_array_equal(np.asarray(f), whole)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape", [(6, 20), (2, 6, 10)])
def test_rows_of_another_width_are_those_of_reshape(tmp_path, order, shape):
    # an answer is compared in arrangements other than its own shape: rows of reshape(-1, width)
    a = np.arange(120.0).reshape(shape, order=order)
    np.save(tmp_path / "a.npy", a)
    f, whole = NpyFile(tmp_path / "a.npy"), np.load(tmp_path / "a.npy")
    for width in (4, 12, 20, 30, 120):
        flat = whole.reshape(-1, width)
        for r0, r1 in [(0, 1), (1, 3), (0, len(flat)), (len(flat) - 1, len(flat) + 5)]:
            assert_array_equal(f.rows(r0, r1, width), flat[r0:r1])
    with pytest.raises(ValueError, match="120 numbers are not rows of 7"):
        f.rows(0, 1, 7)


def test_a_block_is_its_own_memory_so_truncation_after_reading_it_cannot_kill(tmp_path):
    # The race of issue 19 made deterministic: a block is read, then the file is cut short, then the
    # block is used. Rows that were a view of a memory map would be read at that use, past the new
    # end of the file: SIGBUS (exit 135). Run in a child, so that a bus error is seen, not suffered.
    X = np.arange(20000.0).reshape(2000, 10)
    path = _saved(tmp_path / "X.npy", X)
    script = textwrap.dedent(
        """
        import os, sys
        import numpy as np
        from smjac import inputs
        from smjac.maths.forward_pass import read_rows
        x = inputs.map_npy(sys.argv[1])
        block = read_rows(x, 1000, 2000)
        os.truncate(sys.argv[1], 128)
        print(float(block.sum()))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, (run.returncode, run.stderr)
    assert float(run.stdout) == X[1000:].sum()


def test_a_block_past_the_new_end_is_a_load_error_naming_the_file(tmp_path):
    X = np.arange(400.0).reshape(100, 4)
    path = _saved(tmp_path / "X.npy", X)
    f = NpyFile(path)
    assert_array_equal(f.rows(0, 10), X[:10])
    os.truncate(path, HEADER + 50 * 4 * 8)  # 50 rows left
    assert_array_equal(f.rows(40, 50), X[40:50])  # what is still there reads as before
    with pytest.raises(
        LoadError,
        match=r"X\.npy: was cut short while smjac read it: rows 40:60 need 2,048 bytes, the file now holds 1,728",
    ):
        f.rows(40, 60)
    fortran = _saved(tmp_path / "F.npy", np.asfortranarray(X))
    g = NpyFile(fortran)
    os.truncate(fortran, HEADER + 3 * 100 * 8)  # the last column gone
    with pytest.raises(LoadError, match=r"F\.npy: was cut short"):
        g.rows(0, 1)


def _cut_before_block(monkeypatch, path, k, keep):
    """Truncate ``path`` to ``keep`` bytes just before the k-th block of rows is read."""
    real, calls = NpyFile.rows, []

    def rows(self, r0, r1):
        calls.append((r0, r1))
        if len(calls) == k:
            os.truncate(path, keep)
        return real(self, r0, r1)

    monkeypatch.setattr(NpyFile, "rows", rows)
    return calls


@pytest.mark.parametrize("walk", ["forward", "grad"])
def test_a_walk_cut_short_between_blocks_is_refused(tmp_path, rng, monkeypatch, walk):
    W, X = rng.normal(size=(4, 3)), rng.normal(size=(400, 4))
    path = _saved(tmp_path / "X.npy", X)
    x = inputs.map_npy(path)
    calls = _cut_before_block(monkeypatch, path, 3, HEADER + 100 * 4 * 8)  # 100 rows left
    with pytest.raises(LoadError, match=r"X\.npy: was cut short while smjac read it: rows 64:128"):
        if walk == "forward":
            list(smjac.forward_chunks(W, x, chunk_bytes=64 * (4 + 18) * 8))
        else:
            smjac.grad_chunks(W, x, target=0, chunk_bytes=64 * (4 + 18) * 8)
    assert calls == [
        (0, 1),
        (0, 64),
        (64, 128),
    ]  # the first row, checked first; the cut before the third read


@pytest.mark.parametrize("command", ["forward", "grad"])
def test_the_command_line_exits_2_naming_the_file(tmp_path, rng, monkeypatch, command):
    np.save(tmp_path / "W.npy", rng.normal(size=(50, 20)))
    path = _saved(tmp_path / "X.npy", rng.normal(size=(20000, 50)))
    _cut_before_block(monkeypatch, path, 2, HEADER + 10 * 50 * 8)
    args = [
        "--max-input-bytes",
        "100000",
        command,
        "-W",
        str(tmp_path / "W.npy"),
        "-x",
        str(path),
        "-f",
        "csv",
    ]
    result = CliRunner().invoke(app, args + (["--target", "1"] if command == "grad" else []))
    assert result.exit_code == 2, result.output
    assert "X.npy: was cut short while smjac read it" in result.stderr


# ---------------------------------------------------------------- a .npy read whole


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


class Counted(io.BytesIO):
    """A stream that counts the bytes read from it."""

    def isatty(self):
        return False


def test_stdin_is_refused_by_its_header_before_its_body_is_read():
    data = _npy(np.zeros((1000, 100)))  # 800,000 bytes of numbers
    stream = Counted(data)
    with pytest.raises(
        LoadError,
        match=r"stdin: its header says shape \(1000, 100\) of float64: 781\.2 KiB, over the memory budget of 100\.0 KiB",
    ):
        inputs.load_array("-", stdin=stream, max_memory=100 * 1024)
    assert stream.tell() <= HEADER  # the header, nothing of the numbers
    stream = Counted(data)
    with pytest.raises(
        LoadError, match=r"stdin: is over the input size cap of 100,000 bytes \(800,000 bytes or more\)"
    ):
        inputs.load_array("-", stdin=stream, max_bytes=100_000)
    assert stream.tell() <= HEADER
    # float32 widens to float64: both count
    with pytest.raises(
        LoadError, match=r"of float32: 390\.6 KiB, 781\.2 KiB more as float64, over the memory budget"
    ):
        inputs.load_array("-", stdin=Counted(_npy(np.zeros((1000, 100), np.float32))), max_memory=10**6)
    # a header that claims more than follows is refused by what it claims, not allocated
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    with pytest.raises(LoadError, match="over the input size cap"):
        inputs.load_array("-", stdin=Counted(head.getvalue() + bytes(32)))


def test_verify_refuses_an_answer_on_stdin_over_the_budget(tmp_path, rng):
    np.save(tmp_path / "W.npy", rng.normal(size=(30, 40)))
    np.save(tmp_path / "x.npy", rng.normal(size=30))
    answer = _npy(np.zeros((40, 1200)))  # 384,000 bytes
    result = CliRunner().invoke(
        app,
        [
            *("verify", "-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "--jacobian", "-"),
            *("--max-memory", "300K", "-f", "json"),
        ],
        input=answer,
    )
    assert result.exit_code == 2, result.output
    assert "stdin: its header says shape (40, 1200) of float64" in result.stderr
    assert "over the memory budget of 300.0 KiB (--max-memory)" in result.stderr


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_an_npy_is_read_into_one_array_not_copied(tmp_path, rng, source):
    a = rng.normal(size=(500, 1000))  # 4 MB
    path = tmp_path / "a.npy"
    np.save(path, a)
    stream = Counted(path.read_bytes()) if source == "stdin" else None
    tracemalloc.start()
    try:
        got = inputs.load_array("-" if stream else path, stdin=stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_array_equal(got, a)
    assert peak < 1.1 * a.nbytes  # the bytes and a float64 copy of them were twice that


def test_a_float32_npy_takes_its_bytes_and_its_float64_only(tmp_path, rng):
    a = rng.normal(size=(500, 1000)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    tracemalloc.start()
    try:
        got = inputs.load_array(tmp_path / "a.npy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.dtype == np.float64
    assert_array_equal(got, a.astype(np.float64))
    assert peak < 1.1 * (a.nbytes + got.nbytes)


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_an_npy_shorter_or_longer_than_its_header_is_refused(tmp_path, source):
    data = _npy(np.ones((4, 3)))
    for cut, what in [(data[:-8], "is truncated"), (data + b"\0" * 8, "has bytes after its data")]:
        (tmp_path / "a.npy").write_bytes(cut)
        with pytest.raises(LoadError, match=what):
            if source == "file":
                inputs.load_array(tmp_path / "a.npy")
            else:
                inputs.load_array("-", stdin=Counted(cut))


def test_a_mapped_x_is_read_in_the_dtype_asked_for(tmp_path):
    # --dtype float32 with an x over the input cap: the blocks are cast as they are read, so the
    # layer is worked in float32 as it is for an x read whole (it was promoted to float64).
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 6))
    np.save(tmp_path / "x.npy", X)
    W = rng.normal(size=(6, 4)).astype(np.float32)
    x = inputs.map_npy(tmp_path / "x.npy", dtype="float32")
    assert x.rows(0, 5).dtype == np.float32
    assert_array_equal(x.rows(3, 9), X[3:9].astype(np.float32))
    h = np.concatenate([f.h for _, f in smjac.forward_chunks(W, x, chunk_bytes=96)])
    assert h.dtype == np.float32
    assert_array_equal(h, smjac.forward(W, X.astype(np.float32)).h)


def test_verify_reads_a_large_answer_block_by_block_and_refuses_one_cut_short(tmp_path, rng, monkeypatch):
    # dh/dW of one sample, 40 × 1200, compared a few rows at a time: cut short before the second
    # block is read, the answer is refused naming the file (it was a mapped page: SIGBUS).
    W, x = rng.normal(size=(30, 40)), rng.normal(size=30)
    truth = smjac.jacobian(W, x)
    assert smjac.verify(W, x, jacobian=truth).ok
    path = _saved(tmp_path / "J.npy", truth)
    answer = inputs.load_answer(path)
    assert isinstance(answer, NpyFile)
    real, calls = NpyFile.rows, []

    def rows(self, r0, r1, width=None):
        calls.append((r0, r1))
        if len(calls) == 2:
            os.truncate(path, HEADER + 8 * 1200)  # one row left
        return real(self, r0, r1, width)

    monkeypatch.setattr(NpyFile, "rows", rows)
    L = smjac.maths.make_layer(W, x)
    with pytest.raises(LoadError, match=r"J\.npy: was cut short while smjac read it"):
        layer_verify(L, jacobian=answer, max_memory=BLOCK_ARRAYS * 4 * 1200 * 8 + (1 << 20))
    assert len(calls) >= 2  # read in blocks, not whole


def test_dtype_float32_holds_for_an_x_over_the_input_cap(tmp_path, rng):
    # A guard: the x read block by block is cast as --dtype asks (map_npy's dtype, tested above), and
    # the gradient agrees with the one of an x read whole, in the same dtype.
    (tmp_path / "W.json").write_text(json.dumps(rng.normal(size=(6, 4)).tolist()))  # 300-odd bytes
    X = rng.normal(size=(300, 6))
    np.save(tmp_path / "X.npy", X)  # 14 KB
    for cap, out in (("1000", "mapped.npy"), ("1G", "whole.npy")):
        args = [
            "--max-input-bytes",
            cap,
            "grad",
            "-W",
            str(tmp_path / "W.json"),
            "-x",
            str(tmp_path / "X.npy"),
        ]
        args += ["--target", "1", "--dtype", "float32", "-o", str(tmp_path / out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.stderr
    mapped, whole = np.load(tmp_path / "mapped.npy"), np.load(tmp_path / "whole.npy")
    assert mapped.dtype == whole.dtype == np.float32
    np.testing.assert_allclose(mapped, whole, rtol=1e-5, atol=1e-6)  # chunk sums may round apart
