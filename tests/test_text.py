"""JSON and CSV at the speed of C: the fast readers and writers against the careful ones.

The careful code (``csv`` and ``json`` with every cell checked) is the reference. A fast reader
may hand a file back (None) but never accepts what the careful reader refuses, and where both
accept, the bits are the same. The writers' numbers read back bit for bit, through smjac and
through ``float()``, and mean what the old writer's did (float32 too).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_array_equal

from smjac import LoadError, inputs
from smjac.formats import table, text, text_reading, text_writing
from smjac.formats.document import Document

# ---------------------------------------------------------------- helpers


def careful_or_none(fn, data: bytes, finite: bool = True) -> np.ndarray | None:
    try:
        return fn(data, "t.txt", finite)
    except LoadError:
        return None


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_agrees(fast: np.ndarray | None, data: bytes, careful) -> None:
    """A fast reader's answer, held to the careful reader's."""
    reference = careful_or_none(careful, data)
    if fast is None:
        return
    assert reference is not None, f"fast accepted what the careful reader refuses: {data[:80]!r}"
    assert same_bits(fast, reference), data[:80]
    loose = careful_or_none(careful, data, finite=False)  # verify's answers: NaN allowed
    assert loose is not None and same_bits(fast, loose)


@pytest.fixture(params=[3, 7, text_reading.PIECE])
def piece(request, monkeypatch):
    """Pieces so small that rows, numbers and the byte-order mark are cut between them."""
    monkeypatch.setattr(text_reading, "PIECE", request.param)
    return request.param


def fast_csv(data: bytes) -> np.ndarray | None:
    return text.fast_csv(io.BytesIO(data), len(data))


def fast_json(data: bytes) -> np.ndarray | None:
    return text.fast_json(io.BytesIO(data), len(data))


# ---------------------------------------------------------------- reading: the same bits or a hand-back

# Where a parser that does not round correctly would give other bits: halfway cases, long mantissas, edges
HARD = [
    "9007199254740993",
    "2.2250738585072011e-308",
    "4.9406564584124654e-324",
    "2.4703282292062328e-324",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "1.7976931348623159e308",
    "0." + "1" * 800,
    "1" + "0" * 300 + ".5",
    "7.038531e-26",
    "1.00000000000000011102230246251565404236316680908203125",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901",
]

# How a number may be spelled in a CSV file, JSON-valid or not (+1, .5, 1., 007, -0, 1E+05).
number_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda v: str(np.float32(v))),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["0", "-0", "+0", "-0.0", "0e5", "-0e-3", "+1", ".5", "5.", "007", "1E+05", "1e-400",
                     "1e309", "-1e999", "2" + "0" * 308, "9" * 309, "4.9e-324", "2.5e-324", "1e-07", *HARD]),
    st.from_regex(r"\A[+-]?(\d{1,25}\.?\d{0,25}|\.\d{1,25})([eE][+-]?\d{1,3})?\Z"),
)  # fmt: skip
space = st.sampled_from(["", "", "", " ", "\t", "  "])


@st.composite
def csv_documents(draw) -> bytes:
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    end = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    lines = []
    for _ in range(rows):
        width = cols if draw(st.integers(0, 9)) else draw(st.integers(0, cols + 1))  # now and then ragged
        lines.append(",".join(draw(space) + draw(number_text) + draw(space) for _ in range(width)))
        if not draw(st.integers(0, 9)):
            lines.append(draw(st.sampled_from(["", " ", " , ", "\t"])))  # a blank line
    tail = draw(st.sampled_from(["", end, end + end, end + " "]))
    bom = draw(st.sampled_from([b"", b"", b"\xef\xbb\xbf"]))
    return bom + (end.join(lines) + tail).encode()


# piece, a function-scoped fixture, only sets a constant: sharing it between examples is harmless
SHARED = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}


@settings(max_examples=150, **SHARED)
@given(data=csv_documents())
@example(data=b"1,2\n-0,3\n")
@example(data=b"1,-0\n")
@example(data=b"1e-0,0\n")
@example(data=b"1,2\r3,4")
def test_fast_csv_agrees_with_the_careful_reader(data, piece):
    assert_agrees(fast_csv(data), data, text.careful_csv)


@settings(max_examples=150, **SHARED)
@given(data=st.binary(max_size=40) | st.text("0123456789.eE+-, \t\r\n", max_size=40).map(str.encode))
def test_fast_csv_on_byte_soup(data, piece):
    assert_agrees(fast_csv(data), data, text.careful_csv)


def json_number(draw) -> str:
    return draw(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.integers(-(10**40), 10**40).map(str),
            st.sampled_from(
                ["-0", "0", "-0.0", "-0e0", "1E5", "1e-400", "1e400", "01", "+1", ".5", "1.", *HARD]
            ),
        )
    )


@st.composite
def json_documents(draw) -> bytes:
    def ws() -> str:
        return draw(st.sampled_from(["", "", " ", "\n", "\r\n  ", "\t"]))

    def array(items: list[str]) -> str:
        return "[" + ws() + ("," + ws()).join(items) + ws() + "]"

    depth = draw(st.integers(1, 3))
    if depth == 1:
        body = array([json_number(draw) for _ in range(draw(st.integers(0, 6)))])
    else:
        cols = draw(st.integers(0, 4))
        rows = []
        for _ in range(draw(st.integers(1, 5))):
            width = cols if draw(st.integers(0, 9)) else draw(st.integers(0, 5))
            items = [json_number(draw) for _ in range(width)]
            rows.append(array([array([i]) for i in items]) if depth == 3 else array(items))
        body = array(rows)
    bom = draw(st.sampled_from(["", "", "\ufeff"]))
    return (bom + ws() + body + ws() + draw(st.sampled_from(["", "", "]", ",", " x"]))).encode()


@settings(max_examples=150, **SHARED)
@given(data=json_documents())
@example(data=b"[[1,2],[3,4]]")
@example(data=b"[[1,2] [3,4]]")
@example(data=b"[[1,2],[3,4]]]")
@example(data=b"[[1,2],[3,4],]")
@example(data=b"[[],[]]")
@example(data=b"[]")
@example(data=b"[-0, 0, -0.0]")
def test_fast_json_agrees_with_the_careful_reader(data, piece):
    assert_agrees(fast_json(data), data, text.careful_json)


@settings(max_examples=150, **SHARED)
@given(data=st.binary(max_size=40) | st.text("0123456789.eE+-,[] \t\r\n", max_size=40).map(str.encode))
def test_fast_json_on_byte_soup(data, piece):
    assert_agrees(fast_json(data), data, text.careful_json)


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["W", "x", "b", "Wx", "", "e"]), max_size=4),
    values=st.lists(st.sampled_from(["[1, 2]", "[[1.5], [2]]", "[]", '"x"', "{}", '{"W": 1, "W": 2}', "1e999"]),
                    min_size=4, max_size=4),
)  # fmt: skip
def test_fast_documents_keep_keys_once(keys, values):
    data = ("{" + ", ".join(f'"{k}": {v}' for k, v in zip(keys, values, strict=False)) + "}").encode()
    try:
        reference = text.careful_document(data, "t.json")
    except LoadError:
        reference = LoadError
    fast = text.fast_document(data)
    assert fast is None or fast == reference


def test_a_key_given_twice_is_refused_as_before(tmp_path):
    data = b'{"W": [[1, 2]], "x": [1], "W": [[3, 4]]}'
    assert text.fast_document(data) is None
    (tmp_path / "layer.json").write_bytes(data)
    with pytest.raises(LoadError, match="holds 'W' twice"):
        inputs.load_bundle(tmp_path / "layer.json")


def test_orjson_alone_would_not_do():
    """What orjson does that the careful readers must not: why the fast path checks first."""
    orjson = pytest.importorskip("orjson")
    assert orjson.loads(b'{"a": 1, "a": 2}') == {"a": 2}  # keeps the last of a key given twice
    assert orjson.dumps([float("nan"), float("inf")]) == b"[null,null]"  # NaN written as null
    assert orjson.loads(b"[-0]") == [0]  # the integer 0, where CSV's -0 is -0.0
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b"[NaN]")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"1,2\n-0,3\n", [[1.0, 2.0], [-0.0, 3.0]]),
        (b"+1,.5\n5.,007\n", [[1.0, 0.5], [5.0, 7.0]]),
        (b"1,2\n\n3,4\n\n", [[1.0, 2.0], [3.0, 4.0]]),
        (b"1,2\r\n3,4\r\n", [[1.0, 2.0], [3.0, 4.0]]),
        (b"\xef\xbb\xbf 1 , 2 \n", [[1.0, 2.0]]),
        (b"0.1\n0.5\n", [[0.1], [0.5]]),
    ],
)
def test_csv_spellings_read_as_before(data, expected, monkeypatch):
    fast = fast_csv(data)
    assert fast is not None and same_bits(fast, np.array(expected))
    assert same_bits(fast, text.careful_csv(data, "t.csv"))
    monkeypatch.setattr(text_reading, "LINE", 2)  # a line too long for orjson: np.loadtxt reads it
    monkeypatch.setattr(text_reading, "PIECE", 1)
    assert same_bits(fast_csv(data), fast)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,b\n1,2\n", "line 1 looks like a header"),
        (b"1,2\n3\n", "line 2 has 1 values but the first row has 2"),
        (b"1,2\n3,x\n", "line 2, column 2: 'x' is not a number"),
        (b"1,nan\n", "line 1, column 2: 'nan' is not a finite number"),
        (b"1,1e999\n", "line 1, column 2: 1e999 overflows"),
        (b"1,,2\n", "line 1, column 2: '' is not a number"),
        (b"1,2\n,\n", "line 2, column 1: '' is not a number"),  # a row of empty cells was dropped
        (b"1,2\n ,\t\n", "line 2, column 1: '' is not a number"),
    ],
)
def test_csv_refusals_still_name_the_line(tmp_path, data, message):
    path = tmp_path / "x.csv"
    path.write_bytes(data * 50_000 if b"a,b" not in data else data)  # large: the fast path tries first
    assert text.read_text(path, "csv", 2**30) is None
    with pytest.raises(LoadError, match=f"{re.escape(str(path))}: {message}"):
        inputs.load_array(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[[1, 2], [3]]", "row 2 has 1 values but row 1 has 2"),
        (b"[[1, NaN]]", "NaN is not allowed"),
        (b"[[1, 1e400]]", "1e400 overflows"),
        (b"[1, " + b"1" * 5000 + b"]", "an integer of 5,000 digits is too large"),
        (b"[[1, 2], [3, 4]", "is not valid JSON"),
        (b"[[1, true]]", "found a boolean"),
    ],
)
def test_json_refusals_as_before(tmp_path, data, message):
    path = tmp_path / "x.json"
    path.write_bytes(data)
    with pytest.raises(LoadError, match=message):
        inputs.load_array(path)


def test_verify_answers_keep_nan_and_infinity(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"1,nan\n-inf,2\n")
    (tmp_path / "a.json").write_bytes(b"[[1, NaN], [-Infinity, 2]]")
    for name in ("a.csv", "a.json"):
        a = inputs.load_answer(tmp_path / name)
        assert np.isnan(a[0, 1]) and a[1, 0] == -np.inf and a[1, 1] == 2


def test_a_sign_on_nan_is_refused_cleanly():
    # "+-nan" once passed as NaN and then failed in float() with a traceback
    with pytest.raises(LoadError, match="'\\+-nan' is not a number"):
        text.careful_csv(b"1,+-nan\n", "a.csv", finite=False)
    assert np.isnan(text.careful_csv(b"1,-nan\n", "a.csv", finite=False)[0, 1])


def test_caps_and_budget_still_refuse(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(json.dumps(np.ones((100, 10)).tolist()).encode())
    with pytest.raises(LoadError, match="input size cap"):
        inputs.load_array(path, max_bytes=1000)
    with pytest.raises(LoadError, match="over the memory budget"):
        inputs.load_array(path, max_memory=10_000)
    assert inputs.load_array(path).shape == (100, 10)


def test_a_fifo_is_left_to_the_careful_reader(tmp_path):
    fifo = tmp_path / "x.csv"
    os.mkfifo(fifo)
    assert text.read_text(fifo, "csv", 2**30) is None  # returns at once: opening it would wait


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_text_is_never_held_whole(tmp_path, fmt):
    M = np.random.default_rng(0).standard_normal((2000, 500))  # 8 MB of numbers, ~19 MB of text
    path = tmp_path / f"x.{fmt}"
    if fmt == "csv":
        path.write_text("\n".join(",".join(map(repr, row)) for row in M.tolist()) + "\n")
    else:
        path.write_text(json.dumps(M.tolist()))
    tracemalloc.start()
    try:
        back = inputs.load_array(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert same_bits(back, M)
    assert peak < M.nbytes * 1.06 + 24 * text_reading.PIECE, (
        peak
    )  # the array (an estimate of its rows), a few pieces


# ---------------------------------------------------------------- writing: bits, meaning and layout

reals = st.floats(allow_nan=False, allow_infinity=False)  # subnormals, ±0, 1e308 and 5e-324 included
matrices = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=reals)
NUMBER = re.compile(rb"-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|nan|inf|true|false")


def old_csv(m: np.ndarray) -> bytes:
    """What smjac wrote before: ``repr`` of each number, by the csv module."""
    return text.csv_text(text.plain_floats(np.atleast_2d(m))).encode()


def old_json(fields) -> bytes:
    return (json.dumps(text_writing._plain(fields), allow_nan=False) + "\n").encode()


def numbers(data: bytes) -> list[bytes]:
    return NUMBER.findall(data)


def same_meaning(new: bytes, old: bytes) -> None:
    """The same text but for how each number is spelled (and, in a large JSON document, the spaces
    after commas and colons), and every number the same float."""
    if text_writing.BLOCK < 4096 and new.startswith(b"{"):
        new, old = new.replace(b" ", b""), old.replace(b" ", b"")
    assert NUMBER.sub(b"N", new) == NUMBER.sub(b"N", old)
    for a, b in zip(numbers(new), numbers(old), strict=True):
        if a in (b"true", b"false", b"nan", b"inf"):
            assert a == b
        else:
            assert np.float64(float(a)).tobytes() == np.float64(float(b)).tobytes(), (a, b)


@pytest.fixture(params=["as is", "a row a call", "large"])
def writing(request, monkeypatch):
    """The writers' paths for these small matrices: as they are, a call per row, and as if large."""
    if request.param == "a row a call":
        monkeypatch.setattr(text_writing, "WIDE", 1)
    if request.param == "large":
        monkeypatch.setattr(text_writing, "BLOCK", 1)  # JSON by orjson in one call; CSV a row at a time
    return request.param


@settings(max_examples=100, **SHARED)
@given(M=matrices)
@example(M=np.array([[5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]]))
@example(M=np.array([[0.0, -0.0, 1e16, 1e-5, 1e-7, 123456789012345678.0, 0.1]]))
def test_written_numbers_read_back_bit_for_bit(M, writing):
    doc = Document({"jacobian": M}, matrix="jacobian")
    csv_data, json_data = text.csv_bytes(doc), text.json_bytes(doc)
    for back in (
        inputs.parse(csv_data, table.Format.csv, "out.csv"),
        text.careful_csv(csv_data, "out.csv"),
        np.array([float(t) for t in numbers(csv_data)]).reshape(M.shape),
        text.json_array(text.json_document(json_data, "out.json")["jacobian"], "out.json"),
        np.array(json.loads(json_data)["jacobian"]),
        np.array([float(t) for t in numbers(json_data)]).reshape(M.shape),
    ):
        assert same_bits(back, M)
    same_meaning(csv_data, old_csv(M))
    same_meaning(json_data, old_json(doc.fields))


@settings(max_examples=100, **SHARED)
@given(M=arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 4)), elements=st.floats(width=32)))
@example(M=np.array([[1e-45, 3.4028235e38, 0.1, 16777216.0, 1e-5, -0.0]], dtype=np.float32))
def test_float32_is_written_as_its_own_shortest_text(M, writing):
    doc = Document({"grad": M}, matrix="grad")
    written = [(text.csv_bytes(doc), old_csv(M))]
    if np.isfinite(M).all():
        written.append((text.json_bytes(doc), old_json(doc.fields)))
    finite = M[np.isfinite(M)]
    for data, old in written:
        tokens = [t for t in numbers(data) if t not in (b"nan", b"inf")]
        assert [np.float32(float(t)).tobytes() for t in tokens] == [v.tobytes() for v in finite]
        # as before: the float32's own shortest text (0.1, not 0.10000000149011612), read as a float
        assert [float(t) for t in tokens] == [float(str(v)) for v in finite]
        same_meaning(data, old)


def test_float32_over_many_bit_patterns():
    """orjson's float32 text, bit pattern by bit pattern, against numpy's shortest (the old way)."""
    rng = np.random.default_rng(2)
    bits = np.concatenate([rng.integers(0, 2**32, 200_000, dtype=np.uint64), np.arange(0, 2000)])
    v = bits.astype(np.uint32).view(np.float32)
    v = v[np.isfinite(v)]
    data = text.csv_bytes(Document({"m": v[:, None]}, matrix="m"))
    back = np.array(data.split(), dtype=np.float64)
    assert_array_equal(back.astype(np.float32).view(np.uint32), v.view(np.uint32))
    assert same_bits(back, v.astype(str).astype(np.float64))


def test_float64_over_many_bit_patterns():
    rng = np.random.default_rng(3)
    bits = np.concatenate(
        [rng.integers(0, 2**64, 200_000, dtype=np.uint64), np.arange(0, 2000, dtype=np.uint64)]
    )
    v = bits.view(np.float64)
    v = v[np.isfinite(v)].reshape(-1, 1)
    data = text.csv_bytes(Document({"m": v}, matrix="m"))
    assert same_bits(np.array([float(t) for t in data.split()]).reshape(v.shape), v)
    assert same_bits(inputs.parse(data, table.Format.csv, "m.csv"), v)


def test_non_finite_values_are_written_as_before():
    M = np.array([[1.0, np.nan, -np.inf], [np.inf, -0.0, 2.5e-7]])
    assert text.csv_bytes(Document({"J": M}, matrix="J")) == b"1.0,nan,-inf\ninf,-0.0,2.5e-7\n"
    same_meaning(text.csv_bytes(Document({"J": M}, matrix="J")), old_csv(M))
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        text.json_bytes(Document({"J": M}, matrix="J"))
    M32 = M.astype(np.float32)
    same_meaning(text.csv_bytes(Document({"J": M32}, matrix="J")), old_csv(M32))


def test_json_keeps_its_layout():
    doc = Document(
        {"of": "h", "method": "a, b: c", "shape": [2, 3], "loss": None, "ok": np.bool_(True),
         "J": np.arange(6.0).reshape(2, 3) / 4, "b": np.array([1, 2]), "s": np.float32(0.1),
         "nested": {"x": np.array([0.5]), "list": [np.array([1.5, 2.5])]}, "empty": np.zeros((0, 3))},
    )  # fmt: skip
    new = text.json_bytes(doc)
    assert new == old_json(doc.fields)
    assert new.startswith(b'{"of": "h", "method": "a, b: c", "shape": [2, 3], "loss": null, "ok": true, ')


def test_csv_tables_as_before():
    z = np.array([[0.5, -0.0], [1e-5, 3.0]])
    values = {"z": z, "h": z / 3}
    N, K = z.shape
    cols = {"sample": np.repeat(np.arange(N), K), "i": np.tile(np.arange(K), N)}
    cols |= {k: v.reshape(-1) for k, v in values.items()}
    new = text.csv_bytes(Document(values, columns=cols))
    old = text.csv_text(zip(*(text.plain_floats(c) for c in cols.values()), strict=True), list(cols)).encode()
    same_meaning(new, old)
    assert new.split(b"\n")[:3] == [b"sample,i,z,h", b"0,0,0.5,0.16666666666666666", b"0,1,-0.0,-0.0"]
    one = Document({"z": z[0]}, columns={"z": z[0], "h": z[1]})
    assert text.to_csv(one) == "z,h\n0.5,0.00001\n-0.0,3.0\n"


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.uint8, np.bool_, np.float16, ">f8"])
def test_every_dtype_writes_what_it_did(dtype):
    M = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
    if np.dtype(dtype).kind == "f":
        M = M / 7
    same_meaning(text.csv_bytes(Document({"m": M}, matrix="m")), old_csv(M))
    same_meaning(text.json_bytes(Document({"m": M}, matrix="m")), old_json({"m": M}))
    T = M[:, ::2]  # not contiguous
    same_meaning(text.csv_bytes(Document({"m": T}, matrix="m")), old_csv(T))


@pytest.mark.parametrize(("block", "wide"), [(4, 256), (9, 256), (1 << 16, 256), (9, 2)])
def test_streamed_csv_is_the_whole_text(monkeypatch, block, wide):
    monkeypatch.setattr(
        text_writing, "BLOCK", block
    )  # rows written a call at a time, two at a time, all at once
    monkeypatch.setattr(text_writing, "WIDE", wide)  # or a call per row
    J = np.random.default_rng(1).standard_normal((3, 7, 4))
    J[1, 2, 3] = np.nan
    out = io.BytesIO()
    text.stream_csv(out, (J[i] for i in range(3)))
    assert out.getvalue() == text.csv_bytes(Document({"J": J}, matrix="J"))
    same_meaning(out.getvalue(), old_csv(J.reshape(-1, 4)))


def test_large_json_documents_are_written_by_orjson_alone(monkeypatch):
    monkeypatch.setattr(text_writing, "BLOCK", 4)  # so these count as large
    J = np.arange(12.0).reshape(3, 4) / 3
    fields = {"of": "h", "shape": [3, 4], "loss": None, "J": J, "J32": J.astype(np.float32)}
    new = text.json_bytes(Document(fields, matrix="J"))
    assert new.startswith(b'{"of":"h","shape":[3,4],"loss":null,"J":[[0.0,0.3333333333333333,')
    assert new.endswith(b"]]}\n")
    assert json.loads(new) == json.loads(old_json(fields))
    for bad in (
        {"J": J, "loss": float("nan")},
        {"J": np.where(J > 1, np.inf, J)},
        {"J": J, "x": [1e308 * 10]},
    ):
        with pytest.raises(ValueError, match="Out of range float values"):
            text.json_bytes(Document(bad, matrix="J"))
    odd = {1: "a key json.dumps turns into a string", "J": J}  # orjson refuses it: json.dumps writes it
    assert text.json_bytes(Document(odd, matrix="J")).startswith(b'{"1": "a key')
    assert json.loads(text.json_bytes(Document(odd, matrix="J"))) == json.loads(old_json(odd))


@pytest.mark.parametrize("name", ["x.json", "layer.json"])
def test_deep_nesting_is_refused_not_a_crash(tmp_path, name):
    # orjson before 3.9.15 (the floor in pyproject.toml) crashed on this
    deep = b"[" * 200_000 + b"]" * 200_000
    path = tmp_path / name
    path.write_bytes(deep if name == "x.json" else b'{"W": ' + deep + b', "x": [1]}')
    load = inputs.load_array if name == "x.json" else inputs.load_bundle
    with pytest.raises(LoadError, match="nested too deeply"):
        load(path)


@pytest.mark.parametrize("delimiter", [" ", "\t"])
@pytest.mark.parametrize("piece", [7, 1 << 16])
def test_numbers_apart_by_spaces_are_data_not_a_header(tmp_path, monkeypatch, delimiter, piece):
    # np.savetxt's default: no header, numbers apart by a space, 19 significant digits (exact)
    monkeypatch.setattr(text_reading, "PIECE", piece)
    g = np.random.default_rng(3).normal(size=(3, 4)) * 10.0 ** np.arange(-2, 2)
    path = tmp_path / "g.csv"
    np.savetxt(path, g, delimiter=delimiter)
    assert_array_equal(inputs.load_array(path), g)
    assert_array_equal(inputs.load_answer(path), g)
    assert_array_equal(text.careful_csv(path.read_bytes(), "g.csv"), g)
    np.savetxt(path, g[:, :1])  # a column is the same either way
    assert_array_equal(inputs.load_array(path), g[:, :1])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a b c\n1 2 3\n", r"line 1 looks like a header \('a b c'\)"),
        (b"1 2 3\n4 5\n", "line 2 has 2 values but the first row has 3"),
        (b"1 2\n3 x\n", "line 2, column 2: 'x' is not a number"),
        (b"1 2, 3\n", "line 1, column 1: '1 2' is not a number"),  # a comma: CSV, as before
        # only spaces and tabs are space (str.strip and split also took these, and read 3\v4 as 3 4)
        (b"1 2\n3\x0b4\n", r"line 2, column 1: '3\\x0b4' is not a number"),
        ("1\u00a0,2\n".encode(), r"line 1, column 1: '1\\xa0' is not a number"),
        ("1 2\u00a0\n".encode(), r"line 1, column 2: '2\\xa0' is not a number"),
        (b'"1\n",2\n', r"line 1, column 1: '1\\n' is not a number"),
    ],
)
def test_space_separated_refusals_name_the_line(tmp_path, data, message):
    path = tmp_path / "g.csv"
    path.write_bytes(data)
    with pytest.raises(LoadError, match=message):
        inputs.load_array(path)


@pytest.mark.parametrize("depth", [4, 64, 70, 1000])
def test_json_nested_past_a_stack_of_matrices_is_told_so(tmp_path, monkeypatch, depth):
    deep = b"[" * depth + b"1" + b"]" * depth
    path = tmp_path / "x.json"
    path.write_bytes(deep)
    bundle = tmp_path / "b.json"
    bundle.write_bytes(b'{"W": ' + deep + b', "x": [1]}')
    too_deep = "is nested too deep"
    for parser in ("orjson", "json"):
        if parser == "json":
            monkeypatch.setattr(text_reading, "fast_document", lambda data: None)
        with pytest.raises(LoadError, match=f"x.json: {too_deep}"):  # the fast reader hands it on
            inputs.load_array(path)
        with pytest.raises(LoadError, match=f"x.json: {too_deep}"):
            text.parse_json(deep, "x.json")
        with pytest.raises(LoadError, match=rf"b.json(\[W\])?: {too_deep}"):
            inputs.load_bundle(bundle)


def test_a_stack_of_matrices_is_still_read(tmp_path):
    J = np.arange(24.0).reshape(2, 3, 4)
    path = tmp_path / "J.json"
    path.write_text(json.dumps(J.tolist()))
    assert_array_equal(inputs.load_answer(path), J)


@given(names=st.lists(st.text(st.sampled_from('ab ,"\r\n\tz/'), max_size=4), min_size=1, max_size=4))
@example(names=[""])
@example(names=["z", "h"])
def test_a_header_is_what_csv_writes(names):
    # the plain join is only a short cut: the csv module is the reference, quotes and all
    assert text_writing.csv_header(names) == text_writing.csv_text([], names)


def test_the_text_codecs_load_csv_only_when_the_careful_path_needs_it():
    script = """
import sys
import numpy as np
import smjac.formats.text as t
from smjac.formats.document import Document
t.parse_json(b"[[1, 2], [3, 4]]", "x")
t.parse_csv(b"1,2\\n3,4\\n", "x")
t.csv_bytes(Document({}, columns={"z": np.ones(2), "h": np.ones(2)}))  # a header, then numbers
print("csv" in sys.modules, end=";")
t.parse_csv(b"1,2\\n3,nan\\n", "x", finite=False)  # NaN: the careful reader
print("csv" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.split() == ["False;True"], out.stderr[-2000:]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b"[NaN, 2]", "line 30002, column 2: NaN is not allowed"),
        (b"[1e999, 2]", "line 30002, column 2: 1e999 overflows a 64-bit float"),
        (b"[" + b"9" * 401 + b", 2]", "line 30002, column 2: an integer of 401 digits is too large"),
        (b"[" + b"9" * 5000 + b".0, 2]", "line 30002, column 2: a number of 5,002 characters overflows"),
        (b"[true, 2]", "row 30001, entry 1: expected numbers, found a boolean"),
        (b'["1", 2]', r'row 30001, entry 1: expected numbers, found a string \("1"\)'),
        (b"[1, 2, 3]", "row 30001 has 3 values but row 1 has 2"),
        (b'["NaN", NaN]', "line 30002, column 9: NaN is not allowed"),  # not the string's NaN
    ],
)
def test_json_refusals_say_where(tmp_path, bad, message):
    # a file of 60,000 rows, one a line, the bad one in the middle: the fast path tries first
    rows = [b"[1.25, 2]"] * 60_000
    rows[30_000] = bad
    path = tmp_path / "x.json"
    path.write_bytes(b"[\n" + b",\n".join(rows) + b"\n]\n")
    with pytest.raises(LoadError, match=f"{re.escape(str(path))}: {message}") as refused:
        inputs.load_array(path)
    assert len(str(refused.value)) < 300  # a token of thousands of digits is not echoed


def test_a_non_number_in_a_stack_of_matrices_is_placed_by_matrix_row_and_entry(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b"[[[1, 2], [3, 4]], [[5, 6], [7, null]]]")
    with pytest.raises(LoadError, match="matrix 2, row 2, entry 2: expected numbers, found null"):
        inputs.load_array(path)
