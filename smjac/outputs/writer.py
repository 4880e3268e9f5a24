"""One writer for every command's result: where it goes, in what format, and that all of it got there.

A command loads its inputs, computes, and hands one :class:`Result` to a :class:`Writer`. The
writer alone decides the rest, once: the destination (``--format``, ``-o`` and whether stdout is
a terminal, read once into an :class:`Environment`), whether the result is streamed or held
under the memory budget, which combinations it refuses before any work, the checked writes, the
progress bar, the "wrote FILE" note and ``--quiet``. Nothing else in smjac writes to stdout or
stderr. (The process-level half, checked streams and signals, is :mod:`smjac.outputs.streams`.)

Formats are one list, :class:`Format`; what each can hold is :func:`refusal`, from the
:class:`Shape` of a result, which a command knows before it computes anything.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np

from .. import budget
from ..errors import ExitStatus, OutputError, shown
from ..formats import document, table
from ..formats import text as text_format
from ..formats.table import Format, either
from ..maths import BLOCK_BYTES
from . import atomic
from .environment import Environment
from .progress import Progress
from .shapes import Result, Shape, View, left_out, refusal, usable


class Options(NamedTuple):
    """The output options every command shares."""

    fmt: Format | None = None
    output: Path | None = None
    force: bool = False
    precision: int = 6
    sample: int = 0
    quiet: bool = False
    max_memory: int | None = None  # bytes; None: half of what is available
    progress: bool | None = None  # a progress bar on stderr: None, when stderr is a terminal


class Destination(NamedTuple):
    fmt: Format
    path: Path | None  # None: stdout


STDOUT = "-"  # -o - names stdout, in --format's format


def destinations(shape: Shape, opts: Options, stdout_isatty: bool) -> list[Destination]:
    """Where a result goes: ``-o FILE`` in its suffix's format, and stdout in ``--format``'s (or,
    without ``-o`` or ``--format``, a table at a terminal and plain data in a pipe). ``-o -`` is
    stdout, as if no ``-o`` were given."""
    out: list[Destination] = []
    output = None if opts.output is None or str(opts.output) == STDOUT else opts.output
    if output is not None:
        fmt = Format.for_output(output, (shape.name, usable(shape, files_only=True)))
        out.append(Destination(fmt, output))
    if opts.fmt is not None:
        out.append(Destination(opts.fmt, None))
    elif output is None:
        if shape.view is None:
            default = Format.json
        elif stdout_isatty:
            default = Format.table
        else:
            default = Format.csv if shape.csv else Format.json
        out.append(Destination(default, None))
    return out


class Writer:
    """Writes one result to its destinations, refusing what cannot work before any is computed.

    Create it first thing in a command, with the shape of what the command will produce: a bad
    ``-o`` path, an existing file without ``--force`` or a format that cannot hold the result is
    refused then, before any input is read.
    """

    def __init__(self, shape: Shape, opts: Options, env: Environment | None = None):
        self.shape, self.opts = shape, opts
        self.env = env or Environment.read()
        self.checkpoint: Any = None  # the model checkpoint the layer came from, if it did
        self.dests = destinations(shape, opts, self.env.pretty)
        for d in self.dests:
            why = refusal(d.fmt, shape)
            if why is not None:
                where = f"{shown(str(d.path))}: " if d.path else f"--format {d.fmt.value}: "
                others = [
                    (f.suffix or "") if d.path else f.value
                    for f in usable(shape, files_only=d.path is not None)
                ]
                raise OutputError(f"{where}{shape.name} {why}; use {either(others)}")
            if d.path is not None:
                atomic.check_writable(d.path, force=opts.force)
            elif not d.fmt.printable and self.env.stdout_isatty:
                raise OutputError(
                    f"--format {d.fmt.value} is binary, not for a terminal: send stdout to a file or a "
                    f"pipe (> result{d.fmt.suffix}), or use -o FILE{d.fmt.suffix}"
                )
            if d.fmt.picture:  # before any work: without the plot extra nothing can be drawn
                from ..formats import pictures

                pictures.require_matplotlib()

    # ------------------------------------------------------------ messages

    def note(self, text: str | None) -> None:
        """A line on stderr (never stdout); --quiet keeps notes, not errors, off it."""
        if text and not self.opts.quiet:
            message(text, self.env.stderr)

    # ------------------------------------------------------------ writing

    def budget(self) -> int:
        return budget.resolve(self.opts.max_memory)

    def _progress(self, total: int, label: str, unit: str) -> Progress:
        asked = self.opts.progress
        return Progress(
            total,
            label,
            stream=self.env.stderr,
            enabled=not self.opts.quiet and (self.env.stderr_isatty if asked is None else asked),
            unit=unit,
            color=not self.env.no_color,
        )

    @contextlib.contextmanager
    def working(self, label: str, total: int = 0, unit: str = "bytes") -> Iterator[Callable[[int], None]]:
        """The progress bar, for work a command does before its result (reading a large input):
        ``with writer.working("reading W.npy") as progress: ...``. It follows the same rules as
        the result's own bar (after a second, at a terminal, not with --quiet); call ``progress``
        with the amount done when the total is known, or not at all for a spinner."""
        progress = self._progress(total, label, unit)
        try:
            yield progress
        finally:
            progress.close()

    def write(self, result: Result) -> int:
        """Compute ``result`` and write it to every destination; return the exit status."""
        if result.shape.name != self.shape.name:  # pragma: no cover - a programming error
            raise AssertionError(f"{result.shape.name} given to a writer for {self.shape.name}")
        progress = self._progress(result.work, result.what, result.unit)
        try:
            streamed = [d for d in self.dests if self._streams(d, result)]
            if streamed and len(self.dests) == 1:
                notes = self._stream(streamed[0], result, progress)
                progress.close()
                for line in notes:
                    self.note(line)
                return ExitStatus.OK
            # the destinations are written one after the other: the costliest sets the peak
            need, fmt = max((result.cost(d.fmt.value), d.fmt.value) for d in self.dests)
            what = f"{result.what} as {fmt}" if need > result.cost("npy") else result.what
            budget.require(need, what, self.opts.max_memory, way=self._way(result))
            doc = result.data(progress)
            progress.pause()  # the notes have the terminal to themselves; the bar is back if there is more
            for line in result.notes:
                self.note(line)
            for d in self.dests:
                notes = self._write(d, doc, result, progress)
                progress.pause()
                for line in notes:
                    self.note(line)
        finally:
            progress.close()
        return result.status(doc)

    def _streams(self, d: Destination, result: Result) -> bool:
        if result.csv_chunks is not None:
            return d.fmt is Format.csv
        if result.blocks is None:
            return False
        return d.fmt is Format.npy or d.fmt is Format.csv

    def _way(self, result: Result) -> str:
        """What to do instead of a result over the budget: streaming it, as the formats that would
        keep the budget a row at a time, and its other forms that fit."""
        if not self.shape.streams:
            others = self._others(result)
            return "; or ".join([others[0][0].upper() + others[0][1:], *others[1:]]) if others else ""
        most = budget.resolve(self.opts.max_memory)
        fits = [f for f in ("npy", "csv") if result.blocks is not None and result.stream_cost(f, 8) <= most]
        alone = [d for d in self.dests if d.path is not None and self._streams(d, result)]
        if alone and len(self.dests) > 1 and alone[0].fmt.value in fits:
            # a file that streams was asked for already: the other copy (on stdout) is the one over
            others = [d.fmt.value for d in self.dests if d is not alone[0]]
            stream = f"{shown(str(alone[0].path))} alone would be streamed in blocks: leave out --format {others[0]}"
        elif fits == ["npy", "csv"]:
            stream = "Stream it in blocks to a file, -o J.npy, or as CSV to a pipe, --format csv"
        elif fits == ["npy"]:
            stream = "Stream it in blocks to a file, -o J.npy (as CSV, even a row at a time would not fit)"
        else:
            least = result.stream_cost("npy", 8) if result.blocks is not None else 0
            stream = "Streamed, it would not fit either" + (
                f": one row at a time takes {budget.format_size(least)}" if least else ""
            )  # with a batch's forward pass, which every row needs
        return "; or ".join([stream, *self._others(result)])

    def _others(self, result: Result) -> list[str]:
        """The other forms of ``result`` that keep the budget, as a refusal offers them."""
        most = budget.resolve(self.opts.max_memory)
        return [next(way for way, need in ways if need <= most) for ways in result.others if
                any(need <= most for _, need in ways)]  # fmt: skip

    def _block_bytes(self, result: Result, fmt: str) -> int:
        """The largest block, up to :data:`smjac.maths.BLOCK_BYTES`, whose streaming as ``fmt``
        keeps the budget; refused before any work when even one row a block would not."""
        most = budget.resolve(self.opts.max_memory)
        size = BLOCK_BYTES
        while size > 8 and result.stream_cost(fmt, size) > most:  # the estimate takes a row at least
            size //= 2
        if result.stream_cost(fmt, size) > most:
            others = self._others(result)
            if fmt != "npy" and result.stream_cost("npy", size) <= most:
                others.insert(0, "write it to a file as it is, -o J.npy")
            way = "That is one row at a time" + ("; instead " + "; or ".join(others) if others else "")
            budget.require(result.stream_cost(fmt, size), f"{result.what} streamed as {fmt}", most, way=way)
        return size

    def _stream(self, d: Destination, result: Result, progress: Progress) -> list[str | None]:
        """Write a result too large to hold, a piece at a time; the notes to say after it."""
        if d.path is None and self.env.stdout_isatty:
            progress.close()  # the bar and the numbers would share the terminal
        if result.csv_chunks is not None:
            chunks = result.csv_chunks
            least = result.stream_cost("csv", 0)  # a chunk of one row
            budget.require(
                least, f"{result.what} streamed as csv", self.opts.max_memory, way="That is one row at a time"
            )

            def write(out: Any) -> None:
                for text in chunks(progress):
                    out.write(text.encode())

            if d.path is not None:
                atomic.write_atomic(d.path, write, force=self.opts.force)
                return [self._wrote(d.path)]
            self._flush_text()
            write(self._stdout_bytes())
            self._flush_bytes()
            return []
        assert result.blocks is not None
        blocks = result.blocks(self._block_bytes(result, d.fmt.value))
        if d.path is not None:
            atomic.write_blocks(
                d.path, blocks.shape, blocks.dtype, blocks.rows, force=self.opts.force, progress=progress
            )
            dims = " × ".join(map(str, blocks.shape))
            return [self._wrote(d.path, f"{dims} {np.dtype(blocks.dtype)}")]
        self._flush_text()
        if d.fmt is Format.npy:
            atomic.npy_blocks(
                self._stdout_bytes(), blocks.shape, blocks.dtype, blocks.rows, progress=progress
            )
        else:
            text_format.stream_csv(self._stdout_bytes(), blocks.rows, progress=progress)
        self._flush_bytes()
        return []

    def _held_only(self, d: Destination, doc: document.Document, beside: tuple[str, ...] = ()) -> list[str]:
        """The note that ``d`` holds the main array alone, naming what it leaves out (those
        :func:`left_out` names, but for those its view shows ``beside`` it) and what holds it all."""
        missing = [
            f"{k} (= {doc.fields[k]!r})" if isinstance(doc.fields[k], float) else k
            for k in left_out(d.fmt, self.shape)
            if doc.fields.get(k) is not None and k not in beside
        ]
        if not missing:
            return []
        holds = " or ".join(
            f.suffix or "" for f in (Format.json, Format.npz) if refusal(f, self.shape) is None
        )
        where = (
            shown(str(d.path)) if d.path else ("CSV" if d.fmt is Format.csv else f"--format {d.fmt.value}")
        )
        return [f"{where} holds {self.shape.main} only, not {' or '.join(missing)}; {holds} holds it all"]

    def _wrote(self, path: Path, what: str = "") -> str:
        """ "wrote FILE (what, size)": the size the file has on disk, whatever its format; a name
        with a newline or an escape in it shown escaped, on one line."""
        try:
            size = budget.format_size(os.stat(path).st_size)
        except OSError:  # pragma: no cover - removed already, by another process
            return f"wrote {shown(str(path))}" + (f" ({what})" if what else "")
        return f"wrote {shown(str(path))} ({what + ', ' if what else ''}{size})"

    def _write(
        self, d: Destination, doc: document.Document, result: Result, progress: Progress
    ) -> list[str | None]:
        """Write ``doc`` to one destination; the notes to say after it."""
        fmt, notes = d.fmt, list[str | None]()
        progress.phase(
            f"making {shown(str(d.path)) if d.path else 'the ' + fmt.value}"
        )  # text of millions of numbers takes time
        if fmt is Format.safetensors:
            assert result.checkpoint is not None
            data = result.checkpoint(doc)
            loss = doc.fields.get("loss")
            if isinstance(loss, float):  # kept in the file's __metadata__ too, as a string
                notes.append(
                    f"{shown(str(d.path)) if d.path else 'the file'} keeps loss (= {loss!r}) in its metadata, with how it was reduced"
                )
        elif fmt.picture:
            from ..formats import pictures as plot

            view = self._view(result, doc)
            bars = self.shape.picture == "bars"
            data, drawn = plot.draw(
                view.M[:, -1] if bars else view.M, fmt=fmt.value, row_labels=view.rows,
                col_labels=None if bars else view.cols, title=view.picture_title or view.title,
                groups=view.groups, axes=view.axes, kind="bars" if bars else "matrix",
            )  # fmt: skip
            notes += [*drawn, *view.notes, *self._held_only(d, doc, view.shows)]
        elif fmt.people:
            view = self._view(result, doc)
            held = self._held_only(d, doc, view.shows if fmt is Format.table else ())
            if d.path is None and fmt in (Format.table, Format.heatmap):
                text, notes = self._draw(fmt, view)
            else:  # Markdown or LaTeX: a line at a time, never the whole text
                lines = _document(fmt, view, self.opts.precision)
                return [*self._write_lines(d, lines, progress), *notes, *view.notes, *held]
            data = text.encode()
            notes += [*view.notes, *held]
        else:
            data = table.encode(doc, fmt, result.what)
            notes += self._held_only(d, doc)
        if d.path is not None:
            progress.phase(f"writing {shown(str(d.path))}", len(data))
            atomic.write_atomic(d.path, _in_pieces(data, progress), force=self.opts.force)
            return [self._wrote(d.path), *notes]
        if self.env.stdout_isatty:
            progress.close()  # the bar and the result would share the terminal
        if not fmt.printable or (not fmt.people and hasattr(self.env.stdout, "buffer") and data.isascii()):
            # data bytes straight to stdout's byte layer: no decoded copy, no re-encoded one
            progress.phase("writing to standard output", len(data))
            self._flush_text()
            _in_pieces(data, progress)(self._stdout_bytes())
            self._flush_bytes()
        else:
            self.print(data.decode())
        return notes

    def _write_lines(self, d: Destination, lines: Iterator[str], progress: Progress) -> list[str | None]:
        """Text made a line at a time, written a piece at a time; the note to say after it."""
        pieces = _joined(lines, 2**16)  # characters: up to 4 bytes each, and their UTF-8 copy
        if d.path is not None:
            progress.phase(f"writing {shown(str(d.path))}")

            def write(f: Any) -> None:
                for piece in pieces:
                    f.write(piece.encode())

            atomic.write_atomic(d.path, write, force=self.opts.force)
            return [self._wrote(d.path)]
        if self.env.stdout_isatty:
            progress.close()  # the bar and the result would share the terminal
        for piece in pieces:
            self.print(piece)
        return []

    def _view(self, result: Result, doc: document.Document) -> View:
        assert result.view is not None
        return result.view(doc)

    def _draw(self, fmt: Format, v: View) -> tuple[str, list[str | None]]:
        """A table or heatmap drawn by rich as stdout shows it, and the notes that go with it."""
        from . import render

        console = self.console()
        if fmt is Format.heatmap:
            picture, note = render.heatmap(
                v.M,
                title=v.title,
                width=console.width - 1,
                height=max(4, console.height - 6),
                # colour cells are half blocks (▀); without colour, or without that character, the
                # sign and size are drawn with ASCII glyphs instead
                color=console.color_system is not None
                and not console.no_color
                and not console.options.ascii_only,
            )
            console.print(picture)
            return console.file.getvalue(), [note]
        if v.table is not None:
            from rich.text import Text

            table = v.table()
            if console.options.ascii_only:
                table = render.in_ascii(table)
            console = self._wide_enough(console, table)
            console.print(table, soft_wrap=isinstance(table, Text))  # a report's lines stay whole
            return console.file.getvalue(), []
        shown = render.matrix_table(
            v.M, v.rows, v.cols, title=v.title, precision=self.opts.precision, width=console.width,
            caption=v.caption,
        )  # fmt: skip
        table = render.in_ascii(shown.table) if console.options.ascii_only else shown.table
        console = self._wide_enough(console, table)
        console.print(table)
        return console.file.getvalue(), [shown.elided]

    def _wide_enough(self, console: Any, renderable: Any) -> Any:
        """A console as wide as a table needs, when the terminal is narrower: rich would otherwise
        cut numbers to ``0…``. The terminal then folds the long lines; no digit is lost."""
        from rich.measure import Measurement
        from rich.table import Table

        if not isinstance(renderable, Table):
            return console
        need = Measurement.get(console, console.options.update_width(4096), renderable).maximum
        return self.console(width=min(need, 4096)) if need > console.width else console

    def console(self, width: int | None = None) -> Any:
        """A rich console drawing into a string, as stdout would show it (width, colour, charset)."""
        from rich.console import Console

        def console(color_system: Any) -> Any:
            return Console(
                file=_Text(self.env.encoding),
                width=width or self.env.width,
                height=self.env.height,
                force_terminal=self.env.pretty,
                no_color=self.env.no_color,
                color_system=color_system if self.env.pretty and not self.env.no_color else None,
                highlight=False,
                emoji=False,
                legacy_windows=False,
            )

        drawn = console("auto")
        if self.env.force_color and drawn.color_system is None:  # TERM=dumb: asked for, so given
            drawn = console("standard")
        return drawn

    def print(self, text: str) -> None:
        """Results to stdout, all of them or an error: every write is checked."""
        try:
            self.env.stdout.write(text)
            self.env.stdout.flush()
        except OSError as e:
            raise stdout_failed(e) from None

    def _stdout_bytes(self) -> Any:
        return _Checked(self.env.stdout.buffer)

    def _flush_text(self) -> None:
        self.print("")

    def _flush_bytes(self) -> None:
        self._stdout_bytes().flush()


PIECE = 8 * 2**20  # bytes written at a time, so that a bar can follow a large file


def _in_pieces(data: bytes, progress: Callable[[int], None]) -> Callable[[Any], None]:
    """A writer of ``data`` to a file, a piece at a time, telling ``progress``."""

    def write(f: Any) -> None:
        view = memoryview(data)
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE]
            f.write(piece)
            progress(len(piece))

    return write


def _joined(lines: Iterator[str], size: int) -> Iterator[str]:
    """``lines`` joined into pieces of about ``size`` characters."""
    held: list[str] = []
    count = 0
    for line in lines:
        held.append(line)
        count += len(line)
        if count >= size:
            yield "".join(held)
            held, count = [], 0
    if held:
        yield "".join(held)


class _Checked:
    """stdout's byte layer, with every write's failure said as what it is."""

    def __init__(self, raw: Any):
        self.raw = raw

    def write(self, data: bytes) -> int:
        try:
            self.raw.write(data)
        except OSError as e:
            raise stdout_failed(e) from None
        return len(data)

    def flush(self) -> None:
        try:
            self.raw.flush()
        except OSError as e:
            raise stdout_failed(e) from None


class _Text(io.StringIO):
    """A string buffer that tells rich which characters stdout can take."""

    def __init__(self, encoding: str):
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


def _document(fmt: Format, v: View, precision: int) -> Iterator[str]:
    from . import render

    if fmt is Format.markdown:
        return render.markdown_lines(v.M, v.rows, v.cols, precision)
    return render.latex_lines(v.M, precision)


def abandon_stdout() -> None:
    """After stdout failed (a full disk, a reader gone): point it at the null device, so what is
    still buffered goes nowhere at exit instead of failing, and being reported, a second time."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    # A stream that refuses every write (stdout was closed at start) is replaced; the old one is
    # kept, so that dropping it does not flush it, fail and print "Exception ignored".
    _abandoned.append(sys.stdout)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - it lives as long as the process


_abandoned: list[Any] = []


def stdout_failed(e: OSError) -> BaseException:
    """The error to raise when writing results to stdout failed with ``e``."""
    abandon_stdout()
    if isinstance(e, BrokenPipeError):
        return e
    return OutputError(f"cannot write to standard output: {e.strerror or e}")


# control characters a file's own names may carry (a tensor called "x\x1b[2J"): shown, never sent
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(32), 127) if chr(c) not in "\n\t"}


def message(text: str, stream: TextIO | None = None) -> None:
    """One message on stderr, whole (not wrapped); a stderr that cannot take it is let be.

    Control characters are written as escapes, and a line after the first that does not start
    indented is indented: a name holding "\nError: …" or an escape sequence cannot pass for a
    line of smjac's own or act on the terminal.
    """
    stream = stream if stream is not None else sys.stderr
    if stream is None:
        return
    lines = text.translate(_CONTROLS).split("\n")
    text = "\n".join([lines[0], *(line if line[:1] in (" ", "") else f"  {line}" for line in lines[1:])])
    try:
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass
