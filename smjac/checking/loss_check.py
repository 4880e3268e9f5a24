"""The loss gradient of a whole batch against central finite differences of its loss.

:func:`smjac.checking.checks.layer_check` checks each sample's derivatives; a loss with class
weights, an ignored index or a mean over the batch couples the samples (the mean divides by the
targets' weights), so its gradient is checked here on the batch as one function of W and b. A
binary layer (one output) is checked this way too, in its own n×1 shape.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from ..maths import Array, Layer, Reduction, layer_grad
from ..maths.forward_pass import layer_logits
from ..maths.layer import class_logits
from ..maths.losses import CrossEntropy

BLOCK_ENTRIES = 2**22  # logits held at once for a block of probes: probes × N × K


def two_class_layer(L: Layer) -> Layer:
    """A binary layer (one output) as the two-class softmax it is read as: W with a first column
    of zeros (and b with a first 0), whose logits ``[0, z]`` give the same p.

    >>> from smjac.maths import make_layer
    >>> two_class_layer(make_layer([[2.0], [1.0]], [1.0, 1.0])).W
    array([[0., 2.],
           [0., 1.]])
    """
    W = np.concatenate([np.zeros_like(L.W), L.W], axis=1)
    b = None if L.b is None else np.concatenate([np.zeros_like(L.b), L.b])
    return L._replace(W=W, b=b, layout="in-out")


def describe(ce: CrossEntropy, L: Layer, given: bool) -> str:
    """The loss a check's name states: its options, the binary reading, and a target it chose."""
    parts = ["binary"] if L.binary else []
    if ce.class_weights is not None:
        parts.append("class weights")
    if ce.ignore_index is not None:
        parts.append(f"ignore index {ce.ignore_index}")
    if ce.label_smoothing:
        parts.append(f"label smoothing {ce.label_smoothing:g}")
    if not given:
        parts.append("target 0")
    return "loss grad" + (f" ({', '.join(parts)})" if parts else "") + " = finite differences"


def loss_gradient_check(
    L: Layer,
    t: NDArray[np.intp],
    ce: CrossEntropy,
    *,
    reduce: Reduction,
    rtol: float,
    atol: float,
    probes: int | None = None,
    seed: int = 0,
    given: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, str, float, float]:
    """dLoss/dW (and dLoss/db) of the batch, as :func:`smjac.grad` gives it, against central
    finite differences of the batch's loss, moving one weight (or bias) at a time.

    Each probe moves w[j,i] by s (so every sample's z_i by s·x_j), evaluates the reduced loss of
    the whole batch, and takes ``(4 D(s/2) − D(s)) / 3`` with ``D(s)`` the central difference, as
    :func:`smjac.checking.finite_differences.numerical_jacobian` does; the tolerance holds its error estimate.
    With ``probes``, at most that many weights are drawn at random (from ``seed``). ``progress``
    is called after each block of probes with the forward passes it took (four of the batch, N
    samples each, a probe: :func:`~smjac.checking.plan.loss_passes`).

    Returns ``(id, name, max error, tolerance)``, as each of check's per-sample checks.
    """
    analytic = layer_grad(L, target=t, reduce=reduce, **ce.options())
    G = L.as_given(analytic.W)  # in-out, as L.W: the transpose back, when W was given out-in
    n, K = L.W.shape
    dtype = L.W.dtype
    eps = float(np.finfo(dtype).eps)
    T = L.temperature
    Z = layer_logits(L)  # N×K
    denominator = ce.denominator(t, reduce)
    scale = 1.0 / denominator if reduce == "mean" else 1.0

    def batch_loss(Zs: Array) -> Array:
        """The reduced loss of the batch for each stack of logits (B × N × K → B)."""
        C = np.stack([class_logits(L, z) for z in Zs])
        S = (C - np.max(C, axis=-1, keepdims=True)) / T
        return np.array([np.sum(ce.loss(s, t)) * scale for s in S])

    # z carries rounding of ε times the size of its terms; a probe that moves z/T by (that
    # rounding)^(1/3) balances it against truncation, as check's own steps do. Moving w[j,i] by s
    # moves z_i of sample r by s·x[r,j]: the step moves the logits of the largest x_j that far.
    big = float(np.finfo(dtype).max)
    with np.errstate(over="ignore"):
        terms = np.minimum(np.abs(L.X) @ np.abs(L.W) + (0 if L.b is None else np.abs(L.b)), big)
        z_noise = eps * np.maximum(1.0, terms / T)  # N×K: rounding in each z/T
    reach = T * float(np.max(z_noise)) ** (1 / 3)
    xmax = np.max(np.abs(L.X), axis=0)  # n
    cols = np.arange(K * n)  # weight w[j,i] at i·n + j, as dh/dW's columns
    if probes is not None and probes < cols.size:
        cols = np.sort(np.random.default_rng(seed).choice(cols.size, size=probes, replace=False))
    i_of, j_of = np.divmod(cols, n)
    with np.errstate(over="ignore", divide="ignore"):
        steps = np.where(xmax[j_of] > 0, reach / np.where(xmax[j_of] > 0, xmax[j_of], 1.0), reach)
    # an x_j too small for any finite step to move z (5e-324): the loss ignores w[j,i], so any
    # modest step will do, as for an x_j of 0
    steps = np.where(np.isfinite(steps), steps, reach)
    steps = np.maximum(steps, 4 * eps * np.abs(L.W[j_of, i_of]))
    moves = [(L.X[:, j], i) for i, j in zip(i_of, j_of, strict=True)]
    wanted = G[j_of, i_of]
    if L.b is not None:  # b_i moves z_i of every sample by the step itself
        ones = np.ones(L.N, dtype)
        moves += [(ones, i) for i in range(K)]
        steps = np.concatenate([steps, np.full(K, reach)])
        wanted = np.concatenate([wanted, analytic.b])
    steps = steps.astype(dtype)

    # rounding in the batch's loss: each sample's ℓ to ε, and the rounding of its logits, which
    # reaches ℓ through |dℓ/d(z/T)| ≤ 2·max w (each weighted as the loss weighs it), summed and scaled
    weights = np.ones(L.classes) if ce.class_weights is None else ce.class_weights
    C = class_logits(L, Z)
    with np.errstate(over="ignore", under="ignore"):
        each = ce.loss((C - np.max(C, axis=1, keepdims=True)) / T, t)
        noise = scale * float(
            np.sum(eps * np.abs(each) + 2 * float(np.max(weights)) * np.max(z_noise, axis=1))
        )
        noise = min(4 * noise, big)

    def central(block: range, s: Array) -> Array:
        up, down = [], []
        for k in block:
            col, i = moves[k]
            zu, zd = Z.copy(), Z.copy()
            zu[:, i] += s[k] * col
            zd[:, i] -= s[k] * col
            up.append(zu)
            down.append(zd)
        taken = np.array([2 * s[k] for k in block])
        return (batch_loss(np.stack(up)) - batch_loss(np.stack(down))) / taken

    per_block = max(1, BLOCK_ENTRIES // max(1, L.N * K))
    fd, err = np.empty(len(moves)), np.empty(len(moves))
    with np.errstate(all="ignore"):
        for start in range(0, len(moves), per_block):
            block = range(start, min(len(moves), start + per_block))
            coarse, fine = central(block, steps), central(block, steps / 2)
            fd[start : block.stop] = (4 * fine - coarse) / 3
            err[start : block.stop] = np.abs(fine - coarse) + 3 * noise / steps[start : block.stop]
            if progress is not None:
                progress(4 * L.N * len(block))
    if not (np.all(np.isfinite(fd)) and np.all(np.isfinite(wanted))):
        raise InputError(
            "cannot check the loss gradient: the loss or its finite differences overflow; scale the layer down"
        )
    max_error = float(np.max(np.abs(wanted - fd), initial=0.0))
    tolerance = atol + rtol * float(np.max(np.abs(fd), initial=0.0)) + float(np.max(err, initial=0.0))
    name = describe(ce, L, given)
    if probes is not None and len(cols) < K * n:
        name += f" ({len(cols):,} of {K * n:,} weights)"
    return "loss-grad-vs-finite-differences", name, max_error, tolerance
