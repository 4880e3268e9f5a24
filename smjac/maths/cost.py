"""The one size estimate: the bytes each result's path allocates at its peak, before it starts.

Every result, printed ones included, takes its size from :func:`estimate_bytes`, and the budget
rule (:mod:`smjac.budget`) compares it with ``--max-memory`` before any work.
"""

from __future__ import annotations

from ._parallel import BLOCK_BYTES
from .forward_pass import LOGIT_COPIES
from .jacobians import jacobian_shape
from .layer import Layer
from .numeric import check_choice
from .targets import TARGETS

ESTIMATES = ("forward", "jacobian", "factored", "streamed", "entry", "grad", "check", "legend")
TEXT_BYTES_PER_NUMBER = 80  # a number turned into JSON/CSV text whole: orjson's buffer, its bytes
# What writing a result takes at its peak on top of the result itself, by output format, in bytes
# per number. Measured with tracemalloc on dh/dW of 90×90 and 150×150 layers (0.7 and 3.4
# million numbers), the slope between them: JSON 38 bytes a number, .npz 10-16 (numpy's zip in
# memory, then its bytes), Markdown, LaTeX and a table under 1 (made a piece of a row at a time,
# the number format found a block at a time), a picture 1.3. A format not named (.npy, CSV
# streamed) writes from the result itself.
OUTPUT_BYTES = {
    "json": TEXT_BYTES_PER_NUMBER,
    "csv": TEXT_BYTES_PER_NUMBER,  # held whole; streamed, a block's text
    "npz": 16,
    "safetensors": 16,  # the file's bytes made whole, then written
    "markdown": 2,
    "latex": 2,
    "table": 2,
    "heatmap": 2,
    "png": 4,
    "svg": 4,
    "pdf": 4,
}
PIECE_BYTES = 2**20  # a person's text formats: the piece of a row made at a time, 256 bytes a number at most
PICTURE_BYTES = 96 * 2**20  # matplotlib and its figure: 77-81 MiB measured, whatever the size
LEGEND_BYTES_PER_ROW = 6000  # measured: a 1 MB W (131,072 weights) made 760 MB of legend


def estimate_bytes(
    L: Layer,
    what: str = "jacobian",
    *,
    of: str = "h",
    wrt: str = "W",
    method: str = "shortcut",
    probes: int | None = None,
    text: bool | str = False,
    block_bytes: int = BLOCK_BYTES,
) -> int:
    """Bytes a command's path allocates beyond the loaded layer, at its peak, before it starts.

    One estimate per path, so a caller can compare it with its memory budget before the first
    large allocation. Generous by design (it counts temporaries), never a measurement.

    Parameters
    ----------
    L : Layer
        The checked layer.
    what : {"forward", "jacobian", "factored", "streamed", "entry", "grad", "check", "legend"}
        ``"jacobian"`` is the result held whole (:func:`layer_jacobian`), ``"factored"`` the
        factors (:func:`layer_factors`), ``"streamed"`` :func:`jacobian_blocks` (one block),
        ``"entry"`` :func:`layer_entry`, ``"check"`` :func:`smjac.checking.checks.layer_check` with
        ``probes``, ``"legend"`` the table naming each column of the Jacobian ``wrt``.
    of, wrt, method
        As for :func:`layer_jacobian`.
    probes : int, optional
        For ``"check"``: as :func:`smjac.checking.checks.check` takes it.
    text : bool or str
        How the result is written: the output format's name (``"json"``, ``"markdown"``,
        ``"npz"``, ``"png"``, …) adds what writing it takes (:data:`OUTPUT_BYTES` a number, and
        :data:`PIECE_BYTES` or :data:`PICTURE_BYTES`); ``True`` is text held whole (JSON, CSV); ``False`` (or ``"npy"``) nothing.
        ``"streamed"``: a Jacobian written a block at a time, the ``"streamed"`` estimate.

    Examples
    --------
    >>> import numpy as np
    >>> from smjac import make_layer
    >>> L = make_layer(np.ones((1, 20000)), [1.0])
    >>> estimate_bytes(L, "entry") < 2**20 < estimate_bytes(L, "jacobian") // 1000
    True
    """
    check_choice("what", what, ESTIMATES)
    if text == "streamed" and what == "jacobian":  # written a block at a time (.npy, CSV)
        what, text = "streamed", False
    jac = what in ("jacobian", "factored", "streamed", "entry")
    N, K, cols = jacobian_shape(L, of=of if jac else "z", wrt=wrt)  # refuses a binary layer's dh/d… only
    K = K if jac else L.classes  # a binary layer's p has two entries
    by_weights = TARGETS[wrt].factor == "weights"  # dh/dx: made from p and W, no K×K factor when closed
    b, n = L.W.dtype.itemsize, L.n
    logits = LOGIT_COPIES * N * K * b
    dfdz = 3 * N * K * K * b  # dh/dz, its copy divided by T, one temporary
    numbers = 0
    if what == "forward":
        total, numbers = logits, 3 * N * K
    elif what == "entry":
        total, numbers = 6 * K * b + 2 * n * b, 1
        if L.batched and of == "h":  # the batch's p, as the whole makes it; for dh/dx its two sums of p·W too
            total += logits + (N * K * b + 2 * N * n * b if by_weights else 0)
    elif what == "jacobian":
        numbers = N * K * cols
        closed_dx = by_weights and method == "shortcut" and of == "h"  # no K×K factor, K×n temporaries
        work = 4 * N * K * n * b if closed_dx else dfdz
        total = logits + work + numbers * b
    elif what == "factored":
        numbers = N * K * K + N * n
        total = logits + dfdz + N * n * b
    elif what == "streamed":
        blk = min(max(block_bytes, cols * b), K * cols * b)  # a block: rows of one sample, one at least
        rows = blk // (cols * b)
        # dh/dx: the closed form's two temporaries and the block, or the chain's rows of dh/dz;
        # dh/dW: the block, its buffer and the rows of dh/dz it is made from
        block = 3 * blk + rows * K * b if by_weights else 2 * blk + 2 * rows * K * b
        total = logits + block + 2 * N * n * b
        numbers = min(N * K * cols, blk // b)
    elif what == "grad":
        numbers = K * n + K + 1  # the result: dLoss/dW, dLoss/db and the loss (δ and x stay unwritten)
        total = 8 * N * K * b + 2 * K * n * b + 2 * N * n * b
    elif what == "check":
        m = K * n if probes is None else min(probes, K * n)
        # per sample: dh/dz and what the identities make of it (K², eigenvalues included), the
        # columns of dh/dW compared (shortcut, chain, finite differences and their errors: K·m
        # each, twice while stacked) and dh/dx both ways
        total = 8 * K * K * b + (8 if m < K * n else 12) * K * m * b + 6 * K * n * b + logits
        numbers = 16 * 4
    else:  # legend
        numbers = cols
        total = cols * LEGEND_BYTES_PER_ROW
    if text is False or what == "legend":
        return int(total)
    fmt = "json" if text is True else str(text)
    total += numbers * OUTPUT_BYTES.get(fmt, 0)
    if fmt in ("png", "svg", "pdf"):
        total += PICTURE_BYTES
    elif fmt in ("markdown", "latex", "table", "heatmap"):
        total += min(PIECE_BYTES, 256 * numbers)
    return int(total)
