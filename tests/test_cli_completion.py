"""Shell completion: the script in click's spelling and typer's, and completions that work."""

from __future__ import annotations

import os
import shlex
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


WORKING = (
    "use bash_source, zsh_source, fish_source, powershell_source or pwsh_source for the script "
    "(it asks with bash_complete and the like; typer's source_bash, complete_bash, ... work too)"
)


@pytest.mark.parametrize("instruction", ["tcsh_source", "source_tcsh", "bogus", "bash_bogus", "_", "bash_"])
def test_an_unknown_instruction_is_a_usage_error_that_names_those_that_work(instruction):
    # it was click's "Invalid completion instruction." (or "Shell tcsh not supported."), exit 1:
    # the status of a check that found a disagreement
    proc = smjac(_SMJAC_COMPLETE=instruction)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"Error: _SMJAC_COMPLETE={instruction} is not a completion instruction; {WORKING}\n"


@pytest.mark.parametrize("cword", ["abc", "", "1.5", "-1", "3", "99999999999999999999"])
def test_a_comp_cword_that_is_not_a_word_s_index_is_a_usage_error(cword):
    # "abc" was an internal error (int() raised); -1 completed the last word, 3 completed nothing
    env = {"_SMJAC_COMPLETE": "complete_bash", "COMP_WORDS": "smjac jac", "COMP_CWORD": cword}
    proc = smjac(**env)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"Error: COMP_CWORD={shlex.quote(cword)} is not the index of a word in COMP_WORDS (0 to 2); "
        "_SMJAC_COMPLETE=complete_bash is for the shell's completion script: install it with "
        "smjac --install-completion\n"
    )
    in_process = CliRunner().invoke(app, [], env=env)
    assert in_process.exit_code == 2 and in_process.stdout == ""


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
