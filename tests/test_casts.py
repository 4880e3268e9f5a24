"""Every cast is checked (issue F12, F15): a value the layer's dtype cannot hold, and an input that
is not real numbers, are refused with the parameter named, never turned into a silent answer.

The references are written here: the softmax in float64 by hand, and the same call with the input
given as plain floats (the valid inputs keep their bits).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

import smjac
from smjac.cli import app
from smjac.errors import InputError, ShapeError, SmjacError

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
RNG = np.random.default_rng(20261205)
W32 = RNG.normal(size=(4, 5)).astype(np.float32)
X32 = RNG.normal(size=(3, 4)).astype(np.float32)
UP64 = RNG.normal(size=(3, 5))


def softmax64(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def strict(call):
    """The call with numpy's warnings (a cast's overflow, a ComplexWarning) as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


# ---- F12: a temperature past the layer's dtype -----------------------------------------------

CALLS = {
    "forward": lambda **kw: smjac.forward(W32, X32, **kw),
    "grad": lambda **kw: smjac.grad(W32, X32, target=1, **kw),
    "grad upstream": lambda **kw: smjac.grad(W32, X32, upstream=UP64, **kw),
    "jacobian z": lambda **kw: smjac.jacobian(W32, X32, wrt="z", **kw),
    "check": lambda **kw: smjac.check(W32, X32, **kw),
}


@pytest.mark.parametrize("name", CALLS)
def test_a_temperature_past_float32_is_refused_naming_it_and_the_cast(name):
    # 1e39 is inf in float32: z/T was 0 and h uniform, the gradient 0, exit 0
    with pytest.raises(InputError) as e:
        strict(lambda: CALLS[name](temperature=1e39))
    assert str(e.value).startswith("temperature=1e+39 overflows float32 when cast for dtype=float32")


def test_a_temperature_float32_holds_is_taken_and_right():
    T = 3e38  # under float32's largest, 3.4e38: z/T is tiny and h uniform to float32's precision
    h = strict(lambda: smjac.forward(W32, X32, temperature=T)).h
    assert h.dtype == np.float32
    z = X32.astype(np.float64) @ W32.astype(np.float64)
    assert_allclose(h, softmax64(z / T), rtol=1e-6)


@pytest.mark.parametrize(
    "command", [["forward"], ["grad", "--target", "1"], ["jacobian", "--wrt", "z"], ["check"]]
)
def test_the_command_line_refuses_it_in_flags(tmp_path, command):
    np.save(tmp_path / "W.npy", W32.astype(np.float64))
    np.save(tmp_path / "x.npy", X32.astype(np.float64))
    args = ["-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "--dtype", "float32"]
    result = CliRunner().invoke(app, [*command, *args, "--temperature", "1e39"], env=ENV)
    assert result.exit_code == 2, result.stdout
    assert result.stdout == ""
    assert "Error: --temperature 1e+39 overflows float32 when cast for --dtype float32" in result.stderr
    assert "x holds" not in result.stderr  # check blamed x


def test_the_installed_command_refuses_it(tmp_path):
    np.save(tmp_path / "W.npy", W32.astype(np.float64))
    np.save(tmp_path / "x.npy", X32.astype(np.float64))
    args = ["-W", str(tmp_path / "W.npy"), "-x", str(tmp_path / "x.npy"), "--dtype", "float32"]
    proc = subprocess.run(
        [sys.executable, "-m", "smjac", "forward", *args, "--temperature", "1e39"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(
        "Error: --temperature 1e+39 overflows float32 when cast for --dtype float32"
    )


# ---- F12b: the upstream is cast to the layer's dtype, checked ---------------------------------


def test_a_float64_upstream_gives_a_gradient_in_the_layers_dtype():
    g = strict(lambda: smjac.grad(W32, X32, upstream=UP64))
    assert (g.W.dtype, g.b.dtype, g.z.dtype) == (np.float32,) * 3
    # the same bits as the upstream cast first, as the command line reads it
    g32 = smjac.grad(W32, X32, upstream=UP64.astype(np.float32))
    assert_array_equal(g.W, g32.W)
    # and right: δ = p ⊙ (g − pᵀg) per sample, x δᵀ summed, mean over the batch, by hand in float64
    X, W = X32.astype(np.float64), W32.astype(np.float64)
    P = softmax64(X @ W)
    delta = P * (UP64 - np.sum(P * UP64, axis=1, keepdims=True))
    assert_allclose(g.W, X.T @ delta / 3, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda: smjac.grad(W32, X32, upstream=UP64 * 1e39), "upstream: "),
        (lambda: smjac.grad(W32, X32, target=1, class_weights=[1e39, 1, 1, 1, 1]), "class_weights: 1e+39 "),
        # verify said "upstream holds a NaN or infinite value", after numpy's warning of the cast
        (
            lambda: smjac.verify(W32, X32, grad=np.zeros((4, 5), np.float32), upstream=UP64 * 1e39),
            "upstream: ",
        ),
    ],
)
def test_a_loss_input_past_the_layers_dtype_is_refused_naming_the_cast(call, named):
    with pytest.raises(InputError) as e:
        strict(call)
    assert str(e.value).startswith(named)
    assert "overflows float32 when cast for dtype=float32" in str(e.value)


# ---- F15: inputs that are not real numbers ------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, said",
    [
        (lambda: smjac.forward(W32, X32 + 1j), InputError, "x has dtype complex64; smjac needs real numbers"),
        (lambda: smjac.forward(W32 + 0j, X32), InputError, "W has dtype complex64"),
        (lambda: smjac.grad(W32, X32, b=np.ones(5) * 1j, target=0), InputError, "b has dtype complex128"),
        (lambda: smjac.grad(W32, X32, upstream=UP64 + 2j), InputError, "upstream has dtype complex128"),
        (
            lambda: smjac.forward([["a"] * 5] * 4, X32),
            InputError,
            "W has dtype <U1; smjac needs real numbers",
        ),
        (lambda: smjac.forward(W32, [1.0, None, 2.0, 3.0]), InputError, "x holds None at (1,), not a number"),
        (lambda: smjac.forward(W32, [[1.0, 2.0], [3.0]]), ShapeError, "x is not a vector or a matrix"),
        (lambda: smjac.forward(W32, [1, 2, 3, 10**400]), InputError, "x holds a whole number past float64"),
        (lambda: smjac.jacobian([["1"] * 5] * 4, X32), InputError, "W has dtype <U1"),
    ],
)
def test_an_input_that_is_not_real_numbers_is_refused_naming_it(call, error, said):
    with pytest.raises(error) as e:
        strict(call)
    assert said in str(e.value)


@pytest.mark.parametrize("bad", [True, np.True_, "2", 1 + 0j, [2.0], None])
def test_a_temperature_that_is_not_a_number_is_refused(bad):
    with pytest.raises(InputError) as e:
        strict(lambda: smjac.forward(W32, X32, temperature=bad))
    assert str(e.value).startswith("temperature must be a number, not ")


def test_label_smoothing_refuses_a_bool_too():
    with pytest.raises(SmjacError) as e:
        smjac.grad(W32, X32, target=0, label_smoothing=True)
    assert "label_smoothing must be a number" in str(e.value)
    with pytest.raises(InputError):  # and temperature as well, which took True as 1
        smjac.grad(W32, X32, target=0, temperature=True)


@pytest.mark.parametrize(
    "x",
    [
        [1, 0, 2, 3],  # whole numbers
        np.array([1, 0, 2, 3], dtype=np.int32),
        np.array([1, 0, 2, 3], dtype=object),  # Python numbers as objects
        [Fraction(1), Fraction(0), 2, 3.0],
        [True, False, 2, 3],  # booleans are 0 and 1 in an array
    ],
)
def test_real_numbers_of_any_kind_keep_the_bits_of_their_floats(x):
    W = W32.astype(np.float64)
    expected = smjac.forward(W, np.array([1.0, 0.0, 2.0, 3.0]), temperature=2.0)
    for T in (2, 2.0, np.float64(2), np.int64(2), np.array(2.0), Fraction(2)):
        got = strict(lambda T=T: smjac.forward(W, x, temperature=T))
        assert_array_equal(got.h, expected.h)
        assert_array_equal(got.z, expected.z)


# A tolerance is a promise about every answer: inf, nan, True or a string would let any answer
# agree (rtol=inf) or make none agree (a negative one), so the library refuses them, as the CLI's
# ranges do, naming the parameter.
@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("rtol", float("inf"), "rtol must be a finite number in [0, 1], not inf"),
        ("rtol", float("nan"), "rtol must be a finite number in [0, 1], not nan"),
        ("rtol", 2.0, "rtol must be a finite number in [0, 1], not 2.0"),
        ("atol", -1e-9, "atol must be a finite number in [0, 1e+300], not -1e-09"),
        ("atol", float("inf"), "atol must be a finite number in [0, 1e+300], not inf"),
        ("rtol", True, "rtol must be a number, not True"),
        ("atol", "1e-3", "atol must be a number, not '1e-3'"),
    ],
)
def test_check_and_verify_refuse_a_tolerance_that_promises_nothing(name, value, words):
    W, x = np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([1.0, 2.0])
    wrong = np.zeros((2, 2))  # not the gradient of anything here: rtol=inf would call it right
    with pytest.raises(InputError) as caught:
        smjac.check(W, x, **{name: value})
    assert str(caught.value) == words
    with pytest.raises(InputError) as caught:
        smjac.verify(W, x, grad=wrong, target=0, **{name: value})
    assert str(caught.value) == words


@pytest.mark.parametrize("probes", [True, 2.5, "3"])
def test_check_refuses_probes_that_are_not_a_whole_number(probes):
    with pytest.raises(InputError, match="probes must be a whole number"):
        smjac.check([[0.1, 0.2], [0.3, 0.4]], [1.0, 2.0], probes=probes)


def test_tolerances_at_their_bounds_are_taken():
    W, x = np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([1.0, 2.0])
    assert smjac.check(W, x, rtol=0.0, atol=1e-9).ok
    assert smjac.check(W, x, rtol=1, atol=0).ok
