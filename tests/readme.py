"""Keep the README's command examples true by running them.

A block in README.md written as::

    <!-- run: smjac forward -W samples/blog/W.json -x samples/blog/x.json -->
    ...anything...
    <!-- end -->

is replaced by a console block showing the command and what it printed (stdout and stderr, in the
order a terminal shows them) and, when it is not 0, its exit status. ``tests/test_docs.py`` fails
when the README differs from a fresh run; ``python -m tests.readme`` rewrites it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- run: (?P<cmd>.+?) -->\n)(?P<body>.*?)(<!-- end -->)", re.DOTALL)
ENV = {
    "COLUMNS": "100",
    "TERMINAL_WIDTH": "100",
    "NO_COLOR": "1",
    "TERM": "dumb",
    "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as on a terminal
}


def run(cmd: str) -> tuple[str, int]:
    """Run a README command as a reader would, from a folder holding the repository's samples/.

    The folder is a fresh temporary one, so an example that writes a file leaves the repository
    alone; the installed smjac comes first on PATH.
    """
    env = {**os.environ, **ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "samples").symlink_to(ROOT / "samples")
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
    return proc.stdout, proc.returncode


def render(text: str) -> str:
    def block(m: re.Match[str]) -> str:
        output, code = run(m["cmd"])
        lines = [f"$ {m['cmd']}", *(line.rstrip() for line in output.rstrip().splitlines())]
        if code:
            lines.append(f"# exit status {code}")
        return m.group(1) + "```console\n" + "\n".join(lines) + "\n```\n" + m.group(4)

    return BLOCK.sub(block, text)


# A number as a table or CSV prints it.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")
NOISE = 1e-9  # below this a figure is noise: round-off, or a finite difference's error
FULL = 13  # a figure printed with this many significant digits or more is at full precision


def same(shown: str, fresh: str) -> bool:
    """Whether a README block says what a fresh run says, allowing for round-off alone.

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


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
    print(f"updated {README.relative_to(ROOT)}", file=sys.stderr)
