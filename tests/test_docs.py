"""The README and the documentation pages stay true: their examples are what the program prints,
their generated parts are what the program says, and their code runs."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

from . import readme
from .conftest import ROOT

PAGES = readme.pages()
IDS = [str(p.relative_to(ROOT)) for p in PAGES]
KINDS = (readme.BLOCK, readme.GENERATED, readme.MADE)


@functools.cache
def fresh(page: Path) -> str:
    """The page made afresh, once per test session: every example run, every table regenerated."""
    return readme.render(page.read_text())


def _blocks(text: str) -> list[tuple[str, str]]:
    """Each run or generated block of a page: its opening line and its body, in page order."""
    found = [(m.start(), m.group(1).strip(), m["body"]) for kind in KINDS for m in kind.finditer(text)]
    return [(head, body) for _, head, body in sorted(found)]


def test_the_pages_are_the_readme_and_the_site():
    names = {p.name for p in PAGES}
    assert "README.md" in names and {"index.md", "reference.md", "post.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_examples_match_a_fresh_run(page):
    # Words, layout, exit statuses and every figure must match; only round-off may differ (see
    # readme.same). Generated tables and the CLI reference must match exactly.
    shown, new = _blocks(page.read_text()), _blocks(fresh(page))
    assert [h for h, _ in shown] == [h for h, _ in new]
    stale = [
        head
        for (head, old), (_, body) in zip(shown, new, strict=True)
        if not (readme.same(old, body) if head.startswith("<!-- run:") else old == body)
    ]
    assert not stale, f"{page.name}: blocks are stale (run python -m tests.readme): {stale}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_examples_exit_as_shown(page):
    # The status a page shows is the status a fresh run gives (0 when none is shown).
    def statuses(text: str) -> list[tuple[str, int]]:
        return [
            (m["cmd"], int(s[1]) if (s := re.search(r"^# exit status (\d+)$", m["body"], re.M)) else 0)
            for m in readme.BLOCK.finditer(text)
        ]

    assert statuses(page.read_text()) == statuses(fresh(page))


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
    # an exit status is a figure like any other: it must match
    assert not readme.same("# exit status 1", "# exit status 2")


def test_a_stale_page_is_rewritten():
    page = "intro\n<!-- run: echo hi; exit 3 -->\nold\n<!-- end -->\n<!-- python: smjac.outputs.results:options_matrix -->\n<!-- end -->\n"
    new = readme.render(page)
    assert "```console\n$ echo hi; exit 3\nhi\n# exit status 3\n```\n<!-- end -->" in new
    assert "| `forward` |" in new and new.startswith("intro\n")
    assert readme.render(new) == new  # a page made afresh stays as it is


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_block_is_opened_and_closed(page):
    # A marker the regular expressions miss would leave an example unrun: count them by line.
    text = page.read_text()
    opened = re.findall(r"^<!-- (?:run|python|generated): .+ -->$", text, re.M)
    closed = re.findall(r"^<!-- end -->$", text, re.M)
    assert len(opened) == len(closed) == len(_blocks(text))


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_example_is_run(page):
    # Every fenced block is the output of a run block, a generated block, Python the tests run
    # (below), or one of the README's set-up commands, which .ci/run runs.
    text = page.read_text()
    for kind in KINDS:
        text = kind.sub("", text)
    if page == readme.README:
        text = text.replace(_setup_section(), "")
    fences = re.findall(r"^```(\w*)$", text, re.M)
    assert fences[1::2] == [""] * (len(fences) // 2), "an unclosed fence"
    assert set(fences[0::2]) <= {"python"}, f"{page.name}: fenced blocks no test runs: {fences[0::2]}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_python_on_the_pages_runs(page, tmp_path, monkeypatch):
    # A page's Python blocks run in order in one namespace, from a folder holding samples/.
    code = re.findall(r"^```python\n(.*?)^```$", page.read_text(), re.DOTALL | re.M)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    if page.name == "python.md":
        assert code, "the Python page's example is gone"
    namespace: dict = {}
    for block in code:
        exec(compile(block, str(page), "exec"), namespace)


def test_the_cli_reference_covers_every_command():
    text = (readme.DOCS / "reference.md").read_text()
    assert "<!-- generated: cli-reference -->" in text
    for name in readme.command_names():
        assert f"## `smjac {name}`" in text and f"$ smjac {name} --help" in text
    assert "$ smjac --help" in text


def test_the_site_lists_every_page_and_only_those():
    config = (ROOT / "mkdocs.yml").read_text()
    listed = re.findall(r"^\s+- [^:]+: (\S+\.md)$", config, re.M)
    assert sorted(listed) == sorted(p.name for p in readme.DOCS.glob("*.md"))
    assert listed[0] == "index.md"
    assert not re.search(r"^plugins:", config, re.M)  # the built-in search only: nothing fetched


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_relative_links_lead_to_files(page):
    # mkdocs --strict checks the site's own links; the README's into docs/ are checked here.
    text = page.read_text()
    for kind in KINDS:
        text = kind.sub("", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path = target.split("#")[0]
        assert path and (page.parent / path).exists(), f"{page.name}: broken link {target}"


def test_the_readme_is_a_landing_page():
    text = readme.README.read_text()
    assert len(text.splitlines()) <= 300
    for section in ["## Set-up", "## Check your gradient", "## Your own model", "## Exit codes"]:
        assert f"\n{section}\n" in text
    # Narrow tables: each row fits 80 columns.
    assert all(len(line) <= 80 for line in text.splitlines() if line.startswith("|"))


def _setup_section() -> str:
    return "## Set-up" + readme.README.read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]


def test_setup_is_two_commands_and_ci_runs_them():
    commands = re.findall(r"```bash\n(.*?)\n```", _setup_section(), re.DOTALL)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert "pytest" in commands[1]
    # Each command stands alone (CI runs each in its own shell): both work in the same .venv.
    assert all(". .venv/bin/activate" in c for c in commands)
    ci = (ROOT / ".ci/run").read_text()
    assert "## Set-up" in ci  # .ci/run reads these very commands out of the README
    assert "mkdocs build --strict" in ci


def test_every_example_in_the_help_runs():
    # The examples under "Example(s):" in each command's --help are commands a user will paste.
    examples = []
    for name in ["", *readme.command_names()]:
        text, _ = readme.run(f"smjac {name} --help".replace("  ", " "))
        block = text.split("Example", 1)[1].split("\n\n", 1)[0]
        examples += [line.strip() for line in block.splitlines()[1:] if line.strip().startswith("smjac ")]
    assert len(examples) >= 13
    for example in examples:
        output, code = readme.run(example)
        # verify's examples are mistaken answers on purpose: it finds them wrong, exit 1
        assert code == (1 if example.startswith("smjac verify") else 0), (example, output)


def test_the_post_page_counts_the_digits_right():
    # docs/post.md says how many of the post's printed figures differ from smjac's rounded ones.
    from smjac import jacobian

    from .conftest import BLOG_W, BLOG_X
    from .test_core import POST_DL_CHAIN, POST_DL_SHORTCUT, POST_DS

    def differing(table: str, J: np.ndarray, decimals: int) -> int:
        values = np.array([[float(t) for t in row.split()] for row in table.strip().splitlines()])
        return int(np.sum(np.abs(values - np.round(J, decimals)) > 1e-12))

    dh_dW, dh_dz = jacobian(BLOG_W, BLOG_X), jacobian(BLOG_W, BLOG_X, wrt="z")
    counts = (differing(POST_DL_SHORTCUT, dh_dW, 5), differing(POST_DL_CHAIN, dh_dW, 5))
    text = " ".join((readme.DOCS / "post.md").read_text().split())
    assert counts == (33, 34)
    assert f"{counts[0]} of the 75 entries differ" in text and f"{counts[1]} of the 75 that differ" in text
    assert f"in {differing(POST_DS, dh_dz, 6)} of the 25 entries" in text
