"""Tables and pictures for a person at a terminal, and documents. Nothing here computes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from ..checking.checks import CheckReport

# rich is imported inside the functions that draw: the label helpers here are plain strings, and
# a command that prints CSV should not pay for loading rich.

ROW_EDGE = 8  # rows shown at each end of a long matrix
MAX_ROWS = 2 * ROW_EDGE + 1


SCAN = 2**14  # entries scanned at a time for the number format: 128 KiB of float64 magnitudes


def number_format(values: np.ndarray, precision: int) -> str:
    """Fixed point unless the magnitudes would print as zeros or get too wide (as numpy decides).

    The magnitudes are scanned a block of rows at a time: the nonzero entries' indices and
    copies of a whole Jacobian took four times its memory.
    """
    M = np.atleast_2d(values)
    M = M.reshape(-1, M.shape[-1])
    step = max(1, SCAN // max(1, M.shape[1]))
    small, large = [], []
    for r0 in range(0, len(M), step):
        mags = np.abs(M[r0 : r0 + step])
        small.append(np.min(mags, where=mags != 0, initial=np.inf))
        large.append(np.max(mags, initial=0.0))
    lo, hi = (np.min(small), np.max(large)) if small else (np.inf, 0.0)
    if lo != np.inf and (lo < 10.0**-precision or hi >= 1e6):  # inf: no nonzero entry
        return f".{precision}e"
    return f".{precision}f"


def _cell(v: float, fmt: str) -> Text:
    from rich.text import Text

    text = format(v, fmt)
    if v == 0:
        return Text("0", style="dim")
    if float(text) == 0:  # rounds to zero: keep the sign out of the way
        text = text.lstrip("-")
    return Text(text, style="red" if v < 0 else "")


class Shown(NamedTuple):
    """A table, and what was left out of it (None when the whole matrix fits)."""

    table: Table
    elided: str | None


def _keep(count: int, room: int) -> list[int | None]:
    """Indices to show out of ``count`` given ``room`` slots; None marks the gap."""
    if count <= room:
        return list(range(count))
    head = room // 2
    tail = room - 1 - head
    return [*range(head), None, *range(count - tail, count)]


def matrix_table(
    M: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str | None = None,
    precision: int = 6,
    width: int = 80,
    caption: str | None = None,
) -> Shown:
    """A labelled table of ``M``; rows and columns beyond the screen are elided like numpy does."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    M = np.atleast_2d(M)
    fmt = number_format(M, precision)
    cell_w = max(len(format(-abs(float(v)), fmt)) for v in (M.max(), M.min(), 1.0))
    label_w = max((len(r) for r in row_labels), default=1) + 3
    col_w = max(cell_w, max((len(c) for c in col_labels), default=1)) + 3
    room = max(3, (width - label_w) // col_w)
    cols = _keep(M.shape[1], room)
    rows = _keep(M.shape[0], MAX_ROWS)

    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    for c in cols:
        table.add_column("…" if c is None else col_labels[c], justify="right", no_wrap=True)
    for r in rows:
        if r is None:
            table.add_row("⋮", *("⋮" for _ in cols))
            continue
        table.add_row(row_labels[r], *(Text("…") if c is None else _cell(float(M[r, c]), fmt) for c in cols))
    elided = None
    shown_r, shown_c = sum(r is not None for r in rows), sum(c is not None for c in cols)
    if (shown_r, shown_c) != M.shape:
        elided = (
            f"showing {shown_r} of {M.shape[0]} rows and {shown_c} of {M.shape[1]} columns; "
            "see it all with --format csv or -o FILE (.npy, .csv, .json)"
        )
    return Shown(table, elided)


def forward_table(
    z: np.ndarray,
    h: np.ndarray,
    *,
    precision: int = 6,
    h_name: str = "h",
    title: str = "z = Wᵀx, h = softmax(z)",
) -> Table:
    from rich import box
    from rich.table import Table

    fmt_z, fmt_h = number_format(z, precision), number_format(h, precision)
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("i", style="bold")
    table.add_column("z", justify="right")
    table.add_column(h_name, justify="right")
    for i, (zi, hi) in enumerate(zip(z.tolist(), h.tolist(), strict=True)):
        table.add_row(str(i), _cell(zi, fmt_z), _cell(hi, fmt_h))
    return table


def check_table(report: CheckReport) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    failed = sum(not c.ok for c in report.checks)
    title = "all checks hold" if not failed else f"{failed} of {len(report.checks)} checks fail"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("check")
    table.add_column("max error", justify="right")
    table.add_column("tolerance", justify="right")
    batched = any(c.sample is not None for c in report.checks)
    if batched:
        table.add_column("worst sample", justify="right")
    table.add_column("", justify="center")
    for c in report.checks:
        mark = Text("ok", style="green") if c.ok else Text("FAIL", style="bold red")
        if c.failed and batched:
            shown = ",".join(map(str, c.failed[:5])) + (",…" if len(c.failed) > 5 else "")
            mark = Text(f"FAIL ({len(c.failed)}: {shown})", style="bold red")
        where = [("all" if c.sample is None else str(c.sample))] if batched else []  # None: the whole batch
        table.add_row(c.name, f"{c.max_error:.2e}", f"{c.tolerance:.2e}", *where, mark)
    return table


# ---------------------------------------------------------------- legend


def legend_table(rows: list[tuple[int, str, str]], layout: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=f"columns of the Jacobian (--layout {layout})", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("column", justify="right")
    table.add_column("variable")
    table.add_column("stored at")
    for column, what, where in rows:
        table.add_row(str(column), what, where)
    return table


def in_ascii(table: Any) -> Any:
    """``table`` (a rich Table, or a Group holding tables) with its text as a stream that takes
    ASCII only shows it (the stand-ins of :data:`smjac.notation.ASCII`), before rich lays it out:
    a stand-in wider than its symbol (``…`` is ``...``, ``→`` is ``->``) put in afterwards pushed
    its row past the border. smjac's tables keep their look, in ASCII lines."""
    from rich import box
    from rich.console import Group
    from rich.rule import Rule
    from rich.table import Table
    from rich.text import Text

    from ..notation import ASCII

    def ascii(cell: Any) -> Any:
        if isinstance(cell, str):
            return cell.translate(ASCII)
        if isinstance(cell, Text):  # its own styles go with the characters they were on
            return Text(cell.plain.translate(ASCII), style=cell.style, justify=cell.justify)
        return cell

    if isinstance(table, Group):  # the walk-through: its rules, prose and tables alike
        return Group(*(in_ascii(part) for part in table.renderables), fit=table.fit)
    if isinstance(table, Rule):
        return Rule(ascii(table.title), characters="-", style=table.style, align=table.align)
    if isinstance(table, Text):
        return ascii(table)
    if not isinstance(table, Table):
        return table

    table.title, table.caption = ascii(table.title), ascii(table.caption)
    if table.box is box.SIMPLE_HEAD:  # the same lines in ASCII: rich would draw a box with edges, wider
        table.box = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)
    for column in table.columns:
        column.header = ascii(column.header)
        column._cells[:] = [ascii(c) for c in column._cells]  # rich keeps a column's cells here
    return table


def plain(text: str) -> Text:
    """Text shown as it is: no markup, so ``w[1,2]`` stays as written."""
    from rich.text import Text

    return Text(text, no_wrap=True, overflow="ignore")


# ---------------------------------------------------------------- documents


# A document is made a piece of a row at a time: the whole text, its list of cells and its
# encoded copy took 16-21 times the matrix's memory (dh/dW of a 120×120 layer: 219 MiB for 13).
CELLS = 4096  # cells made into text at a time


def _row_pieces(
    M: np.ndarray, precision: int, sep: str, cell: Callable[[str], str] = str
) -> Iterator[Iterator[str]]:
    """Each row of ``M`` as its cells' text joined by ``sep``, in pieces of :data:`CELLS` cells."""
    fmt = number_format(M, precision)

    def pieces(row: np.ndarray) -> Iterator[str]:
        for c0 in range(0, len(row), CELLS):
            texts = sep.join(cell(format(v, fmt)) for v in row[c0 : c0 + CELLS].tolist())
            yield sep + texts if c0 else texts

    return (pieces(row) for row in np.atleast_2d(M))


def markdown_lines(
    M: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], precision: int = 6
) -> Iterator[str]:
    """A Markdown table in pieces: a header of column labels, a label in front of each row."""
    yield "| | "
    for c0 in range(0, len(col_labels), CELLS):
        yield (" | " if c0 else "") + " | ".join(col_labels[c0 : c0 + CELLS])
    yield " |\n|---|"
    for c0 in range(0, len(col_labels), CELLS):
        yield "---:|" * len(col_labels[c0 : c0 + CELLS])
    yield "\n"
    for label, pieces in zip(row_labels, _row_pieces(M, precision, " | "), strict=True):
        yield f"| {label} | "
        yield from pieces
        yield " |\n"


def markdown(M: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], precision: int = 6) -> str:
    """A Markdown table: a header of column labels, a label in front of each row."""
    return "".join(markdown_lines(M, row_labels, col_labels, precision))


def _tex(cell: str) -> str:
    if "e" not in cell:
        return cell
    mantissa, exponent = cell.split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}"


def latex_lines(M: np.ndarray, precision: int = 6) -> Iterator[str]:
    """A LaTeX ``bmatrix`` (amsmath) in pieces; scientific numbers as ``1.5 \\times 10^{-3}``."""
    yield "\\begin{bmatrix}\n"
    for pieces in _row_pieces(M, precision, " & ", _tex):
        yield from pieces
        yield " \\\\\n"
    yield "\\end{bmatrix}\n"


def latex(M: np.ndarray, precision: int = 6) -> str:
    """A LaTeX ``bmatrix`` (amsmath); scientific numbers as ``1.5 \\times 10^{-3}``."""
    return "".join(latex_lines(M, precision))


# ---------------------------------------------------------------- heatmap

_POS = " .+*#"  # glyphs by magnitude when there is no colour: sign by the glyph set
_NEG = " ,-=%"


def _blocks(M: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Shrink M to at most rows × cols by blocks, keeping in each the entry of largest magnitude."""
    r_edges = np.linspace(0, M.shape[0], min(rows, M.shape[0]) + 1).astype(int)
    c_edges = np.linspace(0, M.shape[1], min(cols, M.shape[1]) + 1).astype(int)
    out = np.empty((len(r_edges) - 1, len(c_edges) - 1))
    for a, (r0, r1) in enumerate(itertools.pairwise(r_edges)):
        band = M[r0:r1]
        for c, (c0, c1) in enumerate(itertools.pairwise(c_edges)):
            block = band[:, c0:c1]
            out[a, c] = block.flat[np.argmax(np.abs(block))]
    return out


def _rgb(v: float) -> str:
    """Red for positive, blue for negative, black for zero; brightness by √|v| (v in [-1, 1])."""
    level = round(255 * abs(v) ** 0.5)
    return f"rgb({level},0,0)" if v > 0 else f"rgb(0,{level // 3},{level})" if v < 0 else "rgb(0,0,0)"


def heatmap(M: np.ndarray, *, title: str, width: int, height: int, color: bool) -> tuple[Text, str | None]:
    """The matrix as a grid of cells, shrunk to fit ``width`` × ``height`` characters.

    In colour each character is two cells (upper and lower half blocks); without colour each
    cell is a glyph whose set gives the sign and whose weight gives the magnitude.
    """
    from rich.text import Text

    M = np.atleast_2d(np.asarray(M, dtype=float))
    cols = max(1, width)
    rows = max(1, height) * (2 if color else 1)
    small = _blocks(M, rows, cols)
    peak = float(np.max(np.abs(small))) or 1.0
    unit = small / peak
    text = Text()
    text.append(title, style="bold")
    shrunk = small.shape != M.shape
    text.append("\n")
    if shrunk:
        text.append(f"shown as {small.shape[0]}×{small.shape[1]} blocks, the largest |entry| of each\n")
    if color:
        if unit.shape[0] % 2:
            unit = np.vstack([unit, np.full((1, unit.shape[1]), np.nan)])
        for top, bottom in zip(unit[0::2], unit[1::2], strict=True):
            for u, d in zip(top, bottom, strict=True):
                text.append("▀", style=f"{_rgb(u)} on {_rgb(0.0 if np.isnan(d) else d)}")
            text.append("\n")
        text.append("scale: ")
        for v in np.linspace(-1, 1, 21):
            text.append("█", style=_rgb(float(v)))
        text.append(f" −{peak:.3g} … +{peak:.3g}, by √|entry|")
    else:
        for row in unit:
            for v in row:
                level = min(4, int(np.ceil(abs(v) ** 0.5 * 4)))
                text.append((_POS if v >= 0 else _NEG)[level])
            text.append("\n")
        text.append(f"scale: + {_POS[1:]}  − {_NEG[1:]}  by √|entry|, up to {peak:.3g}")
    note = (
        "the heatmap shows the largest entry of each block; see every number with --format csv"
        if shrunk
        else None
    )
    return text, note
