"""Rich tables for a person at a terminal. Nothing here computes; it only lays numbers out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich import box
from rich.table import Table
from rich.text import Text

from .core import CheckReport

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
ROW_EDGE = 8  # rows shown at each end of a long matrix
MAX_ROWS = 2 * ROW_EDGE + 1


def sub(i: int) -> str:
    """``sub(12) == '₁₂'``: index labels such as h₁₂."""
    return str(i).translate(_SUB)


def labels(symbol: str, count: int) -> list[str]:
    return [f"{symbol}{sub(i)}" for i in range(count)]


def weight_labels(K: int, n: int) -> list[str]:
    """``w[i,j]`` for column ``i·n + j``: output i, input j."""
    return [f"w[{i},{j}]" for i in range(K) for j in range(n)]


def number_format(values: np.ndarray, precision: int) -> str:
    """Fixed point unless the magnitudes would print as zeros or get too wide (as numpy decides)."""
    mags = np.abs(values[np.nonzero(values)])
    if mags.size and (mags.min() < 10.0**-precision or mags.max() >= 1e6):
        return f".{precision}e"
    return f".{precision}f"


def _cell(v: float, fmt: str) -> Text:
    text = format(v, fmt)
    if v == 0:
        return Text("0", style="dim")
    if float(text) == 0:  # rounds to zero: keep the sign out of the way
        text = text.lstrip("-")
    return Text(text, style="red" if v < 0 else "")


@dataclass(frozen=True)
class Shown:
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


def forward_table(z: np.ndarray, h: np.ndarray, *, precision: int = 6) -> Table:
    fmt_z, fmt_h = number_format(z, precision), number_format(h, precision)
    table = Table(title="z = Wᵀx, h = softmax(z)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("i", style="bold")
    table.add_column("z", justify="right")
    table.add_column("h", justify="right")
    for i, (zi, hi) in enumerate(zip(z.tolist(), h.tolist(), strict=True)):
        table.add_row(str(i), _cell(zi, fmt_z), _cell(hi, fmt_h))
    return table


def check_table(report: CheckReport) -> Table:
    failed = sum(not c.ok for c in report.checks)
    title = "all checks hold" if not failed else f"{failed} of {len(report.checks)} checks fail"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("check")
    table.add_column("max error", justify="right")
    table.add_column("tolerance", justify="right")
    table.add_column("", justify="center")
    for c in report.checks:
        mark = Text("ok", style="green") if c.ok else Text("FAIL", style="bold red")
        table.add_row(c.name, f"{c.max_error:.2e}", f"{c.tolerance:.2e}", mark)
    return table
