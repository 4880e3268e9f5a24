"""Heatmaps and bar charts of a result, as PNG, SVG or PDF bytes, drawn with matplotlib (``smjac[plot]``).

One colour scale for both signs, centred on 0 (red positive, blue negative, white at 0, and the
ends at ±max|entry|), so equal magnitudes look equally strong whatever their sign. Rows are the
outputs h_t. A matrix or a bar chart too large to draw entry by entry at a readable size is
summarised in blocks: each cell (or bar) is the signed entry of largest |value| in its block, the
blocks of a Jacobian with respect to W never straddle two weight groups w[i,·], and the title says
so. Every size is laid out in pixels, so the picture's size and where each cell lands are known
(:func:`geometry`), and the bytes are the same from run to run. Nothing here prints: notes come
back as strings for the caller to show.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OutputError

FORMATS = ("png", "svg", "pdf")
KINDS = ("matrix", "bars")
PLOT_EXTRA = "pip install 'smjac[plot]'"
DPI = 100
CELL_MAX = 40  # px; a small matrix gets square cells of up to this size
CELL_MIN = 2  # px; a matrix that would need thinner cells is summarised in blocks
BAR_MIN = 4  # px; likewise for bars
TARGET_W, TARGET_H = 1000, 800  # px the cells aim to fill
MAX_CELLS = (TARGET_H // CELL_MIN, TARGET_W // CELL_MIN)  # rows, columns drawn before summarising
MAX_BARS = TARGET_H // BAR_MIN
SQUARE_FROM = 4  # px; cells are square when both axes allow at least this, else each axis fills its target
GROUP_LINES_FROM = 12  # px; lines between weight groups only when the groups are at least this wide
TITLE_MIN_W = 560  # px; a long title widens a narrow picture up to this, and wraps beyond it
CMAP = "RdBu_r"  # red positive, blue negative, white at 0
RED, BLUE = "#b2182b", "#2166ac"  # the bars: RdBu's own red and blue
# No dates and no versions: the same bytes from run to run and from install to install.
METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": "smjac"},
    "svg": {"Date": None, "Creator": "smjac"},
    "pdf": {"CreationDate": None, "Creator": "smjac", "Producer": None},
}


@dataclass(frozen=True)
class Geometry:
    """Where things go, in pixels from the picture's top-left corner.

    ``left``, ``top``, ``width`` and ``height`` bound the cells (or the bars); ``cell_w`` and
    ``cell_h`` are one drawn cell's size. ``shape`` is the drawn grid, ``source`` the matrix's,
    and ``block`` how many of the matrix's rows and columns one drawn cell stands for.
    ``summary`` is the title's extra line that says so (empty when every entry is drawn), and
    ``title_lines`` the title and summary as drawn, wrapped to the picture's width.
    """

    fig_w: int
    fig_h: int
    left: int
    top: int
    width: int
    height: int
    shape: tuple[int, int]
    source: tuple[int, int]
    block: tuple[int, int] = (1, 1)
    summary: str = ""
    title_lines: tuple[str, ...] = ()

    @property
    def cell_w(self) -> float:
        return self.width / self.shape[1]

    @property
    def cell_h(self) -> float:
        return self.height / self.shape[0]

    def center(self, i: int, j: int) -> tuple[int, int]:
        """The pixel (x, y) at the centre of the cell that holds the matrix's entry (i, j).

        Examples
        --------
        >>> g = geometry((5, 15))
        >>> g.cell_w == g.cell_h == 40, g.center(0, 0) == (g.left + 20, g.top + 20)
        (True, True)
        """
        r, c = i // self.block[0], j // self.block[1]
        return int(self.left + (c + 0.5) * self.cell_w), int(self.top + (r + 0.5) * self.cell_h)


def _text_px(labels: Sequence[str], px_per_char: float = 7) -> int:
    """About how wide the longest label prints (8 points: 7 px a character), in pixels."""
    return math.ceil(px_per_char * max((len(s) for s in labels), default=1))


def blocks(count: int, limit: int, group: int | None = None) -> int:
    """How many entries along an axis of ``count`` one drawn cell stands for, at most ``limit`` cells.

    With ``group`` (n, the columns of one weight group w[i,·]), a block is a divisor of n or a
    multiple of it, so no cell mixes two groups' entries unless a whole number of groups does.

    Examples
    --------
    >>> blocks(300, 500), blocks(2000, 500), blocks(65536, 500, group=256), blocks(6400, 500, group=100)
    (1, 4, 256, 20)
    """
    need = -(-count // limit)
    if need <= 1:
        return 1
    if not group or count % group:
        return need
    if need >= group:
        return -(-need // group) * group
    small = [d for d in range(1, math.isqrt(group) + 1) if group % d == 0]
    return min(d for d in {*small, *(group // d for d in small)} if d >= need)


def geometry(
    shape: tuple[int, int],
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    group_labels: Sequence[str] = (),
    groups: int | None = None,
    title: str = "",
    axes: tuple[str, str, str] = ("", "", ""),
    kind: str = "matrix",
    max_cells: tuple[int, int] = MAX_CELLS,
) -> Geometry:
    """The layout of a heatmap of a matrix of ``shape`` (or of K bars, ``shape = (K, 1)``).

    Cells are square, up to 40 px, unless the matrix is so long and thin that square cells would
    leave a sliver: then each axis fills about 1000 × 800 px. More than ``max_cells`` rows or
    columns (cells thinner than 2 px; bars thinner than 4 px) are summarised in blocks, which
    with ``groups`` follow the weight groups (:func:`blocks`). ``axes`` are the labels of the rows,
    the columns and the values; each takes room only when given.

    Examples
    --------
    >>> g = geometry((256, 65536), groups=256)
    >>> g.shape, g.block, (g.width, g.height)
    ((256, 256), (1, 256), (768, 768))
    >>> g.summary
    'each cell: the entry of largest |value| in a block of 1×256 entries'
    >>> geometry((100000, 1), kind="bars").shape
    (200, 1)
    """
    rows, cols = shape
    if kind == "bars":
        b = blocks(rows, MAX_BARS)
        block, shown = (b, 1), (-(-rows // b), 1)
        height, width = max(200, min(TARGET_H, 22 * shown[0])), 500
        what = f"each bar: the entry of largest |value| among {b} outputs"
    else:
        block = (blocks(rows, max_cells[0]), blocks(cols, max_cells[1], groups))
        if block[0] > 1 and block[1] > 1 and not groups:
            block = (max(block), max(block))  # both axes alike: a square matrix stays square
        shown = (-(-rows // block[0]), -(-cols // block[1]))
        cw = max(1, min(CELL_MAX, TARGET_W // shown[1]))
        ch = max(1, min(CELL_MAX, TARGET_H // shown[0]))
        if min(cw, ch) >= SQUARE_FROM:
            cw = ch = min(cw, ch)
        # else a long thin matrix: square cells would make it a sliver, so each axis fills its target
        width, height = cw * shown[1], ch * shown[0]
        what = f"each cell: the entry of largest |value| in a block of {block[0]}×{block[1]} entries"
    uneven = rows % block[0] or cols % block[1]
    summary = "" if block == (1, 1) else what + (" (fewer at the edge)" if uneven else "")
    row_axis, col_axis, value_axis = axes
    left = 16 + _text_px(_drawn(row_labels, height)) + (16 if row_axis else 0)
    # column labels, or with too many columns the groups', print on end when longer than two characters
    shown_cols = _drawn(col_labels if _every(cols, width, 14) or not group_labels else group_labels, width)
    if kind == "matrix":
        bottom = 16 + (_text_px(shown_cols) if _text_px(shown_cols) > 14 else 14) + (16 if col_axis else 0)
        right = 110 + (16 if value_axis else 0)
    else:
        bottom = 38 + (16 if value_axis else 0)
        right = 30
    # a title longer than the picture widens it up to TITLE_MIN_W and wraps beyond (10 points:
    # about 8.5 px a character), so that a tall thin matrix is not drawn beside an empty field
    lines = [*(title.split("\n") if title else []), *([summary] if summary else [])]
    plot_w = left + width + right
    room = max(plot_w, min(TITLE_MIN_W, left + 10 + _text_px(lines, 8.5))) - left - 10
    chars = max(1, int(room // 8.5))
    wrapped = [part for line in lines for part in textwrap.wrap(line, chars, break_long_words=False) or [""]]
    top = 18 + 18 * max(1, len(wrapped))
    fig_w = max(plot_w, left + 10 + _text_px(wrapped, 8.5))
    return Geometry(
        fig_w=fig_w,
        fig_h=top + height + bottom,
        left=left,
        top=top,
        width=width,
        height=height,
        shape=shown,
        source=shape,
        block=block,
        summary=summary,
        title_lines=tuple(wrapped),
    )


def _drawn(labels: Sequence[str], px: int) -> list[str]:
    """The labels an axis of ``px`` pixels can show (:func:`_ticks`), and the last (the longest of
    numbered ones): those that take room. Only these are made, of millions a Jacobian may have."""
    if not len(labels):
        return []
    return [labels[i] for i in _ticks(len(labels), px, 14)] + [labels[len(labels) - 1]]


def _every(count: int, px: int, room: int) -> bool:
    """Whether ``count`` labels fit along ``px`` pixels, ``room`` pixels each."""
    return count * room <= px


def shrink(M: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """M summarised in blocks of ``rows`` × ``cols`` entries (fewer at the edges), keeping the
    entry of largest |value| in each, with its sign.

    Taking the largest entry, not the mean, keeps a lone large derivative visible, and its sign.

    Examples
    --------
    >>> shrink(np.array([[1.0, -3.0, 2.0, 0.5]]), 1, 2)
    array([[-3.,  2.]])
    """
    if (rows, cols) == (1, 1):
        return M
    r_edges, c_edges = np.arange(0, M.shape[0], rows), np.arange(0, M.shape[1], cols)
    # the axis with the larger blocks first: what is held on the way is M's size over that block
    order = [(c_edges, 1), (r_edges, 0)] if cols >= rows else [(r_edges, 0), (c_edges, 1)]
    hi, lo = M, M
    for edges, axis in order:
        hi, lo = np.maximum.reduceat(hi, edges, axis=axis), np.minimum.reduceat(lo, edges, axis=axis)
    return np.where(hi >= -lo, hi, lo)


def require_matplotlib() -> Any:
    """matplotlib, or the OutputError that says how to install it: the writer asks before any
    work, so that a picture without the plot extra is refused before its result is computed."""
    try:
        import matplotlib  # an optional extra, and slow to import: only when a picture is asked for
    except ImportError:
        raise OutputError(f"drawing a picture needs matplotlib: {PLOT_EXTRA}") from None
    return matplotlib


def peak(M: np.ndarray) -> float:
    """The colour scale's ends are ±this: the largest |entry| (1 for an all-zero matrix).

    Examples
    --------
    >>> peak(np.array([0.03, -0.09])), peak(np.zeros(2))
    (0.09, 1.0)
    """
    return float(np.max(np.abs(M), initial=0.0)) or 1.0


def _ticks(count: int, px: int, room: int) -> np.ndarray:
    """Indices to label along an axis of ``count`` entries and ``px`` pixels: all when they fit,
    else about one per ``room`` pixels at round steps."""
    if _every(count, px, room):
        return np.arange(count)
    want = max(2, px // room)
    raw = count / want
    step = min(
        s * 10 ** math.floor(math.log10(raw))
        for s in (1, 2, 5, 10)
        if s * 10 ** math.floor(math.log10(raw)) >= raw
    )
    return np.arange(0, count, max(1, int(step)))


class _Numbered(Sequence[str]):
    """``"0", "1", …`` (or ``pattern`` filled with the index), made when read."""

    def __init__(self, size: int, pattern: str = "{}"):
        self.size, self.pattern = size, pattern

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self.pattern.format(j) for j in range(*i.indices(self.size))]
        if not -self.size <= i < self.size:
            raise IndexError(i)
        return self.pattern.format(i % self.size)


def _at(index: Any, block: int) -> Any:
    """Where the source's entry ``index`` lies along an axis drawn one cell per ``block`` entries."""
    return (np.asarray(index) + 0.5) / block - 0.5


def _inches(pixels: int) -> float:
    """``pixels`` in inches at :data:`DPI`, the float that gives back every pixel: matplotlib before
    3.11 cuts the canvas to whole pixels downward, and 903 / 100 · 100 is 902.99…, so such a
    picture came out a pixel short of its geometry. Only those sizes move, by one unit of the last
    place: where the quotient is exact, the layout stays as every version draws it."""
    inches = pixels / DPI
    return inches if int(inches * DPI) == pixels else math.nextafter(inches, math.inf)


def draw(
    M: np.ndarray,
    *,
    fmt: str = "png",
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "",
    groups: int | None = None,
    group_labels: Sequence[str] | None = None,
    axes: tuple[str, str, str] = ("", "", ""),
    kind: str = "matrix",
    max_cells: tuple[int, int] = MAX_CELLS,
) -> tuple[bytes, list[str]]:
    """A heatmap of ``M`` (or bars of a vector) as the bytes of a PNG, SVG or PDF file.

    Parameters
    ----------
    M : ndarray
        The matrix (rows = outputs h_t), or for ``kind="bars"`` a vector such as h.
    fmt : {"png", "svg", "pdf"}
    row_labels, col_labels : sequence of str, optional
        One per row and column (``h₀``…, ``w[0,0]``…); indices when not given. Only as many are
        shown as fit.
    title : str
        What is drawn: the function, the derivative, the method, the sample; may hold newlines.
        It is also the PDF's and the SVG's title. A summarised picture gets a line more.
    groups : int, optional
        For dh/dW: n, the columns per output. Thin lines part the K blocks where they are wide
        enough, a summary's blocks keep within them, and when the columns are too many to label
        one by one, each block gets one tick (``group_labels``, else ``w[i,·]``).
    axes : (str, str, str)
        The labels of the rows (``output hₜ``), the columns and the values (the colour bar; for
        bars, the horizontal axis). Empty ones are left out.
    kind : {"matrix", "bars"}
    max_cells : (int, int)
        Rows and columns drawn before entries are summarised in blocks (the largest |entry| of
        each); bars are summarised beyond 200.

    Returns
    -------
    bytes, list of str
        The file's bytes, and notes (that the matrix was summarised, say).

    Raises
    ------
    OutputError
        When matplotlib is not installed (the message names ``smjac[plot]``), or for an unknown
        ``fmt`` or ``kind``.

    Notes
    -----
    The colour of an entry v is ``RdBu_r((v / m + 1) / 2)`` with ``m = max|M|``: +v and −v sit at
    the same distance from white.

    Examples
    --------
    >>> import pytest; _ = pytest.importorskip("matplotlib")  # the smjac[plot] extra
    >>> data, notes = draw(np.array([[0.5, -0.5], [-0.5, 0.5]]), fmt="svg")
    >>> data[:5], notes
    (b'<?xml', [])
    """
    if fmt not in FORMATS:
        raise OutputError(f"a picture is .png, .svg or .pdf, not .{fmt}")
    if kind not in KINDS:
        raise OutputError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    M = np.asarray(M)  # no float64 copy of a large matrix: only the summary drawn is converted
    if not np.issubdtype(M.dtype, np.floating):
        M = M.astype(np.float64)
    if kind == "bars":
        M = M.reshape(-1, 1)
    M = np.atleast_2d(M)
    rows, cols = M.shape
    if kind == "bars":
        groups = None
    if groups and cols % groups:
        groups = None  # not a Jacobian with respect to W: no weight groups to show
    # labels are made only where they are drawn (see _drawn): never one per column of millions
    rl = row_labels if row_labels is not None else _Numbered(rows)
    cl = col_labels if col_labels is not None else _Numbered(cols)
    names = group_labels if group_labels is not None else _Numbered(cols // (groups or cols), "w[{},·]")
    g = geometry(
        (rows, cols),
        row_labels=rl,
        col_labels=cl,
        group_labels=names if groups else (),
        groups=groups,
        title=title,
        axes=axes,
        kind=kind,
        max_cells=max_cells,
    )
    mpl = require_matplotlib()
    from matplotlib import colors
    from matplotlib.figure import Figure

    notes: list[str] = []
    if g.summary:
        what = f"{rows} values are" if kind == "bars" else f"{rows}×{cols} matrix is"
        notes.append(
            f"the {what} summarised as {g.shape[0]}"
            + ("" if kind == "bars" else f"×{g.shape[1]}")
            + f" ({g.summary}); write .npy or .csv for every number"
        )
    shown = shrink(M, *g.block).astype(np.float64)
    full_title = "\n".join([title, g.summary]) if g.summary and title else title or g.summary
    # A Figure made directly, never through pyplot: no display is opened, no backend is chosen for
    # the whole process (a user's own pyplot session is left as it was), and nothing is global.
    with mpl.rc_context(
        {
            "svg.hashsalt": "smjac",
            "svg.fonttype": "none",  # text stays text: searchable, selectable, smaller
            "font.size": 8,
            "axes.titlesize": 10,
            "path.simplify": False,
        }
    ):
        fig = Figure(figsize=(_inches(g.fig_w), _inches(g.fig_h)), dpi=DPI)
        ax = fig.add_axes(
            (g.left / g.fig_w, 1 - (g.top + g.height) / g.fig_h, g.width / g.fig_w, g.height / g.fig_h)
        )
        row_axis, col_axis, value_axis = axes
        if kind == "bars":
            _bars(ax, shown[:, 0], rl, g, annotate=rows <= 30)
            ax.set_xlabel(value_axis)
        else:
            m = peak(shown)
            image = ax.imshow(
                shown,
                cmap=CMAP,
                norm=colors.Normalize(vmin=-m, vmax=m),
                aspect="auto",
                interpolation="nearest" if fmt == "png" else "none",
            )
            _label_matrix(ax, rows, cols, rl, cl, g, groups, names)
            ax.set_xlabel(col_axis)
            bar_ax = fig.add_axes(
                (
                    (g.left + g.width + 16) / g.fig_w,
                    1 - (g.top + g.height) / g.fig_h,
                    14 / g.fig_w,
                    g.height / g.fig_h,
                )
            )
            bar = fig.colorbar(image, cax=bar_ax)
            ticks = [-m, -m / 2, 0.0, m / 2, m]
            bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
            bar.set_label(value_axis)
        ax.set_ylabel(row_axis)
        ax.set_title("\n".join(g.title_lines), loc="left")
        buf = io.BytesIO()
        metadata = {"Title": full_title, **METADATA[fmt]}
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    return buf.getvalue(), notes


def _label_matrix(
    ax: Any,
    rows: int,
    cols: int,
    rl: Sequence[str],
    cl: Sequence[str],
    g: Geometry,
    groups: int | None,
    names: Sequence[str],
) -> None:
    br, bc = g.block
    r_ticks = _ticks(rows, g.height, 14)
    ax.set_yticks(_at(r_ticks, br), [rl[i] for i in r_ticks])
    if groups and not _every(cols, g.width, 14):
        K = cols // groups
        longest = max(map(len, _drawn(names, g.width)))
        picked = _ticks(K, g.width, 14 + 7 * longest if g.width // K < 14 else 14)
        ax.set_xticks(_at(picked * groups + (groups - 1) / 2, bc), [names[i] for i in picked], rotation=90)
    else:
        c_ticks = _ticks(cols, g.width, 14)
        shown = [cl[j] for j in c_ticks]
        ax.set_xticks(_at(c_ticks, bc), shown, rotation=90 if max(map(len, shown)) > 2 else 0)
    ax.tick_params(length=2, pad=2)
    K = cols // groups if groups else 0
    if groups and K > 1 and g.width / K >= GROUP_LINES_FROM:
        # hairlines between the K blocks of n columns (dh/dz ⊗ xᵀ shows as K scaled copies of x),
        # grey and thin so that they part the blocks without hiding them
        for i in range(1, K):
            ax.axvline(_at(i * groups - 0.5, bc), color="0.6", linewidth=0.5)


def _bars(ax: Any, h: np.ndarray, rl: Sequence[str], g: Geometry, *, annotate: bool) -> None:
    shown = h.size
    y = np.arange(shown)
    ax.barh(y, h, height=0.8, color=np.where(h >= 0, RED, BLUE))
    ax.axvline(0, color="0.3", linewidth=0.6)
    ax.set_ylim(shown - 0.5, -0.5)
    K = g.source[0]
    ticks = _ticks(K, g.height, 14)
    ax.set_yticks(_at(ticks, g.block[0]), [rl[i] for i in ticks])
    ax.tick_params(length=2, pad=2)
    lo, hi = min(0.0, float(h.min())), max(0.0, float(h.max()))
    span = (hi - lo) or 1.0
    ax.set_xlim(lo - 0.02 * span, hi + (0.18 if annotate else 0.02) * span)
    if annotate:
        for t, v in enumerate(h):
            ax.annotate(
                f"{v:.4g}",
                (max(v, 0.0), t),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
