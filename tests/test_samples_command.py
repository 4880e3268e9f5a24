"""smjac samples: the files the examples read, written into any folder's samples/, never over a
user's own without --force; and every help whose examples read them says so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smjac import samples
from smjac.cli import app
from smjac.cli.samples import HINT
from smjac.errors import OutputError

from .conftest import ROOT
from .readme import command_names

ENV = {"COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1"}


def run(*args: str):
    return CliRunner().invoke(app, ["samples", *args], env=ENV)


def written(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_samples_are_the_repositorys():
    # From a source tree, the repository's own samples/; a wheel's copy is checked in test_packaging.
    assert samples.folder() in (ROOT / "samples", samples.PACKAGED)
    expected = {
        p.relative_to(ROOT / "samples").as_posix() for p in (ROOT / "samples").rglob("*") if p.is_file()
    }
    assert set(samples.names()) == {n for n in expected if "__pycache__" not in n}
    assert {
        "blog/W.json",
        "blog/x.json",
        "mistakes/missing-one-hot.json",
        "model/classifier.safetensors",
    } <= set(samples.names())


def test_writes_every_sample_into_samples(tmp_path):
    result = run(str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    n = len(samples.names())
    assert result.stderr == f"wrote {n} sample files into {tmp_path / 'samples'}/\n"
    assert written(tmp_path / "samples") == {
        name: (samples.folder() / name).read_bytes() for name in samples.names()
    }


def test_a_folder_not_there_is_made_and_a_file_in_its_way_refused(tmp_path):
    # "Directory ... does not exist": the help says DIR is where samples/ goes, as mkdir -p makes it
    result = run(str(tmp_path / "new" / "deep"))
    assert result.exit_code == 0, result.stderr
    assert set(written(tmp_path / "new" / "deep" / "samples")) == set(samples.names())
    (tmp_path / "f").write_bytes(b"")
    for target in (tmp_path / "f", tmp_path / "f" / "g"):
        result = run(str(target))
        assert result.exit_code == 2 and result.stdout == ""
        assert "is a file" in result.stderr and "internal error" not in result.stderr
    assert (tmp_path / "f").read_bytes() == b"" and not (tmp_path / "f.tmp").exists()
    with pytest.raises(OutputError, match=r"f: is a file where the folder .*g would go"):
        samples.write(tmp_path / "f" / "g")


def test_the_current_folder_by_default_and_again_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run().exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "samples").rglob("*")}
    result = run(".")
    assert result.exit_code == 0
    assert result.stderr == f"samples/ already holds smjac's {len(samples.names())} sample files\n"
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "samples").rglob("*")} == before


def test_a_changed_file_is_refused_before_anything_is_written(tmp_path):
    run(str(tmp_path))
    mine, gone = tmp_path / "samples/blog/W.json", tmp_path / "samples/blog/x.json"
    mine.write_text("[[1, 2], [3, 4]]")
    gone.unlink()
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {mine} differs from smjac's sample file; add --force to replace it\n"
    assert mine.read_text() == "[[1, 2], [3, 4]]" and not gone.exists()


def test_several_changed_files_are_counted(tmp_path):
    run(str(tmp_path))
    for name in ("blog/W.json", "blog/x.json", "batch/W.json"):
        (tmp_path / "samples" / name).write_text("[]")
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert (
        "batch/W.json and 2 more differ from smjac's sample files; add --force to replace them"
        in result.stderr
    )


def test_force_replaces_what_differs_and_keeps_the_rest(tmp_path):
    run(str(tmp_path))
    mine = tmp_path / "samples/blog/W.json"
    mine.write_text("[]")
    (tmp_path / "samples/blog/x.json").unlink()
    result = run(str(tmp_path), "--force")
    assert result.exit_code == 0, result.stderr
    n = len(samples.names())
    assert (
        result.stderr
        == f"wrote 2 sample files (1 replaced) into {tmp_path / 'samples'}/; {n - 2} were there already\n"
    )
    assert mine.read_bytes() == (samples.folder() / "blog/W.json").read_bytes()


def test_quiet_says_nothing(tmp_path):
    result = run(str(tmp_path), "--quiet")
    assert (result.exit_code, result.stderr) == (0, "")
    assert (tmp_path / "samples/blog/W.json").is_file()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "samples").write_text(""), "samples: is a file where smjac's samples need a folder"),
        (lambda d: (d / "samples/blog").mkdir(parents=True) or (d / "samples/blog/W.json").mkdir(), "samples/blog/W.json: is a folder where smjac's sample file blog/W.json goes"),
    ],
    ids=["file for the folder", "folder for a file"],
)  # fmt: skip
def test_what_is_in_the_way_is_named(tmp_path, make, message):
    make(tmp_path)
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path}/{message}\n"
    assert not (tmp_path / "samples/blog/x.json").exists()


def test_the_library_says_force_not_the_flag(tmp_path):
    samples.write(tmp_path)
    (tmp_path / "samples/blog/W.json").write_text("[]")
    with pytest.raises(OutputError, match=r"differs from smjac's sample file; force=True replaces it$"):
        samples.write(tmp_path)
    assert samples.write(tmp_path, force=True).differ == ["blog/W.json"]


def _help(name: str) -> str:
    return CliRunner().invoke(app, [*([name] if name else []), "--help"], env=ENV).stdout


@pytest.mark.parametrize("name", ["", *command_names()])
def test_a_help_whose_examples_read_samples_says_where_they_come_from(name):
    text = _help(name)
    examples = text.split("Example", 1)[-1].split("\n\n", 1)[0] if "Example" in text else ""
    if name != "samples" and "samples/" in examples:
        assert " ".join(HINT.split()) in " ".join(text.split())
    if name == "samples":
        assert "smjac samples ." in examples


def test_the_readmes_first_command_works_in_an_empty_folder(tmp_path):
    # What a user who installed a wheel runs, with this environment's smjac: no samples/ around.
    setup = re.search(r"## Set-up.*?```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert setup
    first = setup[1].split("pip install . && ", 1)[1]
    assert first.startswith("smjac samples . && smjac ")
    env = {**os.environ, **ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", first], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("0.0154465")  # dh/dW's first entry, as the post prints it


def test_a_folder_smjac_cannot_make_is_refused_in_one_line_naming_it(tmp_path, monkeypatch):
    # a name too long was an internal error; a link to nothing was blamed on samples/batch
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "x")
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    cases = {
        "n" * 300: "cannot write samples/ there (",
        str(tmp_path / "dangling"): "dangling: is a link that leads to no folder",
        str(tmp_path / "dangling" / "x"): "dangling: is a link that leads to no folder where the folder",
        str(tmp_path / "l1"): "l1: is a link that leads to no folder",
    }
    for target, said in cases.items():
        result = run(target)
        assert result.exit_code == 2 and result.stdout == "", target
        line = result.stderr.strip()
        assert "\n" not in line and said in line and "internal error" not in line, line
    assert not (tmp_path / "nowhere").exists()
