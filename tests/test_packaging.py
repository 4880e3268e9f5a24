"""The sdist and the wheel, built from this tree: the sdist is the whole project (its tests run
from it), the wheel is the package with its samples, typing marker, licence and metadata.

CI goes further (.ci/run): it installs the wheel outside the tree and runs the README's first
command and every --help example there, and runs the suite from the unpacked sdist on the oldest
Python with the oldest dependencies and on the newest with the newest.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

pytest.importorskip("build", reason="the dev extra installs build")
pytest.importorskip("setuptools", reason="the dev extra installs setuptools")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from it, as ``python -m build`` makes them (offline: the
    build backend is the one installed here)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel


def _sdist_files(sdist: Path) -> dict[str, bytes]:
    with tarfile.open(sdist) as tar:
        return {
            m.name.split("/", 1)[1]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def _tracked() -> list[str] | None:
    """The files git tracks here and has on disk; None outside a clone (in an unpacked sdist)."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [n for n in out.decode().split("\0") if n and (ROOT / n).is_file()]


def test_the_sdist_holds_the_whole_project(dist):
    files = _sdist_files(dist[0])
    for name in ["LICENSE", "CHANGELOG.md", "README.md", "mkdocs.yml", "setup.py", ".ci/run", "tests/conftest.py", "tests/readme.py", "docs/index.md", "samples/blog/W.json"]:  # fmt: skip
        assert name in files, name
    tracked = _tracked()
    if tracked is None:
        pytest.skip("not a git clone: the files git tracks are not known here")
    missing = sorted(set(tracked) - set(files) - {".gitignore"})
    assert not missing, f"tracked files the sdist leaves out (MANIFEST.in): {missing}"


def test_the_sdist_holds_no_build_litter(dist):
    assert not [n for n in _sdist_files(dist[0]) if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]


def test_the_wheel_carries_the_samples_byte_for_byte(dist):
    with zipfile.ZipFile(dist[1]) as whl:
        shipped = {
            n.removeprefix("smjac/_samples/"): whl.read(n)
            for n in whl.namelist()
            if n.startswith("smjac/_samples/")
        }
    repository = {
        p.relative_to(ROOT / "samples").as_posix(): p.read_bytes()
        for p in (ROOT / "samples").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped.keys() == repository.keys()
    assert all(shipped[n] == repository[n] for n in shipped)


def test_the_wheel_is_the_package_its_marker_licence_and_metadata(dist):
    with zipfile.ZipFile(dist[1]) as whl:
        names = whl.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(whl.read(meta))
    assert {"smjac/py.typed", "smjac/data/blog.json", "smjac/cli/whole.py", "smjac/samples.py"} <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "docs/", "samples/", "benchmarks/"))]
    assert not [n for n in names if "__pycache__" in n]
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.10"
    classifiers = metadata.get_all("Classifier")
    for v in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {v}" in classifiers
    assert "Operating System :: OS Independent" in classifiers and "Typing :: Typed" in classifiers
    assert metadata["Keywords"]
