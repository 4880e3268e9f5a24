"""--color auto|always|never, NO_COLOR and FORCE_COLOR: one decision, taken by the writer's Environment.

A pipe gets plain data and a terminal a table in colour; --color always (or FORCE_COLOR) draws
for a person in a pipe too, --color never draws without colour, and the command line wins over
the environment (no-color.org, force-color.org).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smjac.cli import app

from .conftest import ROOT

BLOG = ["-W", str(ROOT / "samples/blog/W.json"), "-x", str(ROOT / "samples/blog/x.json")]
ESC = "\x1b["
CSV_HEAD = "z,h\n0.354,"  # the blog post's first logit, as a pipe gets it


def run(*args: str, **env: str | None):
    base = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": None, "FORCE_COLOR": None}
    return CliRunner().invoke(app, list(args), env={**base, **env})


def is_table(text: str) -> bool:
    return "z = W" in text and "softmax(z)" in text and not text.startswith("z,h")


@pytest.mark.parametrize(
    ("args", "env", "table", "colour"),
    [
        ([], {}, False, False),  # a pipe: data
        (["--color", "auto"], {}, False, False),
        (["--color", "always"], {}, True, True),
        (["--color", "never"], {}, False, False),
        ([], {"FORCE_COLOR": "1"}, True, True),
        ([], {"FORCE_COLOR": ""}, False, False),  # set but empty counts as not set
        (["--color", "never"], {"FORCE_COLOR": "1"}, False, False),  # the command line wins
        ([], {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False, False),  # NO_COLOR first
        (["--color", "always"], {"NO_COLOR": "1"}, True, True),
    ],
)
def test_color_and_the_environment(args, env, table, colour):
    result = run("forward", *BLOG, *args, **env)
    assert result.exit_code == 0, result.stderr
    assert is_table(result.stdout) == table
    assert (ESC in result.stdout) == colour
    if not table:
        assert result.stdout.startswith(CSV_HEAD)


def test_always_leaves_data_formats_plain():
    for fmt in ("csv", "json"):
        forced = run("forward", *BLOG, "--color", "always", "-f", fmt)
        assert forced.exit_code == 0 and ESC not in forced.stdout
        assert forced.stdout == run("forward", *BLOG, "-f", fmt).stdout


def test_a_heatmap_forced_is_in_colour_and_without_it_in_glyphs():
    coloured = run("jacobian", *BLOG, "-f", "heatmap", "--color", "always")
    plain = run("jacobian", *BLOG, "-f", "heatmap", "--color", "never")
    assert coloured.exit_code == plain.exit_code == 0
    assert ESC in coloured.stdout and "▀" in coloured.stdout
    assert ESC not in plain.stdout and "▀" not in plain.stdout


@pytest.mark.parametrize(
    "command", [["inspect", str(ROOT / "samples/model/classifier.safetensors")], ["demo"]]
)
def test_the_other_printing_commands_take_color(command):
    forced = run(*command, "--color", "always")
    never = run(*command, "--color", "never")
    assert forced.exit_code == never.exit_code == 0, forced.stderr
    assert ESC in forced.stdout and ESC not in never.stdout


def test_force_color_reaches_the_installed_script_in_a_pipe(tmp_path):
    script = Path(sys.executable).parent / "smjac"
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}

    def smjac(*args: str, **more: str) -> str:
        proc = subprocess.run(
            [str(script), "forward", *BLOG, *args],
            capture_output=True,
            text=True,
            env={**env, "TERM": "xterm", **more},
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    forced = smjac(FORCE_COLOR="1")
    assert is_table(forced) and ESC in forced
    assert smjac("--color", "never", FORCE_COLOR="1").startswith(CSV_HEAD)
    assert smjac().startswith(CSV_HEAD)
