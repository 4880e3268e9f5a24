"""The batch forward pass keeps its bits however it walks the rows.

A batch is cut into fixed spans of rows (one product each) and each span's softmax into blocks of
rows small enough to stay in cache (``_parallel.PASS_BYTES``). Every operation after the product
works row by row, so neither cut may move a bit: h is the softmax formula applied to the z
returned, bit for bit, and both are within a few ulps of a reference in extended precision.
"""

from __future__ import annotations

import numpy as np
import pytest

import smjac
from smjac.maths import _parallel
from smjac.maths.layer import make_layer

# (N, n, K): several spans of several blocks; outputs too few for numpy's row buffer (K < 128);
# rows longer than a block (K·8 > PASS_BYTES, one row a block); one span, in the calling thread.
SHAPES = [(600, 64, 300), (3000, 16, 100), (70, 16, 33_000), (40, 8, 50)]
OPTIONS = [
    {},
    {"temperature": 0.37},
    {"function": "log-softmax"},
    {"function": "log-softmax", "temperature": 2.5},
]


def _batch(seed, N, n, K, dtype):
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n, K)) * 3 / np.sqrt(n)).astype(dtype)
    X = (rng.standard_normal((N, n)) * 2).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return W, X, b, rng.integers(0, K, N)


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_h_is_the_softmax_formula_of_z_bit_for_bit(shape, dtype):
    W, X, b, _ = _batch(1, *shape, dtype)
    for bias in (None, b):
        for options in OPTIONS:
            f = smjac.forward(W, X, bias, **options)
            T = options.get("temperature", 1.0)
            s = f.z - f.z.max(axis=1, keepdims=True)  # the shift changes nothing but keeps exp ≤ 1
            s = s / T if T != 1 else s
            e = np.exp(s)
            p = e / e.sum(axis=1, keepdims=True)
            assert _same_bits(f.p, p), (shape, options)
            if options.get("function") == "log-softmax":
                assert _same_bits(f.h, s - np.log(e.sum(axis=1, keepdims=True))), (shape, options)
            else:
                assert _same_bits(f.h, p)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_z_and_h_are_within_a_few_ulps_of_extended_precision(shape, dtype):
    W, X, b, _ = _batch(2, *shape, dtype)
    f = smjac.forward(W, X, b, temperature=0.7)
    wide = np.longdouble  # 80-bit on x86; where it is float64, the reference is a second float64 sum
    z = X.astype(wide) @ W.astype(wide) + b.astype(wide)
    eps, n = np.finfo(dtype).eps, shape[1]
    # a sum of n products is within about n·eps of the sum of their sizes
    assert np.all(np.abs(f.z - z) <= (n + 2) * eps * (np.abs(X) @ np.abs(W) + np.abs(b)))
    s = (z - z.max(axis=1, keepdims=True)) / 0.7
    e = np.exp(s)
    p = e / e.sum(axis=1, keepdims=True)
    # relative to p: z's own rounding (2·max|Δz|/T), the shift's (|s|·eps, which exp turns relative),
    # and a few ulps of exp, the sum and the division; p below the smallest normal float, absolute
    slack = (
        np.max(np.abs(f.z - z), axis=1, keepdims=True) * 2 / 0.7 + (np.abs(s) + np.log2(shape[2]) + 4) * eps
    )
    assert np.all(np.abs(f.h - p) <= slack * p + np.finfo(dtype).tiny)


@pytest.mark.parametrize("shape", [(600, 64, 300), (70, 16, 33_000)])
def test_the_size_of_a_block_of_rows_moves_no_bit(monkeypatch, shape):
    W, X, b, t = _batch(3, *shape, np.float64)

    def everything():
        f = smjac.forward(W, X, b, function="log-softmax", temperature=0.6)
        g = smjac.grad(W, X, b, target=t, temperature=0.6)
        p = smjac.maths.forward_pass.layer_probabilities(make_layer(W, X, b))
        return [f.z, f.h, f.p, g.W, g.b, g.z, np.float64(g.loss), p]

    results = []
    for size in (1, 8 * shape[2] * 5, 2**40):  # one row a block, five, the whole span
        monkeypatch.setattr(_parallel, "PASS_BYTES", size)
        monkeypatch.setattr(smjac.maths.forward_pass, "PASS_BYTES", size)
        results.append(everything())
    for other in results[1:]:
        assert all(_same_bits(a, c) for a, c in zip(results[0], other, strict=True))


def test_the_caller_s_ufunc_buffer_is_left_as_it_was():
    W, X, _, _ = _batch(4, 40, 8, 300, np.float64)  # one span, in the calling thread
    before = np.getbufsize()
    smjac.forward(W, X)
    assert np.getbufsize() == before
