"""The one exception family smjac raises for bad input or output.

Each is also a ``ValueError`` or ``OSError`` so callers that catch those keep working.
"""


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
