"""The process's own streams and signals, made honest before a command runs.

:func:`prepare` is called once by the console entry point (never on import, never in tests that
run commands in process):

* A closed stdin, stdout or stderr (``>&-``, ``2>&-``) is held open on the null device, so no
  file smjac opens can take its number and receive messages or results meant for the stream; a
  closed stdout then refuses every write (exit 2), a closed stderr swallows notes.
* stdout and stderr write through :class:`_AllOrError`: every byte is written, or the write
  raises. A plain unbuffered stdout (``PYTHONUNBUFFERED=1``) passes a short write at a full
  disk or a file size limit as success and cuts the output short with exit 0.
* A stream whose encoding cannot take smjac's symbols (``PYTHONIOENCODING=ascii``, ``LC_ALL=C``)
  gets ASCII stand-ins instead: h₀ → h0, → → ->, × → x.
* The signals whose default is to end the process (:data:`STOP_SIGNALS`: SIGTERM, SIGINT, and
  where the platform has them SIGHUP, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU from ``ulimit -t``,
  SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT) raise :class:`Interrupted`, so a file being
  written is removed, and the process ends with 128 + the signal's number, as shells expect.
  SIGQUIT keeps its core dump, for debugging; the real-time signals are left to the C library
  and the threads that use them.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

from ..errors import ExitStatus
from ..notation import ASCII

STOP_SIGNALS = (
    *("SIGTERM", "SIGHUP", "SIGINT", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGXCPU", "SIGVTALRM"),
    *("SIGPROF", "SIGIO", "SIGPWR", "SIGSTKFLT"),
)


class Interrupted(BaseException):
    """A signal asked the process to stop; ``status`` is 128 + its number.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` does not swallow it,
    and not a KeyboardInterrupt, so that click does not turn it into "Aborted!" and exit 1.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.status = ExitStatus.signalled(signum)


# The temporary files being written (smjac.outputs.atomic): a stop signal removes them before it
# raises, so that no moment between a temporary file's creation and its renaming can leave it behind.
temporaries: set[str] = set()
_held: list[int] | None = None  # inside signals_held(): the stop signals that arrived, to act on after
_stopped_at: float | None = None  # when a stop signal last raised Interrupted
GRACE = 1.0  # seconds after one stop signal in which the next ones are let be


def _raise(signum: int, frame: Any) -> None:
    """The handler of the stop signals; Python runs it in the main thread, whichever thread the
    signal reached.

    Held back inside :func:`signals_held`. A signal that follows one that raised by less than
    :data:`GRACE` seconds (a burst: ^C^C, a supervisor's repeated TERM) is let be, so that it does
    not break off the clean-up the first one started; a later one acts again, since Python swallows
    an exception raised where it cannot propagate (a finaliser), and the first may have been lost.
    """
    if _held is not None:
        _held.append(signum)
        return
    _stop(signum)


def _stop(signum: int) -> None:
    global _stopped_at
    now = time.monotonic()
    if _stopped_at is not None and now - _stopped_at < GRACE:
        return
    _stopped_at = now
    for name in list(temporaries):
        with contextlib.suppress(OSError):
            os.unlink(name)
        temporaries.discard(name)
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back the stop signals for a few statements that must run together (a file created and
    recorded in :data:`temporaries`; renamed and forgotten): one that arrives acts as the block ends.

    It holds back smjac's own handler only (installed by :func:`prepare`); it changes no signal
    mask, which in a process with BLAS threads would hold back nothing: the kernel hands the
    signal to a thread that does not block it, and Python runs the handler in the main thread.
    """
    global _held
    if _held is not None:  # already held by an outer block, which acts on what arrives
        yield
        return
    _held = []
    try:
        yield
    finally:
        arrived, _held = _held, None
        if arrived:
            _stop(arrived[0])


class _AllOrError(io.RawIOBase):
    """A file descriptor written whole: a short write is followed by the rest until it fails.

    When the stream's encoding cannot take UTF-8 text, the bytes (always UTF-8 from smjac's
    text layer, and from click's, which picks UTF-8 for an ASCII stream) are turned into that
    encoding with :data:`ASCII` stand-ins and a backslash escape for anything else (``\\xdc``
    for Ü: a name stays legible, where ``?`` lost it).
    """

    def __init__(self, fd: int, *, closed: bool = False, encoding: str = "utf-8"):
        super().__init__()
        self.fd, self.was_closed = fd, closed
        self.encoding = encoding
        self.convert = codecs.lookup(encoding).name != "utf-8"
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return not self.was_closed and os.isatty(self.fd)

    def write(self, data: Any) -> int:
        if self.was_closed:
            raise OSError(errno.EBADF, "it was closed when smjac started")
        size = memoryview(data).nbytes
        view = memoryview(data).cast("B")
        if self.convert:
            text = self.decoder.decode(bytes(view)).translate(ASCII)
            view = memoryview(text.encode(self.encoding, errors="backslashreplace"))
        while view.nbytes:
            written = os.write(self.fd, view)
            view = view[written:]
        return size


def _stream(fd: int, closed: bool, encoding: str, errors_quiet: bool) -> io.TextIOWrapper:
    raw = _AllOrError(fd, closed=closed, encoding=encoding)
    buffer = io.BufferedWriter(raw, buffer_size=1 << 16)
    kind = _Quiet if errors_quiet else _Text
    return kind(buffer, encoding="utf-8", errors="replace", smjac_encoding=encoding)


class _Text(io.TextIOWrapper):
    """stdout: UTF-8 text over :class:`_AllOrError`, knowing what the stream itself takes."""

    def __init__(self, buffer: Any, *, smjac_encoding: str, **kwargs: Any):
        super().__init__(buffer, **kwargs)
        self.smjac_encoding = smjac_encoding


class _Quiet(_Text):
    """stderr: where smjac would report a failure to write, so a failure to write is let be."""

    def write(self, s: str) -> int:
        try:
            return super().write(s)
        except (OSError, ValueError):
            return len(s)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().flush()


def _c_locale() -> bool:
    """Whether the user's locale is C or POSIX, which promises ASCII: Python itself then writes
    UTF-8 (its UTF-8 mode), unless told an encoding (PYTHONIOENCODING) or UTF-8 (PYTHONUTF8=1)."""
    if os.environ.get("PYTHONIOENCODING") or os.environ.get("PYTHONUTF8") == "1":
        return False
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = os.environ.get(var)
        if value:
            return value in ("C", "POSIX")
    return False


def prepare() -> None:
    """Make the standard streams and the stop signals behave as the module docstring says."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if 0 in closed:
        sys.stdin = None
    for fd, name in ((1, "stdout"), (2, "stderr")):
        old = getattr(sys, name)
        encoding = (getattr(old, "encoding", None) or "utf-8") if old is not None else "utf-8"
        if _c_locale():
            encoding = "ascii"
        with contextlib.suppress(Exception):
            if old is not None:
                old.flush()
        setattr(sys, name, _stream(fd, fd in closed, encoding, errors_quiet=fd == 2))
    for name in STOP_SIGNALS:
        # a signal the parent chose to ignore (nohup, a background job's SIGINT) stays ignored
        if hasattr(signal, name) and signal.getsignal(getattr(signal, name)) is not signal.SIG_IGN:
            signal.signal(getattr(signal, name), _raise)
    # Every result is checked for NaN and infinity where it is made, and refused with its cause;
    # numpy's RuntimeWarnings on the way (with source lines) would only be noise on stderr.
    warnings.filterwarnings("ignore", category=RuntimeWarning)
