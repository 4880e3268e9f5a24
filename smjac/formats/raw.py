"""Bytes from a file or stdin (``-``), within the input size cap (``max_bytes``): a file is
refused by its size before it is read, a stream by what it has given, read in pieces.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..budget import DEFAULT_MAX_INPUT_BYTES
from ..errors import LoadError, reading

STDIN = "-"


def one_stdin(*inputs: object) -> None:
    """Refuse, before anything is read, two inputs that would both come from stdin (``-``)."""
    if sum(str(p) == STDIN for p in inputs if p is not None) > 1:
        raise LoadError("- given twice: only one input can come from stdin")


def read_bytes(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_INPUT_BYTES, stdin: BinaryIO | None = None
) -> bytes:
    """The raw bytes of ``path`` (``-`` is stdin), refusing more than ``max_bytes`` before reading."""
    with opened(path, max_bytes, stdin) as (stream, label):
        return all_of(stream, label, max_bytes)


@contextlib.contextmanager
def opened(path: str | Path, max_bytes: int, stdin: BinaryIO | None) -> Iterator[tuple[BinaryIO, str]]:
    """``path`` (``-`` is stdin) open for reading, and its label; a file over ``max_bytes`` is
    refused by its size before anything is read."""
    if str(path) == STDIN:
        if stdin is None and sys.stdin is None:
            raise LoadError("-: stdin is closed; pipe a matrix in (smjac ... -x - < x.json)")
        stream = stdin if stdin is not None else sys.stdin.buffer
        if stream.isatty():
            raise LoadError("-: stdin is a terminal; pipe a matrix in (smjac ... -x - < x.json)")
        yield stream, "stdin"
        return
    label = str(path)
    with reading(label):
        size = os.stat(path).st_size
        if size > max_bytes:
            raise LoadError(too_big(label, size, max_bytes))
        with open(path, "rb") as f:
            yield f, label


def all_of(stream: BinaryIO, label: str, max_bytes: int, head: bytes = b"") -> bytes:
    """``head`` and the rest of ``stream``, refused past ``max_bytes`` in all, or when empty."""
    data = read_upto(stream, max_bytes + 1, head)
    if len(data) > max_bytes:
        raise LoadError(too_big(label, len(data), max_bytes))
    if not data.strip():
        raise LoadError(f"{label}: is empty")
    return data


def read_upto(stream: BinaryIO, limit: int, head: bytes = b"") -> bytes:
    """``head`` and what follows it, at most ``limit`` bytes in all, read in pieces: ``read(limit)``
    would first set aside a buffer of the whole limit, which a large cap (max_bytes of 64 GiB)
    makes fail for a tiny file."""
    parts, size = [head], len(head)
    while size < limit:
        part = stream.read(min(limit - size, 2**24))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def cap_to_read(size: int) -> str:
    """The parameter that lets a file of ``size`` bytes in: ``max_bytes=`` in whole MiB."""
    return f"max_bytes={-(-size // 2**20)}M"


def too_big(label: str, size: int, cap: int) -> str:
    return (
        f"{label}: is over the input size cap of {cap:,} bytes ({size:,} bytes or more); "
        "raise the cap with max_bytes"
    )


def open_file(path: str | Path, *args: object, **kwargs: object) -> BinaryIO:
    """``open``, as :func:`opened` opens a file: the fast text readers open through it too, so that
    every read of a named file goes through one open."""
    return open(path, *args, **kwargs)  # type: ignore[call-overload]
