"""``smjac demo``: the blog post's walk-through on its own example, one table per step."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
from rich.rule import Rule
from rich.text import Text

from .. import maths, notation
from ..checking.checks import check
from . import render


def blog_example() -> tuple[np.ndarray, np.ndarray]:
    """The post's W (3×5) and x (3), shipped inside the package."""
    data = json.loads(resources.files("smjac").joinpath("data/blog.json").read_text())
    return np.array(data["W"], dtype=np.float64), np.array(data["x"], dtype=np.float64)


def renderables(width: int, precision: int = 5) -> list[Any]:
    """The walk-through, as rich renderables for a terminal ``width`` columns wide."""
    W, x = blog_example()
    n, K = W.shape
    fwd = maths.forward(W, x)
    dhdz = maths.softmax_jacobian(fwd.h)
    dzdw = maths.jacobian(W, x, of="z", wrt="W")
    chain = maths.jacobian(W, x, method="chain")
    short = maths.jacobian(W, x, method="shortcut")
    report = {c.name: c for c in check(W, x).checks}
    summed = maths.grad(W, x, upstream=np.ones(K))
    target = int(np.argmax(fwd.h))
    ce = maths.grad(W, x, target=target)
    hidden: list[str] = []
    parts: list[Any] = []

    def step(title: str, text: str, M: np.ndarray | None = None, rows: Any = None, cols: Any = None) -> None:
        parts.append(Rule(Text(title)))
        parts.append(Text(text))
        if M is not None:
            shown = render.matrix_table(M, rows, cols, precision=precision, width=width)
            parts.append(shown.table)
            if shown.elided:
                hidden.append(title)

    step(
        "1 · the layer",
        f"W is n×K = {n}×{K}: one row per input, one column per output. The input is x = {x.tolist()}.",
        W,
        notation.labels("x", n),
        notation.labels("z", K),
    )
    parts.append(Rule(Text("2 · forward pass")))
    parts.append(
        Text(
            "z = Wᵀx and h = softmax(z). The post prints h = [0.19091352 0.20353145 0.21698333 0.23132428 0.15724743]."
        )
    )
    parts.append(render.forward_table(fwd.z, fwd.h, precision=8))
    step(
        "3 · dh/dz = diag(h) − hhᵀ",
        "The softmax Jacobian: symmetric, and each row and column sums to 0 because h always sums to 1.",
        dhdz,
        notation.labels("h", K),
        notation.labels("z", K),
    )
    step(
        "4 · dz/dW",
        f"∂z_k/∂w[i,j] = x_j when i = k, else 0. smjac gives it K × K·n ({K}×{K * n}), rows = outputs; "
        "the post prints its transpose.",
        dzdw,
        notation.labels("z", K),
        notation.weight_labels(K, n),
    )
    step(
        "5 · dh/dW by the chain rule: dh/dz · dz/dW",
        "The post's first method: multiply the two matrices. Weight w[i,j] is column i·n + j.",
        chain,
        notation.labels("h", K),
        notation.weight_labels(K, n),
    )
    agree = report["dh/dW shortcut = chain rule"]
    step(
        "6 · the shortcut: ∂h_t/∂w[i,j] = h_t (δ_ti − h_i) x_j",
        "Each entry from h and x alone, no matrix product. "
        + (
            "It agrees with step 5 to the last digit."
            if agree.max_error == 0
            else f"Largest difference from step 5: {agree.max_error:.1e}, rounding."
        ),
        short,
        notation.labels("h", K),
        notation.weight_labels(K, n),
    )
    colsum = report["dh/dW columns sum to 0"]
    step(
        "7 · summing the columns gives zero",
        "The post ends by summing each column of dh/dW to update the weights. But every column sums to 0 "
        f"(largest sum here: {colsum.max_error:.1e}), since the probabilities always sum to 1: "
        f"that update is zero everywhere (largest entry {np.max(np.abs(summed.W)):.1e}). "
        "A real update weights each row by how much the loss cares about that output, g = dLoss/dh: "
        f"grad_W = gᵀ · dh/dW. For cross-entropy with true class {target}, that is x (h − e_{target})ᵀ, "
        f"loss −log h_{target} = {ce.loss:.{precision}f}:",
        ce.W,
        notation.labels("x", n),
        notation.labels("z", K),
    )
    parts.append(Text("Try it on your own layer: smjac check -W W.json -x x.json"))
    if hidden:
        parts.append(
            Text(
                f"Some tables were elided to fit {width} columns; a wider terminal shows them whole.",
                style="dim",
            )
        )
    return parts
