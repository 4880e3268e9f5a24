"""How smjac writes the layer's variables: subscripts, weight names and which column is which.

The convention of the whole package lives here: weight ``w[i,j]`` (input j to output i) is column
``i·n + j`` of a Jacobian with respect to W, stored at ``W[j, i]`` in the post's in-out layout and
``W[i, j]`` in PyTorch's out-in layout.
"""

from __future__ import annotations

from .maths import LAYOUTS, WRTS
from .maths.numeric import check_choice


def column_legend(wrt: str, K: int, n: int, layout: str = "in-out") -> list[tuple[int, str, str]]:
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
    check_choice("wrt", wrt, WRTS)
    check_choice("layout", layout, LAYOUTS)
    if wrt == "W":
        at = "W[{j},{i}]" if layout == "in-out" else "W[{i},{j}]"
        return [
            (i * n + j, f"w[{i},{j}]: input {j} → output {i}", at.format(i=i, j=j))
            for i in range(K)
            for j in range(n)
        ]
    sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
    return [(k, f"{wrt}{str(k).translate(sub)}", f"{wrt}[{k}]") for k in range(n if wrt == "x" else K)]
