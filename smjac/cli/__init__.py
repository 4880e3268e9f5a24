"""smjac's command line: :data:`app`, and :func:`main`, the console entry point.

A Ctrl-C while the command line is still being imported (typer, click and the commands take a
good part of start-up) ends the process quietly with 130, as it would once :func:`main` runs:
a traceback of an import is no answer to a person who changed their mind.
"""

import os
import signal

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
    from .app import app, main
finally:
    if _before is not None:
        signal.signal(signal.SIGINT, _before)  # type: ignore[arg-type]

__all__ = ["app", "main"]
