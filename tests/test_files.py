"""Loading and writing: strict parsing, exact round trips, atomic and careful writes."""

from __future__ import annotations

import io as pyio
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_array_equal

from smjac import LoadError, OutputError, ShapeError, inputs
from smjac.formats import document, npy, table
from smjac.formats import text as text_format
from smjac.outputs import atomic

from .conftest import BLOG_W, BLOG_X, write_matrix


@pytest.mark.parametrize("fmt", ["json", "csv", "npy"])
def test_each_format_loads_the_same_numbers(tmp_path, fmt):
    W = write_matrix(tmp_path / f"W.{fmt}", BLOG_W)
    x = write_matrix(tmp_path / f"x.{fmt}", BLOG_X)
    L = inputs.load_layer(W, x)
    assert_array_equal(L.W, BLOG_W)
    assert_array_equal(L.X, BLOG_X[None, :])  # one sample, however the file writes the vector
    assert L.b is None and L.W.dtype == np.float64 and not L.batched


def test_csv_vector_as_one_column(tmp_path):
    (tmp_path / "x.csv").write_text("0.1\n0.5\n0.4\n")
    assert_array_equal(inputs.load_array(tmp_path / "x.csv"), BLOG_X[:, None])


def test_integers_load_as_floats(tmp_path):
    (tmp_path / "W.json").write_text("[[1, 2], [3, 4]]")
    a = inputs.load_array(tmp_path / "W.json")
    assert a.dtype == np.float64 and a.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_utf8_bom_is_accepted(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"\xef\xbb\xbf0.1,0.5,0.4\n")
    (tmp_path / "x.json").write_bytes(b"\xef\xbb\xbf[0.1, 0.5, 0.4]")
    assert_array_equal(inputs.load_array(tmp_path / "x.csv"), BLOG_X[None, :])
    assert_array_equal(inputs.load_array(tmp_path / "x.json"), BLOG_X)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("W.json", b"[[1, 2], [3]]", "row 2 has 1 values but row 1 has 2"),
        ("W.json", b"[[1, true]]", "found a boolean"),
        ("W.json", b"[[1, null]]", "found null"),
        ("W.json", b'[[1, "1.5"]]', "found a string"),
        ("W.json", b'{"W": [1]}', "found an object"),
        ("W.json", b"[1, NaN]", "NaN is not allowed"),
        ("W.json", b"[1, Infinity]", "Infinity is not allowed"),
        ("W.json", b"[1, 1e400]", "1e400 overflows"),
        ("W.json", b"[1, 2", "is not valid JSON"),
        ("W.json", b"[]", "holds no numbers"),
        ("W.json", b"", "is empty"),
        ("W.csv", b"a,b\n1,2\n", "line 1 looks like a header"),
        ("W.csv", b"1,2\n3\n", "line 2 has 1 values but the first row has 2"),
        ("W.csv", b"1,x\n", "line 1, column 2: 'x' is not a number"),
        ("W.csv", b"1,nan\n", "'nan' is not a finite number"),
        ("W.csv", b"1,1e999\n", "1e999 overflows"),
        ("W.csv", b"\xff\xfe1,2\n", "is not UTF-8"),
        ("W.npy", b"\x93NUMPY\x01\x00garbage", "is not a valid NPY file|truncated"),
        ("W.npy", b"not an npy file at all", "not an NPY file"),
        ("W.txt", b"1,2\n", "suffix '.txt'; smjac knows .csv, .json, .npy, .npz"),
    ],
)
def test_bad_input_is_refused_with_a_reason(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match=message) as info:
        inputs.load_array(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([1 + 2j, 3j]), "dtype complex128"),
        (np.array([True, False]), "dtype bool"),
        (np.zeros(2, dtype=[("a", "f8"), ("b", "f8")]), "dtype"),
        (np.array([1.0, np.inf]), "NaN or infinite"),
    ],
)
def test_npy_of_the_wrong_kind(tmp_path, array, message):
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(LoadError, match=message):
        inputs.load_array(tmp_path / "a.npy")


def test_a_pickled_npy_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.save(tmp_path / "evil.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    with pytest.raises(LoadError, match="never unpickles"):
        inputs.load_array(tmp_path / "evil.npy")
    assert not marker.exists()


def test_files_that_are_not_there(tmp_path):
    with pytest.raises(LoadError, match="no such file"):
        inputs.load_array(tmp_path / "missing.json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(LoadError, match="is a directory"):
        inputs.load_array(tmp_path / "dir.json")


def test_size_cap_refuses_before_reading(tmp_path):
    write_matrix(tmp_path / "W.json", BLOG_W)
    with pytest.raises(LoadError, match=r"input size cap of 10 bytes.*raise the cap with max_bytes$"):
        inputs.load_array(tmp_path / "W.json", max_bytes=10)


class FakeStdin(pyio.BytesIO):
    def __init__(self, data: bytes, tty: bool = False):
        super().__init__(data)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("fmt", ["json", "csv", "npy"])
def test_stdin_is_sniffed(tmp_path, fmt):
    data = write_matrix(tmp_path / f"W.{fmt}", BLOG_W).read_bytes()
    assert_array_equal(inputs.load_array("-", stdin=FakeStdin(data)), BLOG_W)


def test_no_suffix_is_sniffed_like_stdin(tmp_path):
    (tmp_path / "upstream").write_text("[1, 2]")
    assert_array_equal(inputs.load_array(tmp_path / "upstream"), [1.0, 2.0])


def test_stdin_problems():
    with pytest.raises(LoadError, match="stdin is a terminal"):
        inputs.load_array("-", stdin=FakeStdin(b"[1]", tty=True))
    with pytest.raises(LoadError, match="stdin: is empty"):
        inputs.load_array("-", stdin=FakeStdin(b""))
    with pytest.raises(LoadError, match="- given twice"):
        inputs.load_layer("-", "-", stdin=FakeStdin(b"[1]"))


def test_layer_shape_errors_name_the_files(tmp_path):
    W = write_matrix(tmp_path / "W.json", BLOG_W)
    x = write_matrix(tmp_path / "x.csv", np.ones(4))
    with pytest.raises(ShapeError, match=rf"{W} has shape \(3, 5\) but {x} has 4 entries"):
        inputs.load_layer(W, x)


# ---------------------------------------------------------------- writing

reals = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4)), elements=reals))
def test_json_and_csv_round_trip_every_float_exactly(M):
    doc = document.Document({"jacobian": M}, matrix="jacobian")
    from_json = np.array(json.loads(text_format.to_json(doc))["jacobian"])
    from_csv = inputs.parse(text_format.to_csv(doc).encode(), table.Format.csv, "out.csv")
    from_npy = inputs.parse(npy.to_npy(doc), table.Format.npy, "out.npy")
    for back in (from_json, from_csv, from_npy):
        assert_array_equal(back, M)
        assert back.tobytes() == M.tobytes() or not M.any()  # ±0 compare equal; bits otherwise


def test_csv_of_columns_and_records():
    z, h = np.array([0.5, 1.0]), np.array([0.25, 0.75])
    doc = document.Document({"z": z, "h": h}, columns={"z": z, "h": h})
    assert text_format.to_csv(doc) == "z,h\n0.5,0.25\n1.0,0.75\n"
    rec = document.Document({}, records=[{"name": "a", "err": 1e-17, "ok": True}])
    assert text_format.to_csv(rec) == "name,err,ok\na,1e-17,true\n"


def test_save_by_suffix_and_npz(tmp_path):
    z, h = np.array([1.0, 2.0]), np.array([0.25, 0.75])
    doc = document.Document({"z": z, "h": h}, columns={"z": z, "h": h})
    assert atomic.save(doc, tmp_path / "f.npz") is table.Format.npz
    with np.load(tmp_path / "f.npz") as data:
        assert sorted(data.files) == ["h", "z"]
        assert_array_equal(data["h"], [0.25, 0.75])
    with pytest.raises(OutputError, match=r"cannot be \.npy"):
        atomic.save(doc, tmp_path / "f.npy")
    with pytest.raises(OutputError, match=r"suffix '\.xlsx'"):
        atomic.save(doc, tmp_path / "f.xlsx")


def test_write_refuses_to_clobber_unless_forced(tmp_path):
    target = tmp_path / "J.json"
    target.write_text("precious")
    with pytest.raises(OutputError, match="exists; add --force"):
        atomic.write_atomic(target, b"new")
    assert target.read_text() == "precious"
    atomic.write_atomic(target, b"new", force=True)
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["J.json"]


def test_write_into_a_missing_folder(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        atomic.write_atomic(tmp_path / "nope" / "J.json", b"x")


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="No space left"):
        atomic.write_atomic(tmp_path / "J.npy", b"x" * 1000)
    assert os.listdir(tmp_path) == []


def test_an_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(tmp_path / "J.npy", b"x")
    assert os.listdir(tmp_path) == []


def test_written_files_get_the_usual_mode(tmp_path):
    atomic.write_atomic(tmp_path / "J.csv", b"1\n")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "J.csv").stat().st_mode & 0o777 == 0o666 & ~mask


# ---------------------------------------------------------------- signals while writing


@pytest.fixture
def stop_handler(monkeypatch):
    """smjac's own handler of SIGTERM, as the console entry point installs it."""
    import signal

    from smjac.outputs import streams

    monkeypatch.setattr(streams, "_stopped_at", None)
    old = signal.signal(signal.SIGTERM, streams._raise)
    yield streams
    signal.signal(signal.SIGTERM, old)


def _signal_self() -> None:
    import signal
    import time

    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)  # the handler runs at the next instruction: long before this ends


def test_a_stop_signal_while_writing_removes_the_temporary_file(tmp_path, stop_handler):
    def write(f):
        f.write(b"half")
        _signal_self()

    with pytest.raises(stop_handler.Interrupted):
        atomic.write_atomic(tmp_path / "J.npy", write)
    assert os.listdir(tmp_path) == [] and stop_handler.temporaries == set()


def test_a_stop_signal_as_the_temporary_file_is_made_acts_once_it_is_known(
    tmp_path, stop_handler, monkeypatch
):
    made = atomic._create

    def create_then_signal(*args):
        fd, name = made(*args)
        _signal_self()  # held: acts once the name is recorded, and removes the file
        return fd, name

    monkeypatch.setattr(atomic, "_create", create_then_signal)
    with pytest.raises(stop_handler.Interrupted):
        atomic.write_atomic(tmp_path / "J.npy", b"data")
    assert os.listdir(tmp_path) == [] and stop_handler.temporaries == set()


def test_a_second_stop_signal_during_the_clean_up_does_not_break_it_off(tmp_path, stop_handler, monkeypatch):
    def write(f):
        _signal_self()

    removed = atomic._remove

    def signalled_again(name):
        _signal_self()  # a burst: within the grace time, let be
        removed(name)

    monkeypatch.setattr(atomic, "_remove", signalled_again)
    with pytest.raises(stop_handler.Interrupted):
        atomic.write_atomic(tmp_path / "J.npy", write)
    assert os.listdir(tmp_path) == []


def test_writes_need_no_sighup(tmp_path, monkeypatch):
    import signal

    monkeypatch.delattr(signal, "SIGHUP", raising=False)  # as on Windows
    atomic.write_atomic(tmp_path / "J.csv", b"1\n")
    assert (tmp_path / "J.csv").read_bytes() == b"1\n"


# ---------------------------------------------------------------- what "wrote FILE" says


@pytest.mark.parametrize(
    "args, name",
    [
        (["jacobian"], "J.npy"),  # streamed in blocks
        (["jacobian"], "J.csv"),  # streamed as text: its size is the text's, not the array's
        (["jacobian"], "J.json"),
        (["grad", "--target", "1"], "g.npz"),
        (["forward"], "h.md"),
        (["jacobian"], "J.svg"),
    ],
)
def test_wrote_says_the_size_the_file_has(tmp_path, args, name):
    from typer.testing import CliRunner

    from smjac.budget import format_size
    from smjac.cli import app

    from .conftest import ROOT

    blog = ROOT / "samples/blog"
    out = tmp_path / name
    result = CliRunner().invoke(
        app, [*args, "-W", str(blog / "W.json"), "-x", str(blog / "x.json"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    size = format_size(out.stat().st_size)
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"wrote {out} (") and first.endswith(f"{size})"), first
    if name == "J.npy":
        assert first == f"wrote {out} (5 × 15 float64, {5 * 15 * 8 + 128} bytes)"  # the header counts too
