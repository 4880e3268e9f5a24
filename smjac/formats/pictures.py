"""Heatmaps of a result, as PNG, SVG or PDF bytes, drawn with matplotlib (the ``smjac[plot]`` extra).

Red is positive and blue negative, on a diverging colour map centred on 0; rows are the outputs
h_t. Every size is laid out in pixels, so the picture's size and where each cell lands are known
(:func:`geometry`), and the bytes are the same from run to run. Nothing here prints: notes come
back as strings for the caller to show.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OutputError

FORMATS = ("png", "svg", "pdf")
KINDS = ("matrix", "bars")
PLOT_EXTRA = "pip install 'smjac[plot]'"
DPI = 100
MAX_SIDE = 2000  # cells drawn along each axis before entries are merged: the pixel budget is its square
CELL_MAX = 40  # px; a small matrix gets square cells of up to this size
TARGET_W, TARGET_H = 1000, 800  # px the cells aim to fill
SQUARE_FROM = 4  # px; cells are square when both axes allow at least this, else each axis fills its target
CMAP = "RdBu_r"  # red positive, blue negative, white at 0


@dataclass(frozen=True)
class Geometry:
    """Where things go, in pixels from the picture's top-left corner.

    ``left``, ``top``, ``width`` and ``height`` bound the cells (or the bars); ``cell_w`` and
    ``cell_h`` are one drawn cell's size. ``shape`` is the drawn grid, ``source`` the matrix's.
    """

    fig_w: int
    fig_h: int
    left: int
    top: int
    width: int
    height: int
    shape: tuple[int, int]
    source: tuple[int, int]

    @property
    def cell_w(self) -> float:
        return self.width / self.shape[1]

    @property
    def cell_h(self) -> float:
        return self.height / self.shape[0]

    def center(self, i: int, j: int) -> tuple[int, int]:
        """The pixel (x, y) at the centre of the matrix's entry (i, j), once drawn.

        Examples
        --------
        >>> g = geometry((5, 15))
        >>> g.cell_w == g.cell_h == 40, g.center(0, 0) == (g.left + 20, g.top + 20)
        (True, True)
        """
        r, c = i * self.shape[0] // self.source[0], j * self.shape[1] // self.source[1]
        return int(self.left + (c + 0.5) * self.cell_w), int(self.top + (r + 0.5) * self.cell_h)


def _text_px(labels: Sequence[str]) -> int:
    """About how wide the longest label prints at 8 points, in pixels (no font needed)."""
    return 7 * max((len(s) for s in labels), default=1)


def geometry(
    shape: tuple[int, int],
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    group_labels: Sequence[str] = (),
    title_lines: int = 1,
    kind: str = "matrix",
    max_side: int = MAX_SIDE,
) -> Geometry:
    """The layout of a heatmap of a matrix of ``shape`` (or of K bars, ``shape = (K, 1)``).

    Cells are square, up to 40 px, unless the matrix is so long and thin that square cells would
    leave a sliver: then each axis fills about 1000 × 800 px (at least a pixel an entry). More
    than ``max_side`` rows or columns are merged in blocks.

    Examples
    --------
    >>> g = geometry((1000, 1000))
    >>> (g.width, g.height, g.shape)
    (1000, 1000, (1000, 1000))
    >>> geometry((50, 200000)).shape
    (50, 2000)
    """
    rows, cols = shape
    shown = (min(rows, max_side), min(cols, max_side))
    if kind == "bars":
        height = max(200, min(TARGET_H, 22 * rows))
        width = 500
    else:
        cw = max(1, min(CELL_MAX, TARGET_W // shown[1]))
        ch = max(1, min(CELL_MAX, TARGET_H // shown[0]))
        if min(cw, ch) >= SQUARE_FROM:
            cw = ch = min(cw, ch)
        # else a long thin matrix: square cells would make it a sliver, so each axis fills its target
        width, height = cw * shown[1], ch * shown[0]
    left = 16 + _text_px(row_labels)
    top = 18 + 18 * title_lines
    # column labels, or with too many columns the groups', print on end when longer than two characters
    shown_cols = col_labels if _every(cols, width, 14) or not group_labels else group_labels
    bottom = 16 + (_text_px(shown_cols) if kind == "matrix" and _text_px(shown_cols) > 14 else 22)
    right = 110 if kind == "matrix" else 30
    return Geometry(
        fig_w=left + width + right,
        fig_h=top + height + bottom,
        left=left,
        top=top,
        width=width,
        height=height,
        shape=shown if kind == "matrix" else (rows, 1),
        source=shape,
    )


def _every(count: int, px: int, room: int) -> bool:
    """Whether ``count`` labels fit along ``px`` pixels, ``room`` pixels each."""
    return count * room <= px


def shrink(M: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """M merged into at most rows × cols blocks, keeping the entry of largest |value| in each.

    Taking the largest entry, not the mean, keeps a lone large derivative visible, and its sign.

    Examples
    --------
    >>> shrink(np.array([[1.0, -3.0, 2.0, 0.5]]), 1, 2)
    array([[-3.,  2.]])
    """
    r_edges = np.linspace(0, M.shape[0], min(rows, M.shape[0]) + 1).astype(int)[:-1]
    c_edges = np.linspace(0, M.shape[1], min(cols, M.shape[1]) + 1).astype(int)[:-1]
    hi = np.maximum.reduceat(np.maximum.reduceat(M, c_edges, axis=1), r_edges, axis=0)
    lo = np.minimum.reduceat(np.minimum.reduceat(M, c_edges, axis=1), r_edges, axis=0)
    return np.where(hi >= -lo, hi, lo)


def _matplotlib() -> Any:
    try:
        import matplotlib  # an optional extra, and slow to import: only when a picture is asked for
    except ImportError:
        raise OutputError(f"drawing a picture needs matplotlib: {PLOT_EXTRA}") from None
    return matplotlib


def _norm(M: np.ndarray, colors: Any) -> Any:
    """Centred on 0: a two-slope scale when there are both signs, else symmetric limits."""
    lo, hi = float(np.min(M)), float(np.max(M))
    if lo < 0 < hi:
        return colors.TwoSlopeNorm(vcenter=0.0, vmin=lo, vmax=hi)
    peak = max(abs(lo), abs(hi)) or 1.0
    return colors.Normalize(vmin=-peak, vmax=peak)


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


def draw(
    M: np.ndarray,
    *,
    fmt: str = "png",
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "",
    groups: int | None = None,
    group_labels: Sequence[str] | None = None,
    kind: str = "matrix",
    max_side: int = MAX_SIDE,
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
        The shape, the method and the layer's options, say; may hold newlines.
    groups : int, optional
        For dh/dW: n, the columns per output. Thin lines part the K blocks, and when the columns
        are too many to label one by one, each block gets one tick (``group_labels``, else
        ``w[i,·]``).
    kind : {"matrix", "bars"}
    max_side : int
        Rows and columns drawn before entries are merged in blocks (the largest |entry| of each).

    Returns
    -------
    bytes, list of str
        The file's bytes, and notes (that the matrix was shrunk, say).

    Raises
    ------
    OutputError
        When matplotlib is not installed (the message names ``smjac[plot]``), or for an unknown
        ``fmt`` or ``kind``.

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
    M = np.asarray(M, dtype=np.float64)
    if kind == "bars":
        M = M.reshape(-1, 1)
    M = np.atleast_2d(M)
    rows, cols = M.shape
    rl = list(row_labels) if row_labels is not None else [str(i) for i in range(rows)]
    cl = list(col_labels) if col_labels is not None else [str(j) for j in range(cols)]
    names = (
        list(group_labels)
        if group_labels is not None
        else [f"w[{i},·]" for i in range(cols // (groups or cols))]
    )
    g = geometry(
        (rows, cols),
        row_labels=rl,
        col_labels=cl,
        group_labels=names if groups else (),
        title_lines=title.count("\n") + 1,
        kind=kind,
        max_side=max_side,
    )
    mpl = _matplotlib()
    from matplotlib import colors
    from matplotlib.figure import Figure

    notes: list[str] = []
    # A Figure made directly, never through pyplot: no display is opened, no backend is chosen for
    # the whole process (a user's own pyplot session is left as it was), and nothing is global.
    with mpl.rc_context(
        {"svg.hashsalt": "smjac", "font.size": 8, "axes.titlesize": 10, "path.simplify": False}
    ):
        fig = Figure(figsize=(g.fig_w / DPI, g.fig_h / DPI), dpi=DPI)
        ax = fig.add_axes(
            (g.left / g.fig_w, 1 - (g.top + g.height) / g.fig_h, g.width / g.fig_w, g.height / g.fig_h)
        )
        if kind == "bars":
            _bars(ax, M[:, 0], rl, g)
        else:
            shown = shrink(M, *g.shape) if g.shape != M.shape else M
            if shown.shape != M.shape:
                notes.append(
                    f"the {rows}×{cols} matrix is drawn as {shown.shape[0]}×{shown.shape[1]} blocks, "
                    "each the entry of largest |value| in it; write .npy or .csv for every number"
                )
            norm = _norm(shown, colors)
            image = ax.imshow(
                shown,
                cmap=CMAP,
                norm=norm,
                aspect="auto",
                interpolation="nearest" if fmt == "png" else "none",
                extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),  # original indices, whatever was merged
            )
            _label_matrix(ax, rows, cols, rl, cl, g, groups, names)
            bar_ax = fig.add_axes(
                (
                    (g.left + g.width + 16) / g.fig_w,
                    1 - (g.top + g.height) / g.fig_h,
                    14 / g.fig_w,
                    g.height / g.fig_h,
                )
            )
            bar = fig.colorbar(image, cax=bar_ax)
            # the two-slope scale squeezes one side; ticks at its ends, halves and 0 keep both legible
            ends = (float(norm.vmin), float(norm.vmax))
            ticks = sorted({ends[0], ends[0] / 2, 0.0, ends[1] / 2, ends[1]})
            bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
        ax.set_title(title, loc="left")
        buf = io.BytesIO()
        metadata: dict[str, Any] = {
            "png": {"Software": None},
            "svg": {"Date": None, "Creator": None},
            "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
        }[fmt]
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
    r_ticks = _ticks(rows, g.height, 14)
    ax.set_yticks(r_ticks, [rl[i] for i in r_ticks])
    if groups and cols % groups == 0 and not _every(cols, g.width, 14):
        K = cols // groups
        picked = _ticks(K, g.width, 14 + 7 * max(len(s) for s in names) if g.width // K < 14 else 14)
        ax.set_xticks(picked * groups + (groups - 1) / 2, [names[i] for i in picked], rotation=90)
    else:
        c_ticks = _ticks(cols, g.width, 14)
        ax.set_xticks(c_ticks, [cl[j] for j in c_ticks], rotation=90 if max(map(len, cl)) > 2 else 0)
    ax.tick_params(length=2, pad=2)
    if groups and cols % groups == 0 and cols // groups > 1 and g.width / (cols // groups) >= 3:
        # thin lines between the K blocks of n columns: dh/dz ⊗ xᵀ shows as K scaled copies of x
        for i in range(1, cols // groups):
            ax.axvline(i * groups - 0.5, color="0.25", linewidth=0.6)


def _bars(ax: Any, h: np.ndarray, rl: Sequence[str], g: Geometry) -> None:
    K = h.size
    y = np.arange(K)
    ax.barh(y, h, height=0.8, color=np.where(h >= 0, "#b2182b", "#2166ac"))
    ax.axvline(0, color="0.3", linewidth=0.6)
    ax.set_ylim(K - 0.5, -0.5)
    ticks = _ticks(K, g.height, 14)
    ax.set_yticks(ticks, [rl[i] for i in ticks])
    ax.tick_params(length=2, pad=2)
    lo, hi = min(0.0, float(h.min())), max(0.0, float(h.max()))
    span = (hi - lo) or 1.0
    ax.set_xlim(lo - 0.02 * span, hi + 0.18 * span)
    if K <= 30:
        for t, v in enumerate(h):
            ax.annotate(
                f"{v:.4g}",
                (max(v, 0.0), t),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
