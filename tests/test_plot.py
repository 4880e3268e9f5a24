"""Pictures: PNG, SVG and PDF that decode, have the promised size, and are red where positive."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

import smjac
from smjac.errors import OutputError
from smjac.formats import pictures as plot
from smjac.notation import labels, weight_labels

pytest.importorskip("matplotlib")
from matplotlib.image import imread


def png_pixels(data: bytes) -> np.ndarray:
    return imread(io.BytesIO(data), format="png")[..., :3]


def is_red(rgb: np.ndarray) -> bool:
    return bool(rgb[0] > rgb[2] + 0.1)


def is_blue(rgb: np.ndarray) -> bool:
    return bool(rgb[2] > rgb[0] + 0.1)


def post_jacobian() -> np.ndarray:
    W = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 0.1], [0.11, 0.12, 0.13, 0.14, 0.15]])
    return smjac.jacobian(W, [0.1, 0.5, 0.4], of="h", wrt="W")


@pytest.mark.parametrize(
    "M",
    [
        post_jacobian(),
        np.array([[2.0, -1.0], [-3.0, 0.5]]),
        np.random.default_rng(1).standard_normal((50, 2000)),
        np.random.default_rng(2).standard_normal((300, 7)),
    ],
    ids=["post-5x15", "2x2", "50x2000", "300x7"],
)
def test_png_has_the_promised_size_and_sign_colours(M):
    rows, cols = M.shape
    kw = {"groups": 3, "col_labels": weight_labels(5, 3)} if M.shape == (5, 15) else {}
    data, notes = plot.draw(M, fmt="png", row_labels=labels("h", rows), title=f"{rows}×{cols}", **kw)
    assert notes == []
    img = png_pixels(data)
    g = plot.geometry(
        M.shape, row_labels=labels("h", rows), col_labels=kw.get("col_labels", [str(j) for j in range(cols)])
    )
    assert img.shape[:2] == (g.fig_h, g.fig_w)
    # sample cells of clear sign, away from the thin block lines
    picks = np.argwhere(np.abs(M) > 0.3 * np.abs(M).max())[
        :: max(1, int(np.sum(np.abs(M) > 0.3 * np.abs(M).max())) // 40)
    ]
    assert len(picks) > 0
    for i, j in picks:
        x, y = g.center(int(i), int(j))
        assert (is_red if M[i, j] > 0 else is_blue)(img[y, x]), (i, j, M[i, j], img[y, x])


def test_small_matrices_get_square_cells():
    g = plot.geometry((5, 15))
    assert g.cell_w == g.cell_h == plot.CELL_MAX
    g = plot.geometry((50, 2000))
    assert g.cell_w == 1 and g.cell_h > 1  # long and thin: stretched rather than a sliver


def test_large_matrix_is_shrunk_by_the_largest_entry_with_a_note():
    M = np.zeros((10, 9000))
    M[3, 4321] = -5.0  # one entry, which a mean over its block would wash out
    data, notes = plot.draw(M, fmt="png", max_side=1000)
    assert len(notes) == 1 and "10×9000" in notes[0] and "10×1000" in notes[0]
    g = plot.geometry(M.shape, max_side=1000)
    img = png_pixels(data)
    x, y = g.center(3, 4321)
    assert is_blue(img[y, x])
    x, y = g.center(6, 100)
    assert not is_blue(img[y, x]) and not is_red(img[y, x])


def test_shrink_keeps_sign_and_magnitude():
    M = np.array([[1.0, -4.0, 0.0, 2.0], [3.0, 0.5, -1.0, 0.0]])
    np.testing.assert_array_equal(plot.shrink(M, 1, 2), [[-4.0, 2.0]])
    np.testing.assert_array_equal(plot.shrink(M, 2, 4), M)


def test_bars_red_and_blue_by_sign():
    h = np.array([0.5, -0.25, 0.125])
    data, _ = plot.draw(h, fmt="png", kind="bars", row_labels=labels("h", 3), title="h")
    img = png_pixels(data)
    g = plot.geometry((3, 1), row_labels=labels("h", 3), kind="bars")
    assert img.shape[:2] == (g.fig_h, g.fig_w)
    row_y = [int(g.top + (t + 0.5) * g.height / 3) for t in range(3)]
    reds = [np.any([is_red(p) for p in img[y, g.left : g.left + g.width]]) for y in row_y]
    blues = [np.any([is_blue(p) for p in img[y, g.left : g.left + g.width]]) for y in row_y]
    assert reds == [True, False, True] and blues == [False, True, False]


def test_svg_decodes_with_its_size_and_the_labels():
    data, _ = plot.draw(
        post_jacobian(),
        fmt="svg",
        row_labels=labels("h", 5),
        col_labels=weight_labels(5, 3),
        groups=3,
        title="dh/dW",
    )
    text = data.decode()
    g = plot.geometry((5, 15), row_labels=labels("h", 5), col_labels=weight_labels(5, 3))
    m = re.search(r'<svg[^>]*width="([\d.]+)pt" height="([\d.]+)pt"', text)
    assert m is not None
    # points at 72 a inch, pixels at 100: the same size
    assert (round(float(m[1]) * 100 / 72), round(float(m[2]) * 100 / 72)) == (g.fig_w, g.fig_h)
    import xml.etree.ElementTree as ET

    ET.fromstring(data)  # well-formed
    assert "<image" in text  # the cells, as one embedded image


def test_svg_image_is_red_where_positive():
    """The SVG embeds the cells as a PNG; decode it and sample the cells."""
    import base64

    M = np.array([[1.0, -1.0, 2.0], [-2.0, 0.5, -0.5]])
    text = plot.draw(M, fmt="svg")[0].decode()
    png = base64.b64decode(re.search(r'xlink:href="data:image/png;base64,([^"]+)"', text)[1])
    cells = png_pixels(png)
    assert cells.shape[:2] == M.shape  # drawn at one pixel an entry, unscaled
    for (i, j), v in np.ndenumerate(M):
        assert (is_red if v > 0 else is_blue)(cells[i, j])


@pytest.mark.parametrize("fmt", plot.FORMATS)
def test_bytes_are_reproducible(fmt):
    M = post_jacobian()
    assert plot.draw(M, fmt=fmt, title="t")[0] == plot.draw(M, fmt=fmt, title="t")[0]


def test_pdf_is_a_pdf():
    data, _ = plot.draw(np.eye(3) - 0.5, fmt="pdf")
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")


def test_all_zero_and_one_signed_matrices_draw():
    zeros = png_pixels(plot.draw(np.zeros((2, 2)), fmt="png")[0])
    g = plot.geometry((2, 2))
    x, y = g.center(0, 0)
    assert not is_red(zeros[y, x]) and not is_blue(zeros[y, x])
    pos = png_pixels(plot.draw(np.array([[1.0, 0.5]]), fmt="png")[0])
    g = plot.geometry((1, 2))
    assert is_red(pos[g.center(0, 0)[1], g.center(0, 0)[0]])


def test_unknown_format_and_missing_matplotlib(monkeypatch):
    with pytest.raises(OutputError, match=r"\.png, \.svg or \.pdf"):
        plot.draw(np.eye(2), fmt="gif")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(OutputError, match=r"pip install 'smjac\[plot\]'"):
        plot.draw(np.eye(2), fmt="png")
