"""dh/dW as its factors, ``J[t, i·n + j] = A[t, i] · x[j]``: K² + n numbers for K²·n entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError
from .jacobians import dfdz_or_identity, jacobian_shape, outer_fill
from .layer import Layer, LayerOptions, Of, layer_options, make_layer
from .numeric import Array

if TYPE_CHECKING:
    from .layer import Unpack


class Factored(NamedTuple):
    """``dh/dW`` (or ``dz/dW``) without its K²n entries: ``J[t, i·n + j] = A[t, i] · x[j]``.

    ``A`` is ``dh/dz`` (the identity for ``dz/dW``), K×K or N×K×K; ``x`` is n or N×n. K² + n
    numbers stand for K²·n, so a Jacobian too large to hold can still be used, entry by entry.
    """

    A: Array
    x: Array
    shape: tuple[int, ...]
    formula: str = "J[t, i*n + j] = A[t, i] * x[j]"

    def entry(self, t: int, i: int, j: int, sample: int = 0) -> float:
        """``∂h_t/∂w[i,j]`` (of the given sample of a batch)."""
        A = self.A if self.A.ndim == 2 else self.A[sample]
        x = self.x if self.x.ndim == 1 else self.x[sample]
        K, n = A.shape[0], x.shape[0]
        for name, value, size in (("t", t, K), ("i", i, K), ("j", j, n)):
            if not 0 <= value < size:
                raise InputError(f"{name} = {value} is out of range: 0 ≤ {name} ≤ {size - 1}")
        return float(A[t, i] * x[j])

    def dense(self) -> Array:
        """All K²n entries, as :func:`jacobian` gives them."""
        A, X = (self.A, self.x) if self.A.ndim == 3 else (self.A[None], self.x[None])
        out = np.empty((A.shape[0], A.shape[1], A.shape[2] * X.shape[1]), dtype=A.dtype)
        outer_fill(A, X, out)
        return out if self.A.ndim == 3 else out[0]


def jacobian_factors(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    of: Of = "h",
    **layer: Unpack[LayerOptions],
) -> Factored:
    """The layer Jacobian with respect to W, as its factors: ``dh/dz`` and x.

    Examples
    --------
    >>> F = jacobian_factors([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0])
    >>> F.shape
    (2, 4)
    >>> from smjac import jacobian
    >>> bool(F.entry(0, 0, 1) == jacobian([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0])[0, 1])
    True
    """
    return layer_factors(make_layer(W, x, b, **layer_options("jacobian_factors", layer)), of=of)


def layer_factors(L: Layer, *, of: Of = "h") -> Factored:
    """:func:`jacobian_factors` for a :class:`Layer`."""
    A = np.ascontiguousarray(dfdz_or_identity(L, of))
    N, K, cols = jacobian_shape(L, of=of, wrt="W")
    return Factored(L.out(A), L.out(L.X), (N, K, cols) if L.batched else (K, cols))
