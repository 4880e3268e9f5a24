"""The Python API as a user meets it: the version, the names `import smjac` offers, the layer's
options taken once, and the types a user's type checker sees."""

from __future__ import annotations

import re

import smjac

from .conftest import ROOT


def test_the_version_is_one_fact_and_the_changelog_s_newest():
    # setuptools reads the version from smjac.__version__ (a literal: no import, no metadata look-up)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = pyproject.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project and not re.search(r"^version\s*=", project, re.M)
    assert 'version = { attr = "smjac.__version__" }' in pyproject
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert newest is not None and smjac.__version__ == newest.group(1) == "0.3.0"
