"""The README stays true: its examples are what the program prints, and its code runs."""

from __future__ import annotations

import re

import numpy as np

from smjac.cli import app

from . import readme
from .conftest import ROOT

TEXT = readme.README.read_text()


def test_readme_examples_match_a_fresh_run():
    # Words, layout and every figure must match; only round-off may differ (see readme.same).
    fresh = readme.render(TEXT)
    stale = [
        cmd
        for cmd, old, new in zip(readme.commands(TEXT), _blocks(TEXT), _blocks(fresh), strict=True)
        if not readme.same(old, new)
    ]
    assert not stale, f"README blocks are stale (run python -m tests.readme): {stale}"


def test_round_off_is_all_that_may_differ():
    shown = "dh/dz symmetric   2.11e-17   1.00e-09   ok"
    assert readme.same(shown, "dh/dz symmetric   6.70e-18   1.00e-09   ok")
    assert readme.same("h 0.19091352", "h 0.19091352")
    assert not readme.same(shown, "dh/dz symmetric   2.11e-17   1.00e-09   FAIL")
    assert not readme.same(shown, "dh/dz symmetric   2.11e-07   1.00e-09   ok")
    assert not readme.same("h 0.19091352", "h 0.19091353")
    assert not readme.same("0.1 0.2", "0.1 0.2 0.3")
    # finite differences' error, and the last digit of a full-precision figure, are noise too
    assert readme.same(
        "dh/dx = finite differences  8.12e-12  8.85e-08", "dh/dx = finite differences  6.33e-12  8.85e-08"
    )
    assert readme.same("0.038929473837294655", "0.03892947383729466")
    assert not readme.same("0.038929473837294655", "0.03892947383739466")


def _blocks(text: str) -> list[str]:
    return [m["body"] for m in readme.BLOCK.finditer(text)]


def test_readme_examples_exit_as_shown():
    for m in readme.BLOCK.finditer(TEXT):
        shown = re.search(r"# exit status (\d+)", m["body"])
        _, code = readme.run(m["cmd"])
        assert code == (int(shown[1]) if shown else 0), m["cmd"]


def test_every_command_help_is_in_the_readme():
    shown = set(readme.commands(TEXT))
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert {f"smjac {name} --help" for name in names} | {"smjac --help"} <= shown


def test_readme_python_runs():
    (code,) = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert np.all(namespace["J"].shape == (5, 15))


def test_setup_is_two_commands_and_ci_runs_them():
    setup = TEXT.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, re.DOTALL)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci/run").read_text()
    assert "## Set-up" in ci  # .ci/run reads these very commands out of the README


def test_every_example_in_the_help_runs():
    # The examples under "Example(s):" in each command's --help are commands a user will paste.
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    examples = []
    for name in ["", *names]:
        text, _ = readme.run(f"smjac {name} --help".replace("  ", " "))
        block = text.split("Example", 1)[1].split("\n\n", 1)[0]
        examples += [line.strip() for line in block.splitlines()[1:] if line.strip().startswith("smjac ")]
    assert len(examples) >= 13
    for example in examples:
        output, code = readme.run(example)
        assert code == 0, (example, output)
