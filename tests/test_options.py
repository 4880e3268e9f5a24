"""Every option is checked when it is parsed: a bad value is a usage error (exit 2) that names the
range, before any input is read or any file written; fuzzed values never give a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smjac.cli import app

from .conftest import ROOT

BLOG = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


def run(*args: str, env: dict | None = None, input: str | None = None):
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})}, input=input)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", *BLOG, "--seed", "-1"], "-1 is not in the range x>=0"),
        (["check", *BLOG, "--rtol", "inf", "-f", "json"], "inf is not a finite number in [0, 1]"),
        (["check", *BLOG, "--rtol", "nan"], "nan is not a finite number in [0, 1]"),
        (["check", *BLOG, "--atol", "inf", "-f", "json"], "inf is not a finite number in [0, 1e+300]"),
        (["check", *BLOG, "--probes", "0"], "0 is not in the range x>=1"),
        (
            ["verify", *BLOG, "--grad", BLOG[1], "--target", "1", "--rtol", "-1"],
            "-1.0 is not a finite number in [0, 1]",
        ),
        (["forward", *BLOG, "--temperature", "nan"], "nan is not a finite number > 0"),
        (["forward", *BLOG, "--temperature", "0"], "0.0 is not a finite number > 0"),
        (["forward", *BLOG, "--temperature", "-inf"], "-inf is not a finite number > 0"),
        (["forward", *BLOG, "--max-memory", "9" * 400], "is out of range: a size is 1 byte to 4 EiB"),
        (["forward", *BLOG, "--max-memory", "4611686018427387905"], "is out of range"),
        (["forward", *BLOG, "--max-memory", "0"], "is out of range: a size is 1 byte to 4 EiB"),
        (["forward", *BLOG, "--max-memory", "9999999T"], "is out of range"),
        (
            ["--max-input-bytes", "9223372036854775808", "forward", *BLOG],
            "is out of range: a size is 1 byte to 4 EiB",
        ),
        (["--max-input-bytes", "4Q", "forward", *BLOG], "'4Q' is not a size; write it as 4G, 512M"),
        (["grad", *BLOG, "--target", "3.0"], "--target '3.0': not a class index (3), a comma list of them"),
        (["grad", *BLOG, "--target", "cat"], "nor a file that exists"),
        # Python's int() reads these, a person does not mean them: 1_0 was class 10, ١ class 1
        (["grad", *BLOG, "--target", "1_0"], "--target '1_0': not a class index (3)"),
        (["grad", *BLOG, "--target", "\u0661"], "not a class index (3)"),
        (["forward", *BLOG, "--max-memory", "\u0661\u0660M"], "is not a size; write it as 4G, 512M"),
        (["grad", "-W", BLOG[1], "-x", "-", "--target", "-"], "- given twice"),
        (["forward", "-W", BLOG[3], "-x", BLOG[1]], "look swapped: -W takes the matrix, -x the input vector"),
    ],
)
def test_bad_option_values_are_refused_with_the_range(args, message, tmp_path):
    result = run(*args, input="[1, 2, 3]")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split()), result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("SMJAC_MAX_MEMORY", "9" * 400, "is out of range"),
        ("SMJAC_MAX_INPUT_BYTES", "9223372036854775808", "is out of range"),
    ],
)
def test_bad_values_from_the_environment_too(var, value, message):
    result = run("forward", *BLOG, env={var: value})
    assert result.exit_code == 2 and message in result.stderr


def test_the_ranges_are_in_the_help():
    text = " ".join(run("check", "--help").stdout.split())
    assert "Relative tolerance in [0, 1]" in text and "Absolute tolerance in [0, 1e300]" in text
    assert "T > 0 (finite)" in text and "--seed <int> Seeds the draw of --probes. [default: 0; x>=0]" in text
    # a count or a seed has no largest value a person would meet: none is shown (it showed 2^62 - 1)
    assert "--probes N" in text and "[x>=1]" in text and not re.search(r"[0-9]{8}", text)
    assert "range>" not in text  # each whole number is an <int>, as each number is a <float>


OPTIONS = ["--temperature", "--rtol", "--atol", "--seed", "--probes", "--max-memory", "--max-weights"]


@settings(max_examples=60, deadline=None)
@given(
    option=st.sampled_from(OPTIONS),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.text(min_size=1, max_size=12).filter(lambda s: not s.startswith("-") and "\x00" not in s),
    ),
)
def test_fuzzed_option_values_never_crash(option, value):
    result = run("check", *BLOG, option, value, "-f", "json")
    assert result.exit_code in (0, 1, 2), (option, value, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, (
        option,
        value,
        result.stderr,
    )
    if result.exit_code == 0:
        import json

        json.loads(result.stdout)  # a complete report, with no NaN in it
    if result.exit_code == 2:
        assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jacobian", *BLOG, "--legend", "--format", "factored"], "not with --legend or --entry"),
        (["jacobian", *BLOG, "--legend", "--entry", "1,1,2"], "give one of them"),
        (["jacobian", *BLOG, "--entry", ""], "give indices from 0"),
        (["verify", *BLOG, "--grad", BLOG[1]], "--grad needs exactly one of --target K or --upstream FILE"),
        # dLoss/db is of a loss too: said in flags, before the answer is read
        (
            ["verify", *BLOG, "--grad-b", BLOG[3]],
            "--grad-b needs exactly one of --target K or --upstream FILE",
        ),
        (["grad", *BLOG, "--target", "99999999999999999999"], "is out of range: K = 5"),
    ],
)
def test_options_that_cannot_go_together_are_refused(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.stderr and result.stdout == ""


def test_a_check_that_overflows_is_refused_not_passed(tmp_path):
    (tmp_path / "W.json").write_text("[[1e308, -1e308]]")
    (tmp_path / "x.json").write_text("[0]")
    result = run("check", "-W", str(tmp_path / "W.json"), "-x", str(tmp_path / "x.json"), "-f", "csv")
    assert result.exit_code == 2 and "cannot check this layer" in result.stderr and result.stdout == ""


def test_the_input_cap_takes_units_before_or_after_the_command(tmp_path):
    # the error that needs --max-input-bytes tells users to add it; after the command works too
    small = subprocess.run(
        [sys.executable, "-m", "smjac", "forward", *BLOG, "--max-input-bytes", "10"],
        capture_output=True,
        text=True,
    )
    assert small.returncode == 2 and "over the input size cap of 10 bytes" in small.stderr
    for args in (["--max-input-bytes", "1K", "forward", *BLOG], ["forward", *BLOG, "--max-input-bytes=1K"]):
        done = subprocess.run(
            [sys.executable, "-m", "smjac", *args, "-f", "json"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["h"]
