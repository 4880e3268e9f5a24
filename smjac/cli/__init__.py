"""smjac's command line: :data:`app`, and :func:`main`, the console entry point.

Importing this package loads nothing more: :func:`main` imports the command line (typer, click,
numpy and the commands), and :data:`app` is made on first use.
"""

import gc
import os
import signal
from typing import TYPE_CHECKING, NoReturn

from ..errors import ExitStatus

if TYPE_CHECKING:
    from .whole import app


def main() -> NoReturn:
    """Console entry point: import the command line, then run it (see ``entry.main``).

    Two things belong to the import, which is most of a short run:

    * A Ctrl-C while it runs ends the process quietly with 130, as it would once the command runs:
      a traceback of an import is no answer to a person who changed their mind.
    * The garbage collector is paused. Importing numpy and typer makes hundreds of thousands of
      objects that live as long as the process, and each pass the collector makes over them finds
      nothing to free: measured, about a tenth of a run on the sample. Once imported they are
      frozen (``gc.freeze``, moved out of every later pass) and the collector runs as before for
      the command's own work. This is the process's own: main ends it.
    """
    before = _while_importing()
    collecting = gc.isenabled()
    gc.disable()
    try:
        from .entry import main as run
    except Exception as e:  # a broken install (numpy that fails to import, say): 2, not Python's 1
        import sys

        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        print(f"Error: smjac cannot start: {type(e).__name__}: {first}", file=sys.stderr)  # one line
        os._exit(ExitStatus.ERROR)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
        if before is not None:
            signal.signal(signal.SIGINT, before)  # type: ignore[arg-type]
    run()


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


def __getattr__(name: str) -> object:
    """:data:`app`, the whole app, made on first use: a run of one command makes only that one."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .whole import app

    globals()["app"] = app  # kept: the next use is a plain lookup
    return app


__all__ = ["app", "main"]
