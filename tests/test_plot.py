"""Pictures that tell the truth: PNG, SVG and PDF that decode at the promised size, with one colour
scale for both signs, labelled, titled, summarised when too large (keeping each block's extreme and
sign), with text as text, metadata, and the same bytes every run."""

from __future__ import annotations

import base64
import io
import re
import sys
import tracemalloc
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import smjac
from smjac.errors import OutputError
from smjac.formats import pictures as plot
from smjac.notation import labels, weight_labels

pytest.importorskip("matplotlib")
from matplotlib import colormaps
from matplotlib.image import imread

AXES = ("output hₜ", "weight w[i,j] (column i·n + j)", "∂hₜ/∂w[i,j]")


def png_pixels(data: bytes) -> np.ndarray:
    return imread(io.BytesIO(data), format="png")[..., :3]


def is_red(rgb: np.ndarray) -> bool:
    return bool(rgb[0] > rgb[2] + 0.1)


def is_blue(rgb: np.ndarray) -> bool:
    return bool(rgb[2] > rgb[0] + 0.1)


def lightness(rgb: np.ndarray) -> float:
    """CIELAB L* of an sRGB colour: 100 is white, 0 black; how strong a colour looks."""
    rgb = np.asarray(rgb, dtype=float)[:3]
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    Y = float(lin @ [0.2126, 0.7152, 0.0722])
    return 116 * np.cbrt(Y) - 16 if Y > 216 / 24389 else Y * 24389 / 27


def svg_text(data: bytes) -> str:
    """The text an SVG shows, from its <text> elements, joined by newlines."""
    root = ET.fromstring(data)
    return "\n".join("".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text"))


def post_jacobian() -> np.ndarray:
    W = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 0.1], [0.11, 0.12, 0.13, 0.14, 0.15]])
    return smjac.jacobian(W, [0.1, 0.5, 0.4], of="h", wrt="W")


def layer_jacobian(K: int, n: int, seed: int = 0) -> np.ndarray:
    """dh/dW of a K-output layer with n inputs, weights scaled so that softmax is not saturated."""
    rng = np.random.default_rng(seed)
    return smjac.jacobian(rng.standard_normal((n, K)) / np.sqrt(n), rng.standard_normal(n), of="h", wrt="W")


def draw_post(fmt: str, **kw):
    kw = {"row_labels": labels("h", 5), "col_labels": weight_labels(5, 3), "groups": 3, "axes": AXES, **kw}
    return plot.draw(post_jacobian(), fmt=fmt, **kw)


# ---- one colour scale, centred on zero ----


@pytest.mark.parametrize(
    "M",
    [
        post_jacobian(),
        np.array([[2.0, -1.0], [-3.0, 0.5]]),
        np.random.default_rng(1).standard_normal((50, 400)),
        np.random.default_rng(2).standard_normal((300, 7)),
    ],
    ids=["post-5x15", "2x2", "50x400", "300x7"],
)
def test_png_has_the_promised_size_and_each_entry_its_colour_on_one_scale(M):
    rows, cols = M.shape
    kw = {"groups": 3, "col_labels": weight_labels(5, 3)} if M.shape == (5, 15) else {}
    data, notes = plot.draw(M, fmt="png", row_labels=labels("h", rows), title=f"{rows}×{cols}", **kw)
    assert notes == []
    img = png_pixels(data)
    g = plot.geometry(
        M.shape,
        row_labels=labels("h", rows),
        col_labels=kw.get("col_labels", [str(j) for j in range(cols)]),
        groups=kw.get("groups"),
        title=f"{rows}×{cols}",
    )
    assert img.shape[:2] == (g.fig_h, g.fig_w) and g.block == (1, 1)
    m = np.abs(M).max()
    cmap = colormaps[plot.CMAP]
    # every so many entries; where cells are a few pixels, not those the axes' frame half covers
    inner = np.ones_like(M, dtype=bool)
    if g.cell_h < 6:
        inner[[0, -1], :] = False
    if g.cell_w < 6:
        inner[:, [0, -1]] = False
    picks = np.argwhere(inner)[:: max(1, int(inner.sum()) // 60)]
    for i, j in picks:
        x, y = g.center(int(i), int(j))
        # the colour map at (v/m + 1)/2, whatever the sign: one scale, ends at ±max|M|
        expected = np.array(cmap((M[i, j] / m + 1) / 2)[:3])
        np.testing.assert_allclose(img[y, x], expected, atol=2.5 / 255, err_msg=f"({i},{j}) = {M[i, j]}")


def test_equal_magnitudes_look_equally_strong_whatever_their_sign():
    v = np.array([0.09, 0.06, 0.03, 0.01])
    M = np.stack([np.append(v, 0.2), np.append(-v, 0.0)])  # more room above 0 than below
    img = png_pixels(plot.draw(M, fmt="png")[0])
    g = plot.geometry(M.shape)
    for j, value in enumerate(v):
        pos, neg = (img[g.center(i, j)[::-1]] for i in (0, 1))
        assert pos[0] > pos[2] and neg[2] > neg[0]  # red and blue, however pale
        assert abs(lightness(pos) - lightness(neg)) < 5, (value, lightness(pos), lightness(neg))
    # and strength grows with |value|
    strengths = [lightness(img[g.center(1, j)[::-1]]) for j in range(4)]
    assert strengths == sorted(strengths)


def test_the_posts_small_negative_terms_look_small():
    """The post's dh/dW runs from −0.025 to +0.089: its most negative entry is a pale blue, not the
    darkest one (it was, on two scales), and an entry of +0.0297 looks as strong as one of −0.0251
    would, not paler."""
    J = post_jacobian()
    img = png_pixels(draw_post("png")[0])
    g = plot.geometry((5, 15), row_labels=labels("h", 5), col_labels=weight_labels(5, 3), groups=3, axes=AXES)
    top = np.unravel_index(np.argmax(J), J.shape)
    low = np.unravel_index(np.argmin(J), J.shape)
    L_top, L_low = (lightness(img[g.center(*map(int, ij))[::-1]]) for ij in (top, low))
    assert J[low] / J[top] == pytest.approx(-0.2823, abs=1e-3)
    assert L_low > L_top + 30  # far lighter: 28 % of the magnitude
    # a positive entry of about the same size as the most negative one is about as light
    near = np.unravel_index(np.argmin(np.where(J > 0, np.abs(J + J[low]), np.inf)), J.shape)
    assert abs(J[near] + J[low]) < 0.01
    assert abs(lightness(img[g.center(*map(int, near))[::-1]]) - L_low) < 8


def test_colour_bar_is_symmetric_and_labelled_and_the_axes_too():
    data, _ = draw_post("svg", title="softmax: ∂h/∂W, shortcut method, 5×15")
    text = svg_text(data).split("\n")
    m = np.abs(post_jacobian()).max()
    ticks = [f"{t:.3g}".replace("-", "−") for t in (-m, -m / 2, 0.0, m / 2, m)]
    for tick in ticks:  # matplotlib prints a minus sign, not a hyphen
        assert tick in text or tick.replace("−", "-") in text, (tick, text)
    for label in AXES:
        assert label in text


def test_all_zero_and_one_signed_matrices_draw():
    zeros = png_pixels(plot.draw(np.zeros((2, 2)), fmt="png")[0])
    g = plot.geometry((2, 2))
    x, y = g.center(0, 0)
    assert not is_red(zeros[y, x]) and not is_blue(zeros[y, x])
    pos = png_pixels(plot.draw(np.array([[1.0, 0.5]]), fmt="png")[0])
    g = plot.geometry((1, 2))
    assert is_red(pos[g.center(0, 0)[1], g.center(0, 0)[0]])
    # one sign only: still the symmetric scale, so half the value is half as strong
    assert lightness(pos[g.center(0, 1)[::-1]]) > lightness(pos[g.center(0, 0)[::-1]]) + 20


# ---- large matrices are summarised, keeping the Kronecker blocks ----


def extremes(M: np.ndarray, br: int, bc: int) -> np.ndarray:
    """The entry of largest |value| of each br × bc block, by a loop (blocks at the edges smaller)."""
    R, C = -(-M.shape[0] // br), -(-M.shape[1] // bc)
    out = np.empty((R, C))
    for r in range(R):
        for c in range(C):
            block = M[r * br : (r + 1) * br, c * bc : (c + 1) * bc].ravel()
            out[r, c] = block[np.argmax(np.abs(block))]
    return out


@pytest.mark.parametrize("shape,block", [((7, 10), (3, 4)), ((6, 8), (2, 4)), ((5, 5), (1, 1))])
def test_shrink_keeps_each_blocks_extreme_with_its_sign(shape, block):
    M = np.random.default_rng(sum(shape)).standard_normal(shape)
    np.testing.assert_array_equal(plot.shrink(M, *block), extremes(M, *block))


def test_summary_blocks_keep_within_the_weight_groups():
    assert plot.blocks(300, 500) == 1
    assert plot.blocks(2000, 500) == 4
    assert plot.blocks(65536, 500, group=256) == 256  # one cell per w[i,·]
    assert plot.blocks(6400, 500, group=100) == 20  # five cells per w[i,·]
    assert plot.blocks(6464, 500, group=101) == 101  # a prime n: one cell per group
    assert plot.blocks(10000, 500, group=10) == 20  # two whole groups per cell
    for count, group in [(65536, 256), (6400, 100), (6464, 101), (10000, 10), (4096, 64)]:
        b = plot.blocks(count, 500, group)
        assert (group % b == 0 or b % group == 0) and count / b <= 500


def test_a_256_by_65536_jacobian_is_a_readable_grid_of_its_blocks():
    g = plot.geometry((256, 65536), groups=256, row_labels=labels("h", 256), axes=AXES)
    assert g.shape == (256, 256) and g.block == (1, 256)
    assert g.cell_w >= 3 and g.cell_h >= 3  # each block is a cell you can see
    assert g.fig_w < 1200 and g.fig_h < 1100
    assert g.summary == "each cell: the entry of largest |value| in a block of 1×256 entries"


def test_a_summarised_layer_keeps_each_blocks_sign_and_says_so():
    K, n = 48, 200
    J = layer_jacobian(K, n)
    kw = {"row_labels": labels("h", K), "col_labels": weight_labels(K, n), "groups": n, "axes": AXES}
    data, notes = plot.draw(J, fmt="png", title="dh/dW", **kw)
    g = plot.geometry(J.shape, title="dh/dW", **kw, group_labels=[f"w[{i},·]" for i in range(K)])
    assert g.block == (1, 20) and g.shape == (48, 480)  # ten cells for each w[i,·]
    assert len(notes) == 1 and f"{K}×{K * n}" in notes[0] and "48×480" in notes[0] and "1×20" in notes[0]
    img = png_pixels(data)
    assert img.shape[:2] == (g.fig_h, g.fig_w)
    summary = extremes(J, *g.block)
    m = np.abs(J).max()
    # the diagonal blocks h_t(1 − h_t)·x dominate: the summary still shows them, and every
    # clear cell has its block's sign
    strong = np.argwhere(np.abs(summary) > 0.2 * m)
    assert {int(r) for r, _ in strong} == set(range(K)) or len(strong) > K // 2
    for r, c in strong:
        x, y = g.center(int(r) * g.block[0], int(c) * g.block[1])
        assert (is_red if summary[r, c] > 0 else is_blue)(img[y, x]), (r, c, summary[r, c])
    # the strongest cell of each row lies in its own group, w[t,·]: the block diagonal
    assert all(int(np.argmax(np.abs(summary[t]))) * g.block[1] // n == t for t in range(K))


def test_a_lone_entry_survives_the_summary():
    M = np.zeros((10, 9000))
    M[3, 4321] = -5.0  # one entry, which a mean over its block would wash out
    data, notes = plot.draw(M, fmt="png", max_cells=(400, 1000))
    assert len(notes) == 1 and "10×9000" in notes[0] and "10×1000" in notes[0]
    g = plot.geometry(M.shape, max_cells=(400, 1000))
    img = png_pixels(data)
    x, y = g.center(3, 4321)
    assert is_blue(img[y, x])
    x, y = g.center(6, 100)
    assert not is_blue(img[y, x]) and not is_red(img[y, x])


def test_a_summary_says_so_in_the_title():
    J = layer_jacobian(64, 100)
    data, _ = plot.draw(J, fmt="svg", title="softmax: ∂h/∂W", groups=100, axes=AXES)
    text = svg_text(data)
    assert "softmax: ∂h/∂W" in text
    assert "each cell: the entry of largest |value| in a block of 1×20 entries" in text


def test_group_lines_part_the_blocks_without_hiding_them():
    """Lines between weight groups where the groups are wide, none where they are a few pixels:
    on an all-zero matrix almost every pixel of the cells keeps the colour of zero."""
    white = np.array(colormaps[plot.CMAP](0.5)[:3])
    for K, n, lines in [(5, 3, True), (64, 100, True), (200, 100, False)]:
        M = np.zeros((K, K * n))
        kw = {"groups": n, "row_labels": labels("h", K), "col_labels": weight_labels(K, n)}
        data, _ = plot.draw(M, fmt="png", **kw)
        g = plot.geometry(M.shape, **kw, group_labels=[f"w[{i},·]" for i in range(K)])
        # the cells, less the two pixels at each edge that the axes' frame covers
        cells = png_pixels(data)[g.top + 2 : g.top + g.height - 2, g.left + 2 : g.left + g.width - 2]
        off = np.any(np.abs(cells - white) > 3 / 255, axis=-1).mean()
        assert (off > 0) == lines and off < 0.08, (K, n, off)


def test_a_long_title_wraps_over_a_narrow_picture_instead_of_widening_it():
    """dh/dx of 1000 outputs and 3 inputs: its title and summary line, 38 and 76 characters, made
    the picture 800 px wide beside a plot of 300 (an empty field at the right). Now the picture
    widens to 560 px at most and the title wraps, every word of it drawn inside the picture."""
    M = np.random.default_rng(4).standard_normal((1000, 3))
    title = "softmax: ∂h/∂x, shortcut method, 1000×3"
    axes = ("output hₜ", "input xⱼ", "∂hₜ/∂xⱼ")
    kw = {"row_labels": labels("h", 1000), "col_labels": labels("x", 3), "title": title, "axes": axes}
    g = plot.geometry(M.shape, **kw)
    data, _ = plot.draw(M, fmt="png", **kw)
    img = png_pixels(data)
    assert img.shape[:2] == (g.fig_h, g.fig_w) and g.fig_w <= 560
    assert len(g.title_lines) >= 3 and " ".join(g.title_lines) == f"{title} {g.summary}"
    # the title band: ink in it, none in the last 4 columns (no word cut off at the edge)
    band = img[: g.top - 4]
    ink = np.any(band < 0.5, axis=-1)
    assert ink.any() and not ink[:, -4:].any()
    # the picture's own title (PDF, SVG) is the title as given, unwrapped
    svg = plot.draw(M, fmt="svg", **kw)[0].decode()
    assert f"<dc:title>{title}\n{g.summary}</dc:title>" in svg
    shown = svg_text(plot.draw(M, fmt="svg", **kw)[0])
    assert all(line in shown for line in g.title_lines)


# ---- bars ----


def test_bars_red_and_blue_by_sign_with_labelled_axes():
    h = np.array([0.5, -0.25, 0.125])
    kw = {"row_labels": labels("h", 3), "title": "h", "axes": ("output t", "", "hₜ"), "kind": "bars"}
    data, _ = plot.draw(h, fmt="png", **kw)
    img = png_pixels(data)
    g = plot.geometry((3, 1), **{k: v for k, v in kw.items() if k != "row_labels"}, row_labels=labels("h", 3))
    assert img.shape[:2] == (g.fig_h, g.fig_w)
    row_y = [int(g.top + (t + 0.5) * g.height / 3) for t in range(3)]
    reds = [np.any([is_red(p) for p in img[y, g.left : g.left + g.width]]) for y in row_y]
    blues = [np.any([is_blue(p) for p in img[y, g.left : g.left + g.width]]) for y in row_y]
    assert reds == [True, False, True] and blues == [False, True, False]
    text = svg_text(plot.draw(h, fmt="svg", **kw)[0])
    assert "output t" in text and "hₜ" in text and "0.5" in text  # values printed when few


def test_100000_bars_are_summarised_in_bounded_time_and_memory():
    rng = np.random.default_rng(3)
    small, big = rng.random(1000) * 0.01, rng.random(100_000) * 0.01
    big[73_456] = 0.9  # one large probability among many small ones
    plot.draw(small, fmt="svg", kind="bars")  # imports done before measuring
    tracemalloc.start()
    data, notes = plot.draw(big, fmt="svg", kind="bars", row_labels=[str(i) for i in range(100_000)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20  # drawn 100,000 patches, it took 1.1 GB
    assert len(notes) == 1 and "100000 values are summarised as 200" in notes[0]
    # as many bars, and about as many bytes, as a picture of 1,000
    again, _ = plot.draw(small, fmt="svg", kind="bars")
    assert len(data) < 1.3 * len(again)
    assert data.count(b"<path") <= plot.MAX_BARS + 40
    assert "each bar: the entry of largest |value| among 500 outputs" in svg_text(data)
    # the lone large value is the longest bar, at its own place on the axis
    png = png_pixels(plot.draw(big, fmt="png", kind="bars")[0])
    g = plot.geometry((100_000, 1), kind="bars")
    _, y = g.center(73_456, 0)
    area = png[g.top : g.top + g.height, g.left : g.left + g.width]
    red = area[..., 0] > area[..., 2] + 0.1
    reach = np.where(red.any(axis=1), red.shape[1] - np.argmax(red[:, ::-1], axis=1), 0)
    assert abs(g.top + int(np.argmax(reach)) - y) <= g.cell_h


# ---- formats: text as text, metadata, the same bytes ----


def test_svg_decodes_with_its_size_text_as_text_and_a_title():
    title = "softmax: ∂h/∂W, shortcut method, 5×15"
    data, _ = draw_post("svg", title=title)
    text = data.decode()
    g = plot.geometry(
        (5, 15), row_labels=labels("h", 5), col_labels=weight_labels(5, 3), groups=3, title=title, axes=AXES
    )
    m = re.search(r'<svg[^>]*width="([\d.]+)pt" height="([\d.]+)pt"', text)
    assert m is not None
    # points at 72 a inch, pixels at 100: the same size
    assert (round(float(m[1]) * 100 / 72), round(float(m[2]) * 100 / 72)) == (g.fig_w, g.fig_h)
    assert "<image" in text  # the cells, as one embedded image
    shown = svg_text(data)
    assert title in shown and "w[4,2]" in shown and "h₀" in shown  # text, not outlines
    assert "<dc:title>" + title + "</dc:title>" in text
    assert 'id="DejaVuSans-' not in text  # no glyph outlines


def test_svg_image_is_red_where_positive():
    """The SVG embeds the cells as a PNG; decode it and sample the cells."""
    M = np.array([[1.0, -1.0, 2.0], [-2.0, 0.5, -0.5]])
    text = plot.draw(M, fmt="svg")[0].decode()
    png = base64.b64decode(re.search(r'xlink:href="data:image/png;base64,([^"]+)"', text)[1])
    cells = png_pixels(png)
    assert cells.shape[:2] == M.shape  # drawn at one pixel an entry, unscaled
    for (i, j), v in np.ndenumerate(M):
        assert (is_red if v > 0 else is_blue)(cells[i, j])


def pdf_info(data: bytes) -> dict[str, str]:
    """The document information dictionary of a PDF matplotlib wrote (uncompressed)."""
    info = {}
    for key, raw in re.findall(rb"/(Title|Creator|Producer|CreationDate|Author) \(((?:\\.|[^\\)])*)\)", data):
        value = re.sub(rb"\\(.)", rb"\1", raw)
        text = value[2:].decode("utf-16-be") if value.startswith(b"\xfe\xff") else value.decode("latin-1")
        info[key.decode()] = text
    return info


def test_pdf_has_a_title_and_smjac_as_creator_and_no_date():
    title = "softmax: ∂h/∂W, shortcut method, 5×15"
    data, _ = draw_post("pdf", title=title)
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    info = pdf_info(data)
    assert info == {"Title": title, "Creator": "smjac"}


def test_png_has_a_title():
    from PIL import Image

    data, _ = draw_post("png", title="softmax: ∂h/∂W")
    assert Image.open(io.BytesIO(data)).text.get("Title") == "softmax: ∂h/∂W"


@pytest.mark.parametrize("fmt", plot.FORMATS)
@pytest.mark.parametrize("what", ["post", "summary", "bars"])
def test_bytes_are_reproducible(fmt, what):
    def once() -> bytes:
        if what == "post":
            return draw_post(fmt, title="softmax: ∂h/∂W")[0]
        if what == "summary":
            return plot.draw(layer_jacobian(16, 64), fmt=fmt, groups=64, max_cells=(400, 100))[0]
        return plot.draw(np.linspace(-1, 1, 1234), fmt=fmt, kind="bars", title="h")[0]

    assert once() == once()


def test_unknown_format_and_missing_matplotlib(monkeypatch):
    with pytest.raises(OutputError, match=r"\.png, \.svg or \.pdf"):
        plot.draw(np.eye(2), fmt="gif")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(OutputError, match=r"pip install 'smjac\[plot\]'"):
        plot.draw(np.eye(2), fmt="png")


def test_a_jacobian_of_millions_of_columns_is_drawn_without_a_label_per_column():
    # 2×4M as PNG peaked 529 MiB at a 200M budget: a list of 4M column labels, and M in float64
    from smjac.outputs.results import vector_labels, weight_labels

    K, n = 2, 1_000_000
    M = np.zeros((K, K * n), dtype=np.float32)
    M[0, 123_456], M[1, 1_765_432] = 0.25, -0.25
    plot.draw(np.eye(3), fmt="png")  # imports done before measuring
    made = []
    cols = weight_labels(K, n)
    counting = type(cols)(len(cols), lambda c: made.append(c) or cols.label(c))
    tracemalloc.start()
    data, notes = plot.draw(M, fmt="png", row_labels=vector_labels("h", K), col_labels=counting, groups=n)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20  # M is 8 MB; labels for every column took well over 100 MB
    assert len(made) < 200  # only those an axis can show
    assert "summarised as 2×500" in notes[0]
    img = imread(io.BytesIO(data))
    assert img.shape[1] < 1400  # a picture of readable size, not one of millions of pixels


def test_without_matplotlib_a_picture_is_refused_before_any_work(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import smjac.maths as maths
    from smjac.cli import app

    from .conftest import ROOT

    def must_not_run(*args, **kwargs):
        raise AssertionError("the Jacobian was computed")

    monkeypatch.setattr(maths, "layer_jacobian", must_not_run)
    monkeypatch.setattr(maths, "jacobian_blocks", must_not_run)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the plot extra not installed
    blog = ROOT / "samples/blog"
    for args in (["jacobian"], ["grad", "--target", "1"], ["forward"]):
        out = tmp_path / f"{args[0]}.png"
        result = CliRunner().invoke(
            app, [*args, "-W", str(blog / "W.json"), "-x", str(blog / "x.json"), "-o", str(out)]
        )
        assert result.exit_code == 2
        assert result.stderr == "Error: drawing a picture needs matplotlib: pip install 'smjac[plot]'\n"
        assert not out.exists()


def test_every_size_in_pixels_survives_a_canvas_cut_to_whole_pixels():
    # matplotlib before 3.11 takes int(inches · dpi) pixels, and 903 / 100 · 100 is 902.99…: such a
    # picture (144 heights under 3,000) came out a pixel short of its geometry, failing the test of
    # a summarised layer on Python 3.10, where matplotlib 3.11 does not install
    from smjac.formats.pictures import DPI, _inches

    assert all(int(_inches(p) * DPI) == p == round(_inches(p) * DPI) for p in range(1, 20_000))
    assert _inches(900) == 9.0  # where the quotient is exact, the size is as it was
