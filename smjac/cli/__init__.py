"""smjac's command line: :data:`app`, and :func:`main`, the console entry point.

A Ctrl-C while the command line is still being imported (typer, click and the commands take a
good part of start-up) ends the process quietly with 130, as it would once :func:`main` runs:
a traceback of an import is no answer to a person who changed their mind.
"""

import os
import signal
from typing import TYPE_CHECKING

from ..errors import ExitStatus


def _stop_quietly(signum: int, frame: object) -> None:
    os._exit(ExitStatus.INTERRUPTED)  # nothing has been written yet: nothing to clean up


def _while_importing() -> object:
    """SIGINT stops the import quietly; returns the handler to put back (None: left as it was:
    ignored by the parent, or another's own, or not the main thread)."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            return signal.signal(signal.SIGINT, _stop_quietly)
    except ValueError:  # signals are the main thread's
        pass
    return None


_before = _while_importing()
try:
    from .entry import main
finally:
    if _before is not None:
        signal.signal(signal.SIGINT, _before)  # type: ignore[arg-type]

if TYPE_CHECKING:
    from .app import app


def __getattr__(name: str) -> object:
    """:data:`app`, the whole app, made on first use: a run of one command makes only that one."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .app import app

    globals()["app"] = app  # in place of the module of that name, which importing it set here
    return app


__all__ = ["app", "main"]
