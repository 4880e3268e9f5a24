"""The process as the writer sees it, read once: its streams, whether they are terminals, their
size and the one decision about colour (``--color``, then NO_COLOR and FORCE_COLOR).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple, TextIO


def color_choice(color: str, environ: Mapping[str, str]) -> str:
    """``--color`` as it applies: ``auto`` follows NO_COLOR, then FORCE_COLOR, when set (not empty).

    >>> color_choice("auto", {"FORCE_COLOR": "1"}), color_choice("never", {"FORCE_COLOR": "1"})
    ('always', 'never')
    >>> color_choice("auto", {"NO_COLOR": "1", "FORCE_COLOR": "1"}), color_choice("auto", {"NO_COLOR": ""})
    ('never', 'auto')
    """
    if color != "auto":
        return color  # the command line wins over the environment
    if environ.get("NO_COLOR", "") != "":  # no-color.org
        return "never"
    if environ.get("FORCE_COLOR", "") != "":  # force-color.org
        return "always"
    return "auto"


class Environment(NamedTuple):
    """The facts about the process the writer needs, read once (tests pass their own).

    ``no_color`` and ``force_color`` are the one decision about colour: ``--color`` (never,
    always) or else NO_COLOR and FORCE_COLOR. Forced, stdout is drawn as a terminal would be
    (a table by default, in colour) even when it is a pipe or a file: :attr:`pretty`.
    """

    stdout: TextIO
    stderr: TextIO
    stdout_isatty: bool
    stderr_isatty: bool
    no_color: bool
    width: int
    height: int
    force_color: bool = False

    @classmethod
    def read(cls, color: str = "auto") -> Environment:
        """The process as it is, with ``color`` (auto, always, never) from ``--color``."""

        def tty(stream: Any) -> bool:
            try:
                return bool(stream.isatty())
            except (ValueError, OSError, AttributeError):
                return False

        size = shutil.get_terminal_size()
        choice = color_choice(color, os.environ)
        return cls(
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdout_isatty=tty(sys.stdout),
            stderr_isatty=tty(sys.stderr),
            no_color=choice == "never",
            width=max(20, min(size.columns, 4096)),  # whatever COLUMNS says, a size rich can lay out
            height=max(4, min(size.lines, 4096)),
            force_color=choice == "always",
        )

    @property
    def pretty(self) -> bool:
        """Whether stdout is drawn for a person: a terminal, or colour forced."""
        return self.stdout_isatty or self.force_color

    @property
    def encoding(self) -> str:
        # smjac.outputs.streams keeps stdout's text layer in UTF-8 and converts below it; rich must still
        # know what the stream takes, to draw its boxes in ASCII where it takes nothing more.
        stream = self.stdout
        return (
            getattr(stream, "smjac_encoding", None) or getattr(stream, "encoding", None) or "utf-8"
        ).lower()
