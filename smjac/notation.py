"""How smjac writes the layer's variables: subscripts, weight names and which column is which.

The convention of the whole package lives here: weight ``w[i,j]`` (input j to output i) is column
``i·n + j`` of a Jacobian with respect to W, stored at ``W[j, i]`` in the post's in-out layout and
``W[i, j]`` in PyTorch's out-in layout.
"""

from __future__ import annotations

import re

from .maths import LAYOUTS, LayoutName, Target, wrt_target
from .maths.numeric import check_choice

SUBSCRIPT_DIGITS = "₀₁₂₃₄₅₆₇₈₉"
_TO_SUBSCRIPT = str.maketrans("0123456789", SUBSCRIPT_DIGITS)


def sub(i: int) -> str:
    """``sub(12) == '₁₂'``: index labels such as h₁₂."""
    return str(i).translate(_TO_SUBSCRIPT)


def labels(symbol: str, count: int) -> list[str]:
    """``['h₀', 'h₁', …]``: one label per entry of a vector."""
    return [f"{symbol}{sub(i)}" for i in range(count)]


def weight_label(i: int, j: int, layout: LayoutName = "in-out") -> tuple[str, str]:
    """``("w[i,j]", where W holds it)``: the weight joining input j to output i, and its entry of
    W as given, ``W[j,i]`` in-out (n×K) or ``W[i,j]`` out-in (K×n), as
    :meth:`smjac.maths.Layer.as_given` lays W out.

    >>> weight_label(0, 1)
    ('w[0,1]', 'W[1,0]')
    >>> weight_label(0, 1, "out-in")
    ('w[0,1]', 'W[0,1]')
    """
    r, c = (j, i) if layout == "in-out" else (i, j)
    return f"w[{i},{j}]", f"W[{r},{c}]"


def weight_labels(K: int, n: int) -> list[str]:
    """``w[i,j]`` for column ``i·n + j``: output i, input j."""
    return [weight_label(i, j)[0] for i in range(K) for j in range(n)]


# What a stream that takes ASCII only gets instead of smjac's notation (LC_ALL=C, an ASCII pipe).
STAND_INS = {
    "→": "->",
    "←": "<-",
    "×": "x",
    "·": "*",
    "…": "...",
    "⋮": ":",
    "−": "-",
    "ᵀ": "^T",
    "≤": "<=",
    "≥": ">=",
    "≈": "~",
    "∂": "d",
    "δ": "delta",
    "ε": "eps",
    "Σ": "sum",
    "⊗": "(x)",
    "⊙": "*",
    "²": "^2",
    "³": "^3",
    "√": "sqrt",
    "½": "1/2",
    "—": "--",
    "–": "-",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "█": "#",
    "▀": "#",
}
# a whole stream: subscript digits become plain ones (h₀ → h0)
ASCII = str.maketrans({**{d: str(i) for i, d in enumerate(SUBSCRIPT_DIGITS)}, **STAND_INS})


def to_ascii(text: str) -> str:
    """``text`` in ASCII for a reader who asked for it: subscripts as ``_0`` (``h_0``), the stand-ins.

    >>> to_ascii("∂h₁₂/∂w[0,1] ≤ 1e−9 × |r|")
    'dh_12/dw[0,1] <= 1e-9 x |r|'
    """
    text = re.sub(f"[{SUBSCRIPT_DIGITS}]+", lambda m: "_" + m.group().translate(ASCII), text)
    return text.translate(ASCII).encode("ascii", "replace").decode()


def column_label(
    target: Target, c: int, n: int, layout: LayoutName = "in-out", sample: int | None = None
) -> tuple[str, str]:
    """(the variable column ``c`` of a Jacobian with respect to ``target`` is, where it is stored).

    A weight's column is named by :func:`weight_label`; a vector's entry by its subscript, stored
    at ``x[k]``, or ``x[s, k]`` when ``sample`` s of a batch is named.

    >>> from smjac.maths import TARGETS
    >>> column_label(TARGETS["W"], 5, 3)
    ('w[1,2]', 'W[2,1]')
    >>> column_label(TARGETS["x"], 2, 3, sample=4)
    ('x₂', 'x[4, 2]')
    """
    if target.factored:
        return weight_label(*divmod(c, n), layout)
    at = "" if sample is None else f"{sample}, "
    return f"{target.name}{sub(c)}", f"{target.name}[{at}{c}]"


def column_legend(wrt: str, K: int, n: int, layout: LayoutName = "in-out") -> list[tuple[int, str, str]]:
    """(column, what it is, where it is stored) for each column of a Jacobian with respect to ``wrt``.

    The convention of the whole package: weight ``w[i,j]`` (input j to output i) is column
    ``i·n + j``, stored at ``W[j, i]`` in the in-out layout and ``W[i, j]`` in the out-in one.

    Examples
    --------
    >>> column_legend("W", 2, 2, "in-out")[1]
    (1, 'w[0,1]: input 1 → output 0', 'W[1,0]')
    >>> column_legend("x", 2, 3)[2]
    (2, 'x₂', 'x[2]')
    """
    target = wrt_target(wrt)
    check_choice("layout", layout, LAYOUTS)
    if target.factored:  # a weight joins an input to an output: say which
        rows = []
        for i in range(K):
            for j in range(n):
                name, at = weight_label(i, j, layout)
                rows.append((i * n + j, f"{name}: input {j} → output {i}", at))
        return rows
    return [(c, *column_label(target, c, n, layout)) for c in range(target.columns(K, n))]
