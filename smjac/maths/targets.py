"""What a Jacobian may be taken with respect to (``wrt``): each target's facts, declared once.

A target is one of the layer's variables. Everything the package says about one lives in its
:class:`Target`: how many columns its Jacobian has, how one entry is indexed, what a picture calls
its columns, and the chain rule's second factor ``dz/d(target)`` (its kind, and how it carries
rows of dh/dz, as verify's truth is made). How its Jacobian is computed, whole, in blocks and one
entry, is in :mod:`.jacobians`. A new target is its name in :data:`Wrt`, its entry in
:data:`TARGETS` (a factor of a new kind: a branch in each ``chain_`` method) and its Jacobian
there; everything else reads the entry.

A column of a Jacobian with respect to a vector target (x, z, b) is that vector's entry; with
respect to W, column ``i·n + j`` is weight ``w[i,j]``, joining input j to output i (how such a
column is named and where W stores it is :mod:`smjac.notation`'s, from these facts).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from .numeric import Array, check_choice

if TYPE_CHECKING:
    from .layer import Layer

# The choice, declared once; the command line's --wrt takes its values from it.
Wrt = Literal["W", "z", "x", "b"]
WRTS: tuple[str, ...] = get_args(Wrt)

Factor = Literal["identity", "weights", "kron"]
"""``dz/d(target)``, the chain rule's second factor: the identity (``dz/dz``, ``dz/db``: K×K),
Wᵀ (``dz/dx``: K×n), or ``I ⊗ xᵀ`` (``dz/dW``: K×K·n, whose only numbers are x)."""


@dataclass(frozen=True, eq=False)
class Target:
    """One variable a Jacobian may be taken with respect to.

    Examples
    --------
    >>> TARGETS["W"].columns(3, 5), TARGETS["x"].columns(3, 5), TARGETS["b"].columns(3, 5)
    (15, 5, 3)
    >>> TARGETS["W"].entry_sizes(3, 5)
    (3, 3, 5)
    """

    name: str
    """The variable, as ``wrt`` names it."""
    shape: tuple[Literal["K", "n"], ...]
    """Its own shape in the layer's sizes: ``("K", "n")`` for W (weight ``w[i,j]``, output i,
    input j, in the column order ``i·n + j``), ``("n",)`` for x, ``("K",)`` for z and b."""
    factor: Factor
    """``dz/d(target)``: see :data:`Factor`."""
    index_names: tuple[str, ...]
    """The names of an entry's indices, output first, as messages about one out of range give them."""
    entry_form: str
    """How one entry of its Jacobian is written (``--entry``)."""
    axis: str
    """What a picture's column axis shows."""
    variable: str
    """The variable a picture's colour bar differentiates by (``∂hₜ/∂xⱼ``)."""

    def sizes(self, K: int, n: int) -> tuple[int, ...]:
        """Its shape for a layer of K outputs and n inputs."""
        return tuple({"K": K, "n": n}[d] for d in self.shape)

    def columns(self, K: int, n: int) -> int:
        """Columns of its per-sample Jacobian (one per entry of the variable): K·n, n or K."""
        return math.prod(self.sizes(K, n))

    def entry_sizes(self, K: int, n: int) -> tuple[int, ...]:
        """The range of each index of :attr:`entry_form`: the output, then the variable's own."""
        return (K, *self.sizes(K, n))

    @property
    def factored(self) -> bool:
        """Whether its Jacobian is ``dh/dz ⊗ xᵀ``: held as its factors, its columns K groups of n
        (one per output), its answers possibly in the other column order (only W's is)."""
        return self.factor == "kron"

    @property
    def per_output(self) -> bool:
        """Whether each column's variable moves one logit alone (``z_i`` for ``w[i,j]``, ``z_i``,
        ``b_i``): then each column sits in a diagonal or an off-diagonal block of outputs."""
        return self.factor in ("identity", "kron")

    def column_output(self, c: np.ndarray, n: int) -> np.ndarray:
        """The logit each column ``c`` moves, for a :attr:`per_output` target."""
        assert self.per_output
        return c // n if self.factored else c

    # The chain rule's second factor applied to rows or entries of sample s's dh/dz without
    # forming it, as verify makes its values from a dh/dz (true or mistaken) a block of rows at a
    # time. A factor of a new kind has its own branch in each, reading what it needs of the layer.

    def chain_rows(self, A: Array, L: Layer, s: int, out: Array | None = None) -> Array:
        """Rows of ``A · dz/d(target)`` from rows ``A`` (R×K) of sample s's dh/dz: A itself,
        ``A · Wᵀ`` or ``A[t, i] · x_j`` at column ``i·n + j``, into ``out`` if given (R × columns)."""
        if self.factor == "identity":
            if out is None:
                return A
            out[...] = A
            return out
        if self.factor == "weights":
            return np.matmul(A, L.W.T, out=out)
        if self.factor == "kron":
            x = L.X[s]
            R, K, n = A.shape[0], A.shape[1], x.shape[0]
            if out is None:
                return (A[:, :, None] * x[None, None, :]).reshape(R, K * n)
            np.multiply(A[:, :, None], x[None, None, :], out=out.reshape(R, K, n))
            return out
        raise ValueError(f"no chain rule for the factor {self.factor!r}")

    def chain_scale(self, L: Layer, s: int) -> float | None:
        """A number c with ``max|A · dz/d(target)| = max|A| · c`` for every A of sample s, or None
        when none is known and the rows must be made to find their largest entry."""
        if self.factor == "identity":
            return 1.0
        if self.factor == "kron":
            return float(np.max(np.abs(L.X[s]), initial=0.0))
        return None

    def chain_entries(
        self,
        entries: Callable[[np.ndarray, np.ndarray], Array],
        rr: np.ndarray,
        cc: np.ndarray,
        L: Layer,
        s: int,
    ) -> Array | None:
        """Entries ``(rr, cc)`` of ``A · dz/d(target)`` from ``entries(r, c)`` of sample s's A, or
        None where each takes a whole row of A (``A · Wᵀ``): then they come from :meth:`chain_rows`."""
        if self.factor == "identity":
            return entries(rr, cc)
        if self.factor == "kron":
            return entries(rr, cc // L.n) * L.X[s][cc % L.n]
        return None


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "W",
            ("K", "n"),
            "kron",
            ("t", "i", "j"),  # the messages Factored.entry and --entry gave
            "T,I,J (output T, weight w[I,J])",
            "weight w[i,j] (column i·n + j)",
            "w[i,j]",
        ),
        Target("z", ("K",), "identity", ("T", "K"), "T,K (output T, z[K])", "logit zᵢ", "zᵢ"),
        Target("x", ("n",), "weights", ("T", "K"), "T,K (output T, x[K])", "input xⱼ", "xⱼ"),
        Target("b", ("K",), "identity", ("T", "K"), "T,K (output T, b[K])", "bias bᵢ", "bᵢ"),
    )
}
# every choice has its entry, in the choice's order
assert tuple(TARGETS) == WRTS


def wrt_target(wrt: str) -> Target:
    """The :class:`Target` ``wrt`` names, refusing one that is none."""
    return TARGETS[check_choice("wrt", wrt, WRTS)]


def wrt_choices() -> str:
    """``"W, z, x or b"``: the choices, as a help text lists them."""
    return f"{', '.join(WRTS[:-1])} or {WRTS[-1]}"


def entry_forms() -> str:
    """How one entry is indexed for each target, as a help text says it.

    >>> entry_forms()
    'T,I,J for W (output T, weight w[I,J]); T,K for z, x or b (output T, entry K)'
    """
    forms: dict[str, list[str]] = {}
    for name, target in TARGETS.items():
        forms.setdefault(target.entry_form.split(" ")[0], []).append(name)
    said = []
    for form, names in forms.items():
        whom = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        what = TARGETS[names[0]].entry_form.split(" ", 1)[1] if len(names) == 1 else "(output T, entry K)"
        said.append(f"{form} for {whom} {what}")
    return "; ".join(said)
