"""What verify is asked, and the forms a mistaken answer takes: the ground the catalogue stands on.

A :class:`Problem` is the layer, the derivative asked for and its loss; a :class:`Variant` is one
mistaken answer on that problem. :func:`dz_variant` makes the commonest kind, a mistaken
``dh/dz = (diag(a) − b cᵀ) / T`` carried through the true chain rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..maths import DEFAULT_REDUCTION, TARGETS, Array, Layer, Of, Reduction, Target, Wrt
from ..maths.forward_pass import forward_arrays
from ..maths.losses import CrossEntropy


def weight_at(L: Layer, r: Any, c: Any) -> tuple[Any, Any]:
    """The weights ``(i, j)`` (output, input) at ``[r, c]`` of an array in W's shape as given
    (a gradient dLoss/dW, say), read through :meth:`~smjac.maths.layer.Layer.as_given` from the
    in-out W's index grids: views, nothing the size of W is made.

    >>> from smjac.maths import make_layer
    >>> L = make_layer(np.ones((2, 3)), np.ones(3), layout="out-in")  # W is K×n: 2 outputs, 3 inputs
    >>> [int(k) for k in weight_at(L, 1, 2)]
    [1, 2]
    """
    outputs: np.ndarray = np.broadcast_to(np.arange(L.K), L.W.shape)  # any dtype: as_given only transposes
    inputs: np.ndarray = np.broadcast_to(np.arange(L.n)[:, None], L.W.shape)
    return L.as_given(outputs)[r, c], L.as_given(inputs)[r, c]  # integers, or arrays of them


@dataclass(frozen=True)
class Problem:
    """What is being verified: a checked layer, which derivative, and the loss for gradients.

    ``kind`` is ``"jacobian"`` (of ``of`` with respect to ``wrt``), ``"grad"`` (dLoss/dW) or
    ``"grad_b"`` (dLoss/db). ``target`` (N class indices) or ``upstream`` (N×K, dLoss/dh) define
    the loss of a gradient; ``reduce`` combines the batch; ``loss`` is the cross-entropy's options
    (class weights, an ignored index, label smoothing), None for the plain one.
    """

    L: Layer
    kind: str
    of: Of = "h"
    wrt: Wrt = "W"
    target: NDArray[np.intp] | None = None
    upstream: Array | None = None
    reduce: Reduction = DEFAULT_REDUCTION
    loss: CrossEntropy | None = None

    @property
    def plain(self) -> bool:
        """Whether every mistake of the catalogue applies: they are written for the plain
        cross-entropy (or an upstream) through a softmax of K ≥ 2 outputs. With class weights,
        an ignored index or label smoothing, or a binary layer, only :data:`LOSS_FREE` do (and
        :data:`LOSS_OPTIONS`, those options left out)."""
        return (self.loss is None or self.loss.plain) and not self.L.binary

    @property
    def wrt_target(self) -> Target:
        """What a Jacobian is taken with respect to: ``wrt``'s :class:`~smjac.maths.Target`."""
        return TARGETS[self.wrt]

    @cached_property
    def forward(self) -> tuple[Array, Array, Array]:
        """Z, H, P (each N×K) as smjac computes them."""
        return forward_arrays(self.L)

    @property
    def through_softmax(self) -> bool:
        """Whether the derivative goes through softmax (not dz/d…): only then can dh/dz be wrong."""
        return self.kind != "jacobian" or self.of == "h"

    def dloss_dh(self) -> Array:
        """``g = dLoss/dh`` per sample (N×K): the upstream, or that of the cross-entropy."""
        if self.upstream is not None:
            return self.upstream
        assert self.target is not None
        P = self.forward[2]
        Y = one_hot(self.target, self.L.K, P.dtype)
        if self.L.function == "log-softmax":  # loss = −h_k
            return -Y
        # loss = −log h_k; an h_k that underflowed (0) or is subnormal makes −1/h_k infinite
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return -Y / P


def one_hot(target: NDArray[np.intp], K: int, dtype: np.dtype) -> Array:
    """N×K rows of zeros with a 1 at each sample's class."""
    Y = np.zeros((target.size, K), dtype=dtype)
    Y[np.arange(target.size), target] = 1
    return Y


@dataclass(frozen=True)
class Dz:
    """A per-sample dh/dz held without its K² entries: ``(diag(d) + off-diagonal) / T``.

    Entry (t, i ≠ t) is ``−Σ_k b_k[t]·c_k[i] / T`` and entry (t, t) is ``d[t] / T``: a diagonal
    and a few rank-one terms, O(N·K) numbers where the matrix has N·K². Each array is N×K.
    The true softmax's is d = p(1 − p), b = c = p; log-softmax's d = 1 − p, b = 1, c = p.
    """

    d: Array
    terms: tuple[tuple[Array, Array], ...]
    T: float = 1.0

    @classmethod
    def low_rank(cls, a: Array, terms: tuple[tuple[Array, Array], ...], T: float) -> Dz:
        """``(diag(a) − Σ_k b_k c_kᵀ) / T``: the diagonal entries are ``a − Σ_k b_k ⊙ c_k``."""
        d = a - sum((b * c for b, c in terms), np.zeros_like(a))
        return cls(d, terms, T)

    @property
    def nbytes(self) -> int:
        return int(self.d.nbytes + sum(b.nbytes + c.nbytes for b, c in self.terms))

    def rows(self, s: int, r0: int, r1: int) -> Array:
        """Rows ``r0:r1`` of sample s's matrix, (r1 − r0) × K."""
        K = self.d.shape[1]
        A = np.zeros((r1 - r0, K), dtype=self.d.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            for b, c in self.terms:
                A -= b[s, r0:r1, None] * c[s, None, :]
            rows = np.arange(r1 - r0)
            A[rows, rows + r0] = self.d[s, r0:r1]
            return A / self.T if self.T != 1 else A

    def entries(self, s: int, rr: np.ndarray, cc: np.ndarray) -> Array:
        """Entries ``(rr, cc)`` of sample s's matrix, in the shape of rr."""
        out = np.zeros(np.shape(rr), dtype=self.d.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            for b, c in self.terms:
                out -= b[s][rr] * c[s][cc]
            on = rr == cc
            out[on] = self.d[s][rr[on]]
            return out / self.T if self.T != 1 else out


@dataclass(frozen=True)
class Variant:
    """One mistaken answer a mistake produces; exactly one of dz, delta, factor, frame or term is set.

    ``fix`` replaces the mistake's own fix where this variant needs another. ``coincides`` is set
    when, on this problem, the variant's answer is also the right one (then a right answer is
    said to be consistent with it too: the check cannot tell them apart).
    """

    mistake: str
    detail: str
    dz: Dz | None = None
    delta: Array | None = None
    factor: float | None = None
    frame: str | None = None
    term: Array | None = None
    fix: str | None = None
    coincides: str = ""


def dz_variant(
    pr: Problem,
    mistake: str,
    detail: str,
    a: Array | float,
    b: Array | float,
    c: Array | float,
    T: float,
    more: tuple[tuple[Array, Array], ...] = (),
) -> Variant:
    """A mistaken dh/dz of the form ``(diag(a) − b cᵀ − Σ more) / T`` per sample (a, b, c N×K or numbers).

    Softmax's is a = b = c = p; log-softmax's a = 1, b = 1, c = p; the slips change one of them
    (``more`` adds rank-one terms ``b_k c_kᵀ``). For a Jacobian it is kept as a :class:`Dz`,
    made a block of rows at a time; for a gradient only ``dLoss/dz = gᵀ·dh/dz`` is made,
    ``(g ⊙ a − Σ c_k (g·b_k)) / T``: no K×K matrix is formed either way.
    """
    N, K = pr.L.N, pr.L.K
    a, b, c = (np.broadcast_to(np.asarray(v, dtype=pr.forward[2].dtype), (N, K)) for v in (a, b, c))
    terms = ((b, c), *more)
    if pr.kind == "jacobian":
        return Variant(mistake, detail, dz=Dz.low_rank(a, terms, T))
    g = pr.dloss_dh()
    with np.errstate(
        invalid="ignore", over="ignore"
    ):  # −y/p where p underflowed: said by the truth's NaN too
        delta = (
            g * a - sum((ck * np.sum(g * bk, axis=1, keepdims=True) for bk, ck in terms), np.zeros_like(g))
        ) / T
    return Variant(mistake, detail, delta=delta)


def family_variant(pr: Problem, mistake: str, detail: str, P: Array, T: float, function: str) -> Variant:
    """The Jacobian of ``function`` (softmax or log-softmax) at probabilities P, as :func:`dz_variant`."""
    if function == "softmax":
        return dz_variant(pr, mistake, detail, P, P, P, T)
    return dz_variant(pr, mistake, detail, 1.0, 1.0, P, T)
