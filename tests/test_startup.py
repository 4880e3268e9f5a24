"""What starting smjac loads: a set of modules, which is deterministic where a time is not.

Start-up is timed by ``benchmarks/bench.py --sections startup``, side by side with ``python -c
"import numpy"``; these tests notice the usual way it slips, a module that a run does not need
imported at every start.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT

SAMPLE = ROOT / "samples" / "blog"

# Never needed to compute and print a forward pass: pictures, checkpoints, the checker, the thread
# pool and BLAS control (a small layer runs in the calling thread), Rich (a pipe gets plain data).
NOT_FOR_FORWARD = (
    "rich",
    "matplotlib",
    "PIL",
    "h5py",
    "safetensors",
    "threadpoolctl",
    "concurrent",
    "zipfile",
    "smjac.formats.pictures",
    "smjac.formats.checkpoints",
    "smjac.formats.keras",
    "smjac.formats.pretrained",
    "smjac.formats.heads",
    "smjac.formats.safetensors",
    "smjac.outputs.demo",
    # the maths a forward pass does not do: its names load on first use (smjac.maths.__getattr__)
    "smjac.maths.losses",
    "smjac.maths.gradients",
    "smjac.maths.factors",
    # the other commands and the whole app: a run imports the command it names
    "smjac.cli.whole",
    "smjac.cli.jacobian",
    "smjac.cli.grad",
    "smjac.cli.check",
    "smjac.cli.verify",
    "smjac.cli.demo",
    "smjac.cli.inspection",
    "smjac.samples",
)
# The checker's defaults are shown by the options of check and verify: its tolerances, and nothing else of it.
CHECKER_DEFAULTS = {"smjac.checking", "smjac.checking.tolerances"}


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


# Records every module the command asks for, by an import statement or importlib.import_module
# alike (``-X importtime`` lists only the former, and smjac loads its commands and the maths' names
# with the latter), including those that fail to import; written out as the command exits.
_RECORD = """
import os, runpy, sys
asked = []
class Asked:
    def find_spec(self, name, path=None, target=None):
        asked.append(name)
sys.meta_path.insert(0, Asked())
def write():
    with open(os.environ["SMJAC_TEST_IMPORTS"], "w") as f:
        f.write("\\n".join({*asked, *sys.modules}))
exit_now = os._exit
def _exit(status):
    write()
    exit_now(status)
os._exit = _exit
sys.argv = ["smjac", *sys.argv[1:]]
try:
    runpy.run_module("smjac", run_name="__main__", alter_sys=True)
finally:
    write()
"""


def imported_by(*args: str, tmp_path: Path) -> set[str]:
    """Every module a fresh ``python -m smjac ARGS`` imports, or tries to."""
    record = tmp_path / "imports.txt"
    proc = subprocess.run(
        [sys.executable, "-c", _RECORD, *args],
        capture_output=True,
        env={**_env(), "SMJAC_TEST_IMPORTS": str(record)},
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set(record.read_text().split())
    assert "numpy" in names and "smjac.cli.entry" in names  # the record is read right
    return names


def loaded(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in names if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_import_smjac_loads_its_errors_and_its_first_function_numpy_and_the_maths_only():
    code = (
        "import sys; before = set(sys.modules); import smjac; "
        "print(' '.join(sorted(set(sys.modules) - before))); before = set(sys.modules); smjac.forward; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT, check=True
    ).stdout.splitlines()
    at_import, at_first_use = out[0].split(), out[1].split()
    # importing smjac imports no numpy: a Ctrl-C while the command line starts is smjac's to handle
    assert sorted(m for m in at_import if m.split(".")[0] not in sys.stdlib_module_names) == [
        "smjac",
        "smjac.errors",
    ]
    assert "smjac.maths.forward_pass" in at_first_use and "numpy" in at_first_use
    foreign = sorted(
        m
        for m in at_import + at_first_use
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ("numpy", "smjac")
    )
    assert foreign == []
    ours = sorted(m for m in at_first_use if m.startswith("smjac.") and not m.startswith("smjac.maths"))
    assert ours == []
    assert (
        loaded(set(at_import + at_first_use), ("concurrent", "threadpoolctl", "typer", "rich", "json")) == []
    )


def test_each_name_of_the_maths_is_the_one_its_room_holds():
    # smjac.maths loads its names on first use, looking through its rooms in order; each must be the
    # object that the import shown to the type checker names, whichever room is looked in first
    tree = ast.parse((ROOT / "smjac" / "maths" / "__init__.py").read_text())
    shown = {
        alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
    }
    code = textwrap.dedent(
        """
        import importlib, json, sys
        rooms = json.loads(sys.argv[1])
        import smjac.maths as m
        wrong = [n for n, room in rooms.items()
                 if getattr(m, n) is not getattr(importlib.import_module("smjac.maths." + room), n)]
        print(json.dumps([sorted(m.__all__), wrong]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(shown)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        check=True,
    ).stdout
    listed, wrong = json.loads(out)
    assert listed == sorted(shown) and len(shown) > 60
    assert wrong == []


def test_a_ctrl_c_while_numpy_imports_ends_the_command_quietly():
    # the command line takes SIGINT from its first moment: before, a Ctrl-C while numpy imported
    # (the most of start-up) printed a traceback of the import
    code = textwrap.dedent(
        """
        import os, signal, sys
        class Interrupt:  # a Ctrl-C the moment numpy starts to import
            def find_spec(self, name, path=None, target=None):
                if name == "numpy":
                    sys.meta_path.remove(self)
                    os.kill(os.getpid(), signal.SIGINT)
        sys.meta_path.insert(0, Interrupt())
        sys.argv = ["smjac", "forward", "-W", sys.argv[1], "-x", sys.argv[2]]
        from smjac.cli import main
        main()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(SAMPLE / "W.json"), str(SAMPLE / "x.json")],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "")


@pytest.mark.parametrize("suffix", ["json", "csv"])
def test_forward_on_the_sample_loads_nothing_it_does_not_use(suffix, tmp_path):
    names = imported_by(
        "forward", "-W", str(SAMPLE / f"W.{suffix}"), "-x", str(SAMPLE / f"x.{suffix}"), tmp_path=tmp_path
    )
    assert "smjac.maths.forward_pass" in names and "orjson" in names  # text is read through orjson
    assert loaded(names, NOT_FOR_FORWARD) == []
    assert loaded(names, ("smjac.checking",)) == sorted(CHECKER_DEFAULTS)


def test_forward_between_npy_files_leaves_the_text_codec_unloaded(tmp_path):
    names = imported_by(
        "forward",
        "-W",
        str(SAMPLE / "W.npy"),
        "-x",
        str(SAMPLE / "x.npy"),
        "-o",
        str(tmp_path / "f.npz"),
        tmp_path=tmp_path,
    )
    assert (tmp_path / "f.npz").exists()
    assert loaded(names, ("orjson", *(m for m in NOT_FOR_FORWARD if m != "zipfile"))) == []  # .npz is a zip


# What the collector is doing once the command runs, written to stderr as the input is read.
_COLLECTOR = """
import gc, sys
if sys.argv[1] == "off":
    gc.disable()  # a parent that turned the collector off keeps it off
from smjac import inputs
read = inputs.load_layer
def load_layer(*args, **kwargs):
    print(gc.isenabled(), gc.get_freeze_count(), file=sys.stderr)
    return read(*args, **kwargs)
inputs.load_layer = load_layer
from smjac.cli import main
print("typer" in sys.modules, file=sys.stderr)  # importing the package loads no command line
sys.argv = ["smjac", "forward", "-W", sys.argv[2], "-x", sys.argv[3]]
main()
"""


@pytest.mark.parametrize("before", ["on", "off"])
def test_the_command_line_is_imported_with_the_collector_paused_then_frozen(before):
    proc = subprocess.run(
        [sys.executable, "-c", _COLLECTOR, before, str(SAMPLE / "W.json"), str(SAMPLE / "x.json")],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    imported, state = proc.stderr.splitlines()
    enabled, frozen = state.split()
    assert imported == "False"
    assert enabled == str(before == "on")  # the command's own work is collected as before
    assert int(frozen) > 10_000  # numpy's and typer's objects, out of every later pass
    assert proc.stdout.startswith("z,h\n")


def test_a_broken_install_ends_with_2_in_one_line(tmp_path):
    # a numpy that fails to import: a traceback and exit 1, which scripts read as "disagrees"
    (tmp_path / "numpy").mkdir()
    # as numpy words it: a message of several lines, the first of them blank
    (tmp_path / "numpy" / "__init__.py").write_text('raise ImportError("\\n\\nbroken numpy\\nmore advice")\n')
    proc = subprocess.run(
        [sys.executable, "-c", "from smjac.cli import main; main()", "forward"],
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
        cwd=tmp_path,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "Error: smjac cannot start: ImportError: broken numpy\n"
