"""Shell completion: the script in click's spelling and typer's, and completions that work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smjac.cli import app

SMJAC = Path(sys.executable).parent / "smjac"


def smjac(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SMJAC)], capture_output=True, text=True, env={**os.environ, **env}, timeout=60)


@pytest.mark.parametrize("instruction", ["bash_source", "source_bash"])  # click's, typer's
def test_the_bash_script_is_given_in_either_spelling(instruction):
    proc = smjac(_SMJAC_COMPLETE=instruction)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "complete -o default -F _smjac_completion smjac" in proc.stdout
    assert "COMP_WORDS" in proc.stdout and "COMP_CWORD" in proc.stdout


@pytest.mark.parametrize(
    ("instruction", "marker"), [("zsh_source", "#compdef smjac"), ("fish_source", "complete")]
)
def test_zsh_and_fish_scripts_too(instruction, marker):
    proc = smjac(_SMJAC_COMPLETE=instruction)
    assert proc.returncode == 0 and marker in proc.stdout


def test_an_unknown_shell_is_said_not_an_internal_error():
    proc = smjac(_SMJAC_COMPLETE="tcsh_source")
    assert proc.returncode == 1
    assert "tcsh not supported" in proc.stderr and "internal error" not in proc.stderr


def test_a_completion_request_without_the_shell_s_words_is_said_not_an_internal_error():
    env = {k: v for k, v in os.environ.items() if k not in ("COMP_WORDS", "COMP_CWORD")}
    proc = subprocess.run(
        [str(SMJAC)],
        capture_output=True,
        text=True,
        env={**env, "_SMJAC_COMPLETE": "bash_complete"},
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        "Error: _SMJAC_COMPLETE=bash_complete is for the shell's completion script, which sets "
        "'COMP_WORDS'; install it with smjac --install-completion\n"
    )


@pytest.mark.parametrize(
    ("words", "cword", "offered"),
    [
        ("smjac gr", 1, ["grad"]),
        ("smjac ", 1, ["forward", "jacobian", "grad", "check", "verify", "inspect", "demo", "samples"]),
        ("smjac grad --ta", 2, ["--target"]),
        ("smjac verify --grad-", 2, ["--grad-b"]),
    ],
)
def test_completing_a_word_with_comp_words_and_comp_cword(words, cword, offered):
    env = {"_SMJAC_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    proc = smjac(**env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == offered
    in_process = CliRunner().invoke(app, [], env={**env, "_SMJAC_COMPLETE": "complete_bash"})
    assert in_process.exit_code == 0 and in_process.stdout.split() == offered


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_gr_to_grad_with_the_script_it_sources():
    # what a user's shell does: source the script, then ask its function with COMP_WORDS/COMP_CWORD
    script = (
        'source <(_SMJAC_COMPLETE=bash_source "$SMJAC")\n'
        "COMP_WORDS=(smjac gr); COMP_CWORD=1\n"
        '_smjac_completion "$SMJAC"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "--norc", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "SMJAC": str(SMJAC)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "grad\n"


def test_the_help_offers_the_script():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
