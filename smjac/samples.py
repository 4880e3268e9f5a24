"""The sample files: the inputs that the examples in smjac's help and documentation read.

The repository keeps them in ``samples/``. A wheel carries the same files inside the package, as
``smjac/_samples`` (``setup.py`` puts them there), so that an installed smjac can hand them to a
user who has no clone: :func:`write` copies them into a folder's ``samples/``, the path every
example names (``smjac samples .`` on the command line).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .errors import LoadError, OutputError, shown

_HERE = Path(__file__).resolve().parent
PACKAGED = _HERE / "_samples"  # in an installed wheel
CHECKOUT = _HERE.parent / "samples"  # in a clone, an unpacked sdist or an editable install


def folder() -> Path:
    """The folder holding this smjac's sample files: the package's copy, or a source tree's own.

    >>> (folder() / "blog" / "W.json").is_file()
    True
    """
    if PACKAGED.is_dir():
        return PACKAGED
    if CHECKOUT.is_dir() and (CHECKOUT.parent / "pyproject.toml").is_file():  # smjac's own tree
        return CHECKOUT
    raise LoadError(f"this smjac was installed without its sample files ({PACKAGED} is missing)")


def names() -> list[str]:
    """Each sample file's path inside ``samples/``, with ``/`` between folders, in order.

    >>> "blog/x.json" in names()
    True
    """
    root = folder()
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.relative_to(root).parts
    )


class Plan(NamedTuple):
    """What :func:`write` would do in ``target`` (a folder's ``samples/``), by file name."""

    target: Path
    new: list[str]  # not there yet
    same: list[str]  # there already, byte for byte: left as they are
    differ: list[str]  # there, with other bytes: replaced only when forced

    def refusal(self, remedy: str) -> str:
        """Why these files are not written over, ending in ``remedy`` ("force=True replaces")."""
        first = self.target / self.differ[0]
        if len(self.differ) == 1:
            return f"{first} differs from smjac's sample file; {remedy} it"
        return f"{first} and {len(self.differ) - 1} more differ from smjac's sample files; {remedy} them"


def plan(directory: str | Path) -> Plan:
    """Look at ``directory/samples`` and sort the sample files into new, the same, and differing.

    A ``directory`` that is not there is made when written, as ``mkdir -p`` makes it; a file where
    it or a folder above it goes is refused, and so is a folder where a sample file goes or a file
    where one of their folders goes.
    """
    directory = Path(directory)
    try:
        return _plan(directory)
    except OSError as e:  # a name too long, a loop of links: OutputError is one too
        if isinstance(e, OutputError):
            raise
        raise OutputError(
            f"{shown(str(directory))}: cannot write samples/ there ({e.strerror or e})"
        ) from None


def _plan(directory: Path) -> Plan:
    made = directory.absolute()
    first = next((p for p in (made, *made.parents) if p.exists() or p.is_symlink()), None)
    where = "" if first == made else f" where the folder {shown(str(directory))} would go"
    if first is not None and not first.exists():  # a link to nothing, or a loop of links
        raise OutputError(f"{shown(str(first))}: is a link that leads to no folder{where}")
    if first is not None and not first.is_dir():
        raise OutputError(f"{shown(str(first))}: is a file{where}; smjac writes samples/ into a folder")
    target = directory / "samples"
    root = folder()
    new, same, differ = [], [], []
    for name in names():
        dest = target / name
        for up in reversed(dest.relative_to(directory).parents[:-1]):  # samples, samples/blog, ...
            if (directory / up).exists() and not (directory / up).is_dir():
                raise OutputError(f"{directory / up}: is a file where smjac's samples need a folder")
        if dest.is_dir():
            raise OutputError(f"{dest}: is a folder where smjac's sample file {name} goes")
        if not dest.exists():
            new.append(name)
        elif dest.read_bytes() == (root / name).read_bytes():
            same.append(name)
        else:
            differ.append(name)
    return Plan(target, new, same, differ)


def write(directory: str | Path, *, force: bool = False) -> Plan:
    """Copy the sample files into ``directory/samples``, making the folders they need.

    A file there already with the same bytes is left as it is; one with other bytes is replaced
    only with ``force``. Everything is looked at before anything is written, so a refusal leaves
    the folder as it was. Each file is written atomically. Returns what was done (:class:`Plan`).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     first, again = write(d), write(d)
    >>> len(first.new) == len(again.same) == len(names()) and not again.new
    True
    """
    from .outputs.atomic import write_atomic

    p = plan(directory)
    if p.differ and not force:
        raise OutputError(p.refusal("force=True replaces"))
    root = folder()
    for name in p.new + p.differ:
        dest = p.target / name
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{dest.parent}: cannot make the folder ({e.strerror or e})") from None
        write_atomic(dest, (root / name).read_bytes(), force=name in p.differ)
    return p
