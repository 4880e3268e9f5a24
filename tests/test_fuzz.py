"""Fuzzing with hypothesis: hostile bytes never crash smjac, and any finite layer checks out.

For bytes, the only outcomes allowed are a correct result or a clean error (LoadError in the
library, exit 2 with one ``Error:`` line on the command line). For numbers, every command gives
finite results that agree with finite differences, from 1e-150 to 1e150.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose
from safetensors import numpy as sf
from typer.testing import CliRunner

import smjac
from smjac import LoadError, inputs
from smjac.cli import app
from smjac.cli.flags import as_flags
from smjac.formats import checkpoints, npy, table

from .conftest import post_softmax

FORMATS = [table.Format.json, table.Format.csv, table.Format.npy]
ENV = {"COLUMNS": "120", "NO_COLOR": "1"}


def load_or_refuse(data: bytes, fmt: table.Format) -> np.ndarray | None:
    """Parse ``data``; a LoadError is a clean refusal, anything else propagates and fails."""
    try:
        arr = inputs.parse(data, fmt, "fuzz")
    except LoadError as e:
        assert str(e).startswith("fuzz: ") and "\n" not in str(e)
        return None
    assert arr.dtype == np.float64 and arr.size > 0 and np.all(np.isfinite(arr))
    return arr


def encode(M: np.ndarray, fmt: table.Format) -> bytes:
    if fmt is table.Format.json:
        return json.dumps(M.tolist()).encode()
    if fmt is table.Format.csv:
        return "".join(",".join(repr(v) for v in row) + "\n" for row in M.tolist()).encode()
    buf = io.BytesIO()
    np.save(buf, M)
    return buf.getvalue()


@st.composite
def mutated(draw, fmt: table.Format) -> bytes:
    """A valid document of a small matrix, then a few byte-level edits."""
    M = draw(
        arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 3)), elements=st.floats(-1e3, 1e3))
    )
    data = bytearray(encode(M, fmt))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        if edit == "flip":
            data[at] = draw(st.integers(0, 255))
        elif edit == "delete":
            del data[at]
        elif edit == "insert":
            data[at:at] = draw(
                st.sampled_from([b",", b"[", b"]", b"-", b"e", b".", b"\n", b"NaN", b'"', b"\x00"])
            )
        elif edit == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(FORMATS))
def test_random_bytes_are_refused_cleanly(data, fmt):
    load_or_refuse(data, fmt)
    load_or_refuse(npy.NPY_MAGIC + data, fmt)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(FORMATS))
def test_mutated_documents_load_or_are_refused(data, fmt):
    load_or_refuse(data.draw(mutated(fmt)), fmt)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data(), st.sampled_from(FORMATS))
def test_mutated_files_through_the_cli(tmp_path, data, fmt):
    bad = tmp_path / f"W.{fmt.value}"
    bad.write_bytes(data.draw(mutated(fmt)))
    out = tmp_path / "out.json"
    out.unlink(missing_ok=True)
    x = tmp_path / "x.json"
    x.write_text("[1.0, 2.0, 3.0]")
    result = CliRunner().invoke(app, ["jacobian", "-W", str(bad), "-x", str(x), "-o", str(out)], env=ENV)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert not out.exists()
    else:
        J = np.array(json.loads(out.read_text())["jacobian"])
        W = inputs.load_array(bad)
        assert_allclose(J, smjac.jacobian(W, [1.0, 2.0, 3.0]), rtol=0, atol=0)
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ---------------------------------------------------------------- random finite layers


def magnitudes(lo: float, hi: float):
    """Floats whose size spans [10^lo, 10^hi], either sign, and zero."""
    exps = st.floats(lo, hi)
    return st.one_of(
        st.just(0.0),
        st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(1, 10), exps).map(
            lambda t: t[0] * t[1] * 10.0 ** t[2]
        ),
    )


@st.composite
def wild_layers(draw):
    n, K = draw(st.integers(1, 4)), draw(st.integers(2, 4))  # K = 1 is binary: tests/test_losses.py
    scale_w, scale_x = draw(st.integers(-150, 150)), draw(st.integers(-150, 150))
    # each of W and x has its own scale, with entries up to 3 decades either side of it
    W = draw(arrays(np.float64, (n, K), elements=magnitudes(scale_w - 3, scale_w + 3)))
    x = draw(arrays(np.float64, (n,), elements=magnitudes(scale_x - 3, scale_x + 3)))
    return W, x


@settings(max_examples=150, deadline=None)
@given(wild_layers())
@example((np.full((1, 3), -1e8), np.zeros(1)))  # dh/dx = A·Wᵀ cancels to 0: rounding on the terms' scale
# z cancels to 0 from terms of 5e17; one ulp of a weight (or of x) moves z by hundreds: not probeable
@example((np.array([[2.359375e15, 0.0, 0.0], [2.359375e15, 0.0, 0.0]]), np.array([-235.9375, 235.9375])))
def test_any_finite_layer_checks_out(layer):
    W, x = layer
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy must not warn on the way
        report = smjac.check(W, x)
        J = smjac.jacobian(W, x)
        g = smjac.grad(W, x, target=0)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert np.all(np.isfinite(J)) and np.all(np.isfinite(g.W)) and np.isfinite(g.loss)
    z = W.T @ x
    assert_allclose(smjac.forward(W, x).h, post_softmax(z - z.max()), rtol=1e-12, atol=1e-300)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_on_ordinary_layers_finite_differences_are_held_tight(n, K, data):
    # The error estimate widens the tolerance only where finite differences cannot resolve; on
    # layers of everyday size it must stay far below any real mistake.
    W = data.draw(arrays(np.float64, (n, K), elements=st.floats(-3, 3)))
    x = data.draw(arrays(np.float64, (n,), elements=st.floats(-3, 3)))
    for c in smjac.check(W, x).checks:
        assert c.ok, c
        assert c.tolerance <= 1e-9 + 2e-6 * max(1.0, float(np.max(np.abs(x)))), c


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wild_layers())
def test_any_finite_layer_through_every_command(tmp_path, layer):
    W, x = layer
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "x.npy", x)
    files = ["-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy")]
    runner = CliRunner()
    for command in (
        ["forward"],
        ["jacobian"],
        ["jacobian", "--wrt", "x"],
        ["grad", "--target", "0"],
        ["check"],
    ):
        result = runner.invoke(app, [*command, *files, "-f", "json"], env=ENV)
        assert result.exit_code == 0, (command, result.output)
        text = result.stdout
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text)


def test_a_binary_layer_with_a_subnormal_x_checks_out():
    # found by hypothesis in CI: one output, W = 0, x = 5e-324; the loss check's step for w was
    # reach / x, an overflow, and the check refused the layer instead of checking it
    report = smjac.check(np.array([[0.0]]), np.array([5e-324]))
    assert report.ok, [c for c in report.checks if not c.ok]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=4, unique=True))
def test_any_tensor_names_are_shown_one_line_each(names):
    # issue 19: whatever a checkpoint calls its tensors (newlines, ESC, other controls), a refusal
    # lists one line per layer and a note is one line, as the library says it and as the
    # command line does
    tensors = {f"{name}.weight": np.full((3, 2), i + 1, np.float32) for i, name in enumerate(names)}
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "m.safetensors"
        sf.save_file(tensors, model)
        try:
            notes, listed = checkpoints.read(model).notes, 0  # a name taken for a head's
        except LoadError as e:
            notes, listed = (str(e),), len(names)
    for note in (*notes, *map(as_flags, notes)):
        lines = note.split("\n")
        assert len(lines) == 1 + listed and all(line.startswith("  ") for line in lines[1:])
        assert all(c.isprintable() for line in lines for c in line)
