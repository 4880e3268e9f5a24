"""What starting smjac loads: a set of modules, which is deterministic where a time is not.

Start-up is timed by ``benchmarks/bench.py --sections startup`` (and ``benchmarks/startup.py``),
side by side with ``python -c "import numpy"``; these tests notice the usual way it slips, a
module that a run does not need imported at every start.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

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
    # the other commands and the whole app: a run imports the command it names
    "smjac.cli.app",
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


def imported_by(*args: str) -> set[str]:
    """Every module a fresh ``python ARGS`` imports (or tries to), as ``-X importtime`` lists them."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", proc.stderr, flags=re.M))
    assert "numpy" in names  # the listing is read right
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
def test_forward_on_the_sample_loads_nothing_it_does_not_use(suffix):
    names = imported_by(
        "-m", "smjac", "forward", "-W", str(SAMPLE / f"W.{suffix}"), "-x", str(SAMPLE / f"x.{suffix}")
    )
    assert "smjac.maths.forward_pass" in names and "orjson" in names  # text is read through orjson
    assert loaded(names, NOT_FOR_FORWARD) == []
    assert loaded(names, ("smjac.checking",)) == sorted(CHECKER_DEFAULTS)


def test_forward_between_npy_files_leaves_the_text_codec_unloaded(tmp_path):
    names = imported_by(
        "-m",
        "smjac",
        "forward",
        "-W",
        str(SAMPLE / "W.npy"),
        "-x",
        str(SAMPLE / "x.npy"),
        "-o",
        str(tmp_path / "f.npz"),
    )
    assert (tmp_path / "f.npz").exists()
    assert loaded(names, ("orjson", *(m for m in NOT_FOR_FORWARD if m != "zipfile"))) == []  # .npz is a zip
