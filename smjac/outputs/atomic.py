"""Checked, atomic writes: a file appears whole under its name, or not at all."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import OutputError, shown
from ..formats.document import Document
from ..formats.table import Format, encode
from ..formats.text import stream_csv
from . import streams


def check_writable(path: str | Path, *, force: bool = False) -> None:
    """Refuse, before any work, a path whose folder is missing, that is a folder, or that exists
    (unless ``force``). :func:`write_atomic` checks again when it writes."""
    path = Path(path)
    try:
        if not path.parent.is_dir():
            raise OutputError(f"{shown(str(path))}: folder {shown(str(path.parent))} does not exist")
        if path.is_dir():
            raise OutputError(f"{shown(str(path))}: is a directory")
        exists = path.exists()
    except OSError as e:  # a name too long for the file system, say
        name = shown(str(path) if len(str(path)) <= 60 else f"{str(path)[:60]}…")
        raise OutputError(f"{name}: cannot write it ({e.strerror or e})") from None
    if exists and not force:
        raise OutputError(f"{shown(str(path))}: exists; add --force to replace it")


NAME_MAX = 255  # bytes in one file name on the file systems smjac writes to (ext4, xfs, APFS, NTFS)


def _temporary_prefix(name: str) -> str:
    """``.NAME.`` for the temporary file beside NAME, cut so that the whole temporary name (with
    8 random characters and ``.tmp``) stays a legal file name whatever NAME's length.

    >>> len(_temporary_prefix("a" * 250).encode()) + 8 + 4 <= NAME_MAX
    True
    >>> _temporary_prefix(os.fsdecode(b"\\xffout.csv")) == os.fsdecode(b".\\xffout.csv.")  # not UTF-8
    True
    """
    room = NAME_MAX - 2 - 8 - 4  # the two dots, the random characters, ".tmp"
    kept, size = [], 0
    for ch in name:  # whole characters, counted in the file system's bytes (a byte that is not UTF-8 too)
        size += len(os.fsencode(ch))
        if size > room:
            break
        kept.append(ch)
    return f".{''.join(kept)}."


def write_atomic(path: str | Path, data: bytes | Callable[[BinaryIO], None], *, force: bool = False) -> None:
    """Write ``data`` to ``path`` all at once or not at all.

    ``data`` is the bytes, or a function that writes them to the open file (for a result too
    large to hold: it streams, and memory stays flat).

    The bytes go to a temporary file in the same folder, created exclusively under a name chosen
    first, are flushed and synced, and then take the target's name in one rename. Without
    ``force`` an existing file is never replaced, even one that appears while writing.

    A stop signal may end the writing at any moment, yet never leaves the temporary file: it is
    known to :mod:`smjac.outputs.streams` from the moment it exists until it is renamed or removed,
    and the signal handler removes it before it raises (see :func:`streams.signals_held`).
    """
    path = Path(path)
    folder = path.parent
    check_writable(path, force=force)
    tmp: str | None = None
    try:
        with streams.signals_held():  # the file exists only as a temporary streams knows of
            fd, tmp = _create(folder, _temporary_prefix(path.name), path)
            streams.temporaries.add(tmp)
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _take_mode(tmp, path, force)
        with streams.signals_held():  # renamed and its temporary name gone, or neither
            if force:
                os.replace(tmp, path)
            else:
                _link_no_clobber(tmp, path)
            _remove(tmp)
            tmp = None
    except OSError as e:
        raise OutputError(f"{shown(str(path))}: cannot write it ({e.strerror or e})") from None
    finally:
        if tmp is not None:
            with streams.signals_held():
                _remove(tmp)


def _create(folder: Path, prefix: str, path: Path) -> tuple[int, str]:
    """A new file in ``folder`` opened for writing (mode 0600), under a random name starting with
    ``prefix``: O_EXCL, so a file already there under that name (anyone's) is never opened, and
    never removed."""
    import secrets  # here, not at the top: most runs write no file, and start-up time counts

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}.tmp")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(
                f"{shown(str(path))}: cannot write in {shown(str(folder))} ({e.strerror or e})"
            ) from None
    raise OutputError(
        f"{shown(str(path))}: cannot write in {shown(str(folder))} (no free temporary name)"
    )  # pragma: no cover


def _remove(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    streams.temporaries.discard(tmp)


def _link_no_clobber(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)  # fails if path exists: no window in which another file is replaced
    except FileExistsError:
        raise OutputError(f"{shown(str(path))}: exists; add --force to replace it") from None
    except OSError:
        if path.exists():  # a file system without hard links: check, then rename
            raise OutputError(f"{shown(str(path))}: exists; add --force to replace it") from None
        os.replace(tmp, path)


def _take_mode(tmp: str, path: Path, force: bool) -> None:
    """Give the new file the mode a user expects: a replaced file's own mode and owner (where
    allowed), so --force never widens who can read it; else the umask's, as a new file gets.
    The temporary file is made 0600."""
    old = None
    if force:
        with contextlib.suppress(OSError):
            old = os.stat(path)
    if old is None:
        os.chmod(tmp, 0o666 & ~_umask())
        return
    os.chmod(tmp, stat.S_IMODE(old.st_mode))
    with contextlib.suppress(OSError):  # only root may give a file away
        os.chown(tmp, old.st_uid, old.st_gid)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save(doc: Document, path: str | Path, *, force: bool = False, what: str = "this result") -> Format:
    """Write ``doc`` to ``path`` in the format its suffix names; return that format."""
    fmt = Format.for_output(Path(path))
    write_atomic(path, encode(doc, fmt, what), force=force)
    return fmt


def write_blocks(
    path: str | Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    blocks: Iterator[np.ndarray],
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Format:
    """Stream an array given as consecutive row blocks to a .npy or .csv file, atomically.

    The .npy header comes from ``numpy.lib.format``; then each block's bytes follow, so only one
    block is ever in memory (mapping the whole output instead would count all of it as resident).
    A .csv gets one line per row, without a header, as :func:`to_csv` writes.
    """
    fmt = Format.for_output(Path(path))
    if fmt not in (Format.npy, Format.csv):
        raise OutputError(
            f"{shown(str(path))}: a result this large is written as .npy or .csv, not .{fmt.value}"
        )

    def write(f: BinaryIO) -> None:
        if fmt is Format.npy:
            npy_blocks(f, shape, dtype, blocks, progress=progress)
        else:
            stream_csv(f, blocks, progress=progress)

    write_atomic(path, write, force=force)
    return fmt


def npy_blocks(
    f: BinaryIO,
    shape: tuple[int, ...],
    dtype: np.dtype,
    blocks: Iterator[np.ndarray],
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """An array given as consecutive row blocks, written to ``f`` as a .npy file: the header from
    ``numpy.lib.format``, then each block's bytes, one block in memory at a time."""
    from numpy.lib import format as npformat

    header = {"descr": npformat.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    npformat.write_array_header_1_0(f, header)
    for block in blocks:
        data = np.ascontiguousarray(block)
        f.write(data.data.cast("B"))
        if progress:
            progress(data.nbytes)
