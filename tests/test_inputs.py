"""smjac.inputs: answers, upstreams, class weights and mapped x, each refused as what it is."""

from __future__ import annotations

import io
import json
import time
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from smjac import InputError, LoadError, ShapeError, inputs, make_layer

W32 = np.ones((3, 4), np.float32)
X32 = np.ones(3, np.float32)


# ---------------------------------------------------------------- an .npz given as an answer


def test_an_npz_answer_says_what_it_holds_and_how_to_give_one(tmp_path):
    g = np.arange(12.0).reshape(3, 4)
    np.savez(tmp_path / "g.npz", grad=g, bias=g[0])
    with pytest.raises(LoadError) as e:
        inputs.load_answer(tmp_path / "g.npz")
    msg = str(e.value)
    assert "layer" not in msg  # a layer bundle is not what an answer is
    assert "2 arrays ('grad', 'bias')" in msg and "save the one to check as .npy" in msg
    assert "numpy.save('grad.npy', numpy.load('g.npz')['grad'])" in msg


def test_a_broken_npz_answer_is_named(tmp_path):
    (tmp_path / "g.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(LoadError, match=r"g.npz: is not a valid .npz archive .*give it as .npy"):
        inputs.load_answer(tmp_path / "g.npz")


# ---------------------------------------------------------------- a mapped x that is not a batch


def test_a_vector_x_over_the_cap_is_told_it_is_over_the_cap(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones(3000))  # 24,128 bytes
    size = path.stat().st_size
    with pytest.raises(LoadError) as e:
        inputs.map_npy(path, max_bytes=1000)
    msg = str(e.value)
    assert f"is {size:,} bytes, over the input size cap of 1,000 bytes" in msg
    assert "shape (3000,)" in msg and "(max_bytes=1M)" in msg
    assert "must be a batch" not in msg
    with pytest.raises(LoadError, match=r"over the input size cap; .*\(max_bytes=1M\)"):
        inputs.map_npy(path)  # without the cap, still the cap that is to be raised
    np.save(path, np.ones((2, 3)))
    assert inputs.map_npy(path, max_bytes=10).shape == (2, 3)


# ---------------------------------------------------------------- every cast, then the finiteness rule


def test_an_upstream_that_overflows_float32_is_refused(tmp_path):
    L = make_layer(W32, X32)
    (tmp_path / "g.json").write_text("[1e39, 1, 2, 3]")
    with pytest.raises(LoadError, match=r"g.json: 1e\+39 overflows float32 when cast for dtype=float32"):
        inputs.load_upstream(tmp_path / "g.json", L)
    (tmp_path / "g.json").write_text("[1e38, 1, 2, 3]")
    g = inputs.load_upstream(tmp_path / "g.json", L)
    assert g.dtype == np.float32 and g[0] == np.float32(1e38)
    g64 = inputs.load_upstream(tmp_path / "g.json", make_layer(W32.astype(float), X32.astype(float)))
    assert g64.dtype == np.float64 and g64[0] == 1e38


def test_class_weights_that_overflow_float32_are_refused(tmp_path):
    L = make_layer(W32, X32)
    (tmp_path / "w.csv").write_text("1,1e39,1,1\n")
    with pytest.raises(LoadError, match=r"w.csv: 1e\+39 overflows float32 when cast for dtype=float32"):
        inputs.load_class_weights(tmp_path / "w.csv", L)
    (tmp_path / "w.csv").write_text("1,2,3,4\n")
    w = inputs.load_class_weights(tmp_path / "w.csv", L)
    assert w.dtype == np.float32
    assert_array_equal(w, [1, 2, 3, 4])
    with pytest.raises(InputError, match="below 0"):
        (tmp_path / "w.csv").write_text("1,-2,3,4\n")
        inputs.load_class_weights(tmp_path / "w.csv", L)


# ---------------------------------------------------------------- an answer held to its expected size


@pytest.mark.parametrize("suffix", [".json", ".csv", ".npy"])
def test_an_answer_of_the_expected_size_is_read_as_before(tmp_path, suffix):
    g = np.arange(12.0).reshape(3, 4) / 7
    path = tmp_path / f"g{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(g.tolist()))
    elif suffix == ".csv":
        np.savetxt(path, g, delimiter=",", fmt="%.17g")
    else:
        np.save(path, g)
    assert_array_equal(inputs.load_answer(path, expected=(3, 4)), g)
    assert_array_equal(inputs.load_answer(path, expected=(4, 3)), g)  # a transpose is verify's to name
    assert_array_equal(inputs.load_answer(path), g)
    with pytest.raises(
        ShapeError, match=rf"g{suffix}: has shape \(3, 4\) \(12 numbers\), but the answer should be 5 × 4"
    ):
        inputs.load_answer(path, expected=(5, 4))


@pytest.mark.parametrize("name", ["big.json", "big.csv", "flat.json"])
def test_a_large_answer_of_the_wrong_size_is_refused_before_it_is_parsed(tmp_path, name):
    a = np.random.default_rng(0).normal(size=(1000, 800))  # 800,000 numbers, about 16 MB of text
    path = tmp_path / name
    if name == "big.csv":
        np.savetxt(path, a, delimiter=",", fmt="%.17g")
    else:
        path.write_text(json.dumps((a.reshape(-1) if name == "flat.json" else a).tolist()))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(
            ShapeError, match=r"holds at least [\d,]+ numbers .*should be 3 × 4 \(12 numbers\)"
        ):
            inputs.load_answer(path, expected=(3, 4))
        took, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak  # a piece of the file, not its numbers (parsing took 60-290 MiB)
    assert took < 1.0, took


def test_an_answer_over_the_memory_budget_is_refused(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(np.ones((30, 40)).tolist()))
    with pytest.raises(LoadError, match="over the memory budget"):
        inputs.load_answer(path, expected=(30, 40), max_memory=1000)
    assert inputs.load_answer(path, expected=(30, 40)).shape == (30, 40)


# ---------------------------------------------------------------- damaged archives


def _member_data_at(path, name: str) -> int:
    import struct
    import zipfile

    info = zipfile.ZipFile(path).getinfo(name)
    raw = path.read_bytes()
    n, m = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + n + m


def test_a_damaged_or_cut_npz_is_a_load_error_naming_it(tmp_path):
    path = tmp_path / "layer.npz"
    np.savez_compressed(path, W=np.ones((30, 4)), x=np.ones(30))
    good = path.read_bytes()
    raw = bytearray(good)
    raw[_member_data_at(path, "W.npy")] = 0x07  # a deflate block of the reserved type: zlib.error
    path.write_bytes(bytes(raw))
    with pytest.raises(LoadError, match=r"layer.npz\[W\]: cannot be read \(Error -3 while decompressing"):
        inputs.load_bundle(path)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(LoadError, match=r"layer.npz: is not a valid .npz archive"):
        inputs.load_bundle(path)


# ---------------------------------------------------------------- the JSON budget, as measured


def test_json_is_held_to_what_its_parse_measured(tmp_path):
    # a matrix goes to the fast reader, whose array takes at most ~5 bytes a byte of text
    M = np.random.default_rng(1).integers(0, 10, size=(2000, 50)).astype(float)
    path = tmp_path / "M.json"
    path.write_text(json.dumps(M.astype(int).tolist()))
    size = path.stat().st_size
    assert_array_equal(inputs.load_array(path, max_memory=8 * size), M)  # 13 a byte refused it
    # a vector of short numbers is parsed as a document: 20 bytes a byte of text were measured
    path = tmp_path / "v.json"
    path.write_text("[" + ",".join(["0.5"] * 100_000) + "]")
    size = path.stat().st_size
    with pytest.raises(LoadError, match=r"of JSON takes about .* over the memory budget"):
        inputs.load_array(path, max_memory=16 * size)  # 13 a byte let it through
    assert inputs.load_array(path, max_memory=30 * size).shape == (100_000,)


@pytest.mark.parametrize(("suffix", "per_byte"), [(".json", inputs.JSON_BYTES_PER_BYTE), (".csv", 12)])
def test_text_past_the_budget_is_refused_by_its_size_before_it_is_read(tmp_path, suffix, per_byte):
    # 2 MB of one-digit numbers on one line: too large for the fast reader at this budget, and
    # its careful parse would take per_byte times it; refused from the file's size, not after
    # reading it whole (a 209 MB JSON reached 450 MiB at a 64M budget before its refusal).
    numbers = ",".join(["1"] * 1_000_000)
    path = tmp_path / f"W{suffix}"
    path.write_text(f"[{numbers}]" if suffix == ".json" else numbers + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(
            LoadError, match=rf"W\{suffix}: parsing 1\.9 MiB of {suffix[1:].upper()} takes about"
        ):
            inputs.load_array(path, max_memory=4 * size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 4  # the text was never read
    assert inputs.load_array(path, max_memory=(per_byte + 1) * size).size == 1_000_000


class _Endless(io.RawIOBase):
    """A pipe that never ends ("yes 1,"), counting what is read from it."""

    def __init__(self):
        self.read_bytes = 0

    def readable(self):
        return True

    def isatty(self):
        return False

    def readinto(self, b):
        b[:] = b"1," * (len(b) // 2) + b"1" * (len(b) % 2)
        self.read_bytes += len(b)
        return len(b)


def test_text_from_a_pipe_is_not_read_past_what_the_budget_can_parse():
    # The input cap (1 GiB by default) bounded a pipe, not the memory: `yes 1, | smjac forward -W -`
    # read 300 MB (604 MiB peak) at a 64M budget before refusing. Now it stops at budget / 12.
    pipe = _Endless()
    with pytest.raises(
        LoadError, match=r"stdin: more than 81\.4 KiB of text, whose parse would take more than"
    ):
        inputs.load_array("-", max_memory=1_000_000, stdin=io.BufferedReader(pipe))
    assert pipe.read_bytes < 200_000


def test_targets_and_class_weights_from_files_keep_the_budget(tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text("0\n" * 500_000)  # 1 MB of text, 12 MB to parse at the careful reader's rate
    with pytest.raises(LoadError, match="over the memory budget"):
        inputs.load_array(path, max_memory=2_000_000)
    L = make_layer(np.ones((3, 4)), np.ones(3))
    with pytest.raises(LoadError, match="over the memory budget"):
        inputs.load_class_weights(path, L, max_memory=2_000_000)


def test_an_npz_file_is_read_member_by_member_each_within_the_budget(tmp_path):
    # an uncompressed .npz was read whole (337 MiB for a 160 MB b at a 16M budget) before its members'
    # sizes were held to the budget; named as a single array, it was read whole just to be refused
    path = tmp_path / "s.npz"
    np.savez(path, W=np.zeros((3, 5)), x=np.zeros(3), b=np.zeros(1_000_000))
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match=r"s\.npz\[b\]: inflates to 7\.6 MiB, .* over the memory budget"):
            inputs.load_bundle(path, max_memory=2_000_000)
        with pytest.raises(LoadError, match=r"an \.npz bundle holds several arrays; give it with layer="):
            inputs.load_array(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # the 8 MB file was never read whole
    small = tmp_path / "ok.npz"
    np.savez(small, W=np.ones((3, 5)), x=np.ones(3))
    assert inputs.load_bundle(small)["W"].shape == (3, 5)
