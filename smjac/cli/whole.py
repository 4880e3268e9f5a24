"""The whole ``smjac`` app, every command registered: for ``smjac --help``, shell completion, the
tests and the docs. A run of one command builds only that one (:func:`smjac.cli.entry.main`)."""

from .commands import COMMANDS
from .entry import build

app = build(COMMANDS)
