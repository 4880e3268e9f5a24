"""Keep the README and the documentation pages true by running their examples.

A block in README.md or in a page of docs/ written as::

    <!-- run: smjac forward -W samples/blog/W.json -x samples/blog/x.json -->
    ...anything...
    <!-- end -->

is replaced by a console block showing the command and what it printed (stdout and stderr, in the
order a terminal shows them) and, when it is not 0, its exit status. A block opened with
``<!-- python: module:function -->`` holds what that function of the package returns (a table
made from the code), and one opened with ``<!-- generated: NAME -->`` holds what a generator of
this module makes (``cli-reference``: every command's ``--help``, the commands listed by the app).

``tests/test_docs.py`` fails when a page differs from a fresh run; ``python -m tests.readme``
rewrites every page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- run: (?P<cmd>[^\n]+?) -->\n)(?P<body>.*?)(<!-- end -->)", re.DOTALL)
# Pages are read at 80 columns, so the examples are run at that width.
ENV = {
    "COLUMNS": "80",
    "TERMINAL_WIDTH": "80",
    "NO_COLOR": "1",
    "TERM": "dumb",
    "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as on a terminal
}


def pages() -> list[Path]:
    """Every page whose examples are kept true: the README, then each page of the docs site."""
    return [README, *sorted(DOCS.glob("*.md"))]


def run(cmd: str) -> tuple[str, int]:
    """Run a documented command as a reader would, from a folder holding the repository's samples/.

    The folder is a fresh temporary one, so an example that writes a file leaves the repository
    alone; the installed smjac comes first on PATH. Plain bash, as a reader's shell: a pipeline's
    status is its last command's (no pipefail).
    """
    env = {**os.environ, **ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "samples").symlink_to(ROOT / "samples")
        proc = subprocess.run(
            ["bash", "-c", cmd],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
    return proc.stdout, proc.returncode


def console(cmd: str) -> str:
    """A console block: the command, what it printed, and its exit status when not 0."""
    output, code = run(cmd)
    lines = [f"$ {cmd}", *(line.rstrip() for line in output.rstrip().splitlines())]
    if code:
        lines.append(f"# exit status {code}")
    return "```console\n" + "\n".join(lines) + "\n```\n"


GENERATED = re.compile(r"(<!-- python: (?P<fn>[\w.]+:\w+) -->\n)(?P<body>.*?)(<!-- end -->)", re.DOTALL)
MADE = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end -->)", re.DOTALL)


def generated(fn: str) -> str:
    """What a function of the package writes into a page (a table made from the code)."""
    import importlib

    module, name = fn.split(":")
    return getattr(importlib.import_module(module), name)()


def command_names() -> list[str]:
    """The app's commands, in the order its --help lists them."""
    from smjac.cli import app

    return [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]


def cli_reference() -> str:
    """Every command's --help, as the installed program prints it, one section per command."""
    sections = []
    for name in ["", *command_names()]:
        title = f"smjac {name}".strip()
        sections.append(f"## `{title}`\n\n" + console(f"{title} --help"))
    return "\n".join(sections)


GENERATORS: dict[str, Callable[[], str]] = {"cli-reference": cli_reference}


def render(text: str) -> str:
    """The page with every generated and example block made afresh."""
    text = GENERATED.sub(lambda m: m.group(1) + generated(m["fn"]) + m.group(4), text)
    text = MADE.sub(lambda m: m.group(1) + GENERATORS[m["name"]]() + m.group(4), text)
    return BLOCK.sub(lambda m: m.group(1) + console(m["cmd"]) + m.group(4), text)


# A number as a table or CSV prints it.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")
NOISE = 1e-9  # below this a figure is noise: round-off, or a finite difference's error
FULL = 13  # a figure printed with this many significant digits or more is at full precision


def same(shown: str, fresh: str) -> bool:
    """Whether a page's block says what a fresh run says, allowing for round-off alone.

    Some figures are noise by nature, and their digits depend on the order in which a BLAS
    kernel adds (which differs between CPUs and thread counts): a check's error figures (2.11e-17
    on one machine, 6.70e-18 on another; 8.12e-12 or 6.33e-12 from finite differences) sit
    far below tolerances of 1e-8 or more, and the last digit of a number printed at full
    precision is round-off. So figures under ``NOISE`` in size match each other, full-precision
    figures match to 1e-14 relative, every other figure must match to the digit, and all words
    and punctuation must match (spaces are folded, since a table pads a column to its widest
    figure). What is meant to be stable, the verdicts, tolerances and printed digits, is held.
    """
    a, b = _NUMBER.split(shown), _NUMBER.split(fresh)
    if len(a) != len(b) or [" ".join(t.split()) for t in a] != [" ".join(t.split()) for t in b]:
        return False
    return all(
        _same_figure(x, y) for x, y in zip(_NUMBER.findall(shown), _NUMBER.findall(fresh), strict=True)
    )


def _same_figure(x: str, y: str) -> bool:
    if x == y:
        return True
    u, v = float(x), float(y)
    if abs(u) < NOISE and abs(v) < NOISE:
        return True
    digits = min(len(s.split("e")[0].lstrip("+-0.").replace(".", "")) for s in (x, y))
    return digits >= FULL and abs(u - v) <= 1e-14 * max(abs(u), abs(v))


def commands(text: str) -> list[str]:
    return [m["cmd"] for m in BLOCK.finditer(text)]


def main() -> None:
    for page in pages():
        old = page.read_text()
        new = render(old)
        if new != old:
            page.write_text(new)
        print(f"{'updated' if new != old else 'unchanged'} {page.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
