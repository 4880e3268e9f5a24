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


def commands(text: str) -> list[str]:
    return [m["cmd"] for m in BLOCK.finditer(text)]


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
    print(f"updated {README.relative_to(ROOT)}", file=sys.stderr)
