"""The one exception family smjac raises for bad input or output.

Each is also a ``ValueError`` or ``OSError`` so callers that catch those keep working.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit codes, as ``diff`` uses them: the one list, for the writer's results and the CLI's errors."""

    OK = 0
    DISAGREE = 1  # smjac check or verify found a disagreement
    ERROR = 2  # usage error, bad input/output, or anything unexpected
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT
    PIPE_CLOSED = 141  # the reader went away (smjac ... | head): 128 + SIGPIPE, as Unix tools end

    @staticmethod
    def signalled(signum: int) -> int:
        """The status of a process a signal stopped, as shells report it: 128 + its number."""
        return 128 + signum


class SmjacError(Exception):
    """Base of every error smjac reports to a user."""


class ShapeError(SmjacError, ValueError):
    """Arrays whose shapes do not fit together (W against x, upstream against K, ...)."""


class InputError(SmjacError, ValueError):
    """A value that is not allowed: a non-finite number, a class index out of range, ..."""


class LoadError(SmjacError, ValueError):
    """A file or stream that cannot be read as a matrix."""


class OutputError(SmjacError, OSError):
    """A result that cannot be written where it was asked to go."""


@contextlib.contextmanager
def reading(label: str) -> Iterator[None]:
    """The one wording of a file that cannot be opened or read, for every reader."""
    try:
        yield
    except IsADirectoryError:
        raise LoadError(f"{label}: is a directory, not a file") from None
    except FileNotFoundError:
        raise LoadError(f"{label}: no such file") from None
    except PermissionError:
        raise LoadError(f"{label}: permission denied") from None
    except OSError as e:
        raise LoadError(f"{label}: cannot read it ({e.strerror or e})") from None


def size_in_bytes(name: str, size: object) -> int:
    """A size parameter (``max_memory``, ``block_bytes``, ``chunk_bytes``) as an int: the one wording of
    one that is not a whole number of bytes, at least 1, for every room (the maths and the budget).

    >>> size_in_bytes("block_bytes", 0)
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: block_bytes must be a whole number of bytes, at least 1, not 0
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        given = " ".join(repr(size).split())  # one line, even for an array
        raise InputError(
            f"{name} must be a whole number of bytes, at least 1, not {given if len(given) <= 60 else given[:57] + '...'}"
        )
    return int(size)


SHOWN_MOST = 160  # characters of a name a message shows whole


def shown(name: str) -> str:
    """A name from a file (a tensor's, a layer's) as a message shows it: each character that is
    not printable (a newline, ESC) escaped as Python writes it, so that a name can neither break a
    message into lines that pass for smjac's own nor act on a terminal.

    A name past :data:`SHOWN_MOST` characters is shown by its start and its end (its suffix), so
    that a message stays a line a person reads:

    >>> print(shown("classifier.weight"), shown("evil\\n\\x1b[2J.weight"))
    classifier.weight evil\\n\\x1b[2J.weight
    >>> long = shown("d" * 5000 + "/x.csv")
    >>> len(long), long[117:122], long[-8:]
    (160, 'dd…dd', 'dd/x.csv')
    """
    if len(name) > SHOWN_MOST:
        name = name[: SHOWN_MOST - 41] + "…" + name[-40:]
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else _escaped(c) for c in name)


def _escaped(c: str) -> str:
    # a byte the file system's encoding could not decode (held as a lone surrogate) as that byte
    return f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else repr(c)[1:-1]


_ANSI_C = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}


def _ansi_c(c: str) -> str:
    if c in _ANSI_C:
        return _ANSI_C[c]
    if c.isprintable():
        return c
    try:  # its bytes, as the shell will hand them on: the same in any locale
        return "".join(f"\\x{b:02x}" for b in c.encode("utf8", "surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate no file name can hold
        return f"\\u{ord(c):04x}"


def shell_word(value: str) -> str:
    """``value`` as one word for a shell, on one line that can be pasted: as :func:`shlex.quote`
    quotes it, or, when it holds a character that is not printable (a newline, ESC), in bash's
    ``$'…'``, each such character escaped.

    >>> print(shell_word("dense"), shell_word("my model.h5"), shell_word("a\\nb"), shell_word("it's\\x1b"))
    dense 'my model.h5' $'a\\nb' $'it\\'s\\x1b'
    """
    if value.isprintable():
        import shlex

        return shlex.quote(value)
    return "$'" + "".join(map(_ansi_c, value)) + "'"
