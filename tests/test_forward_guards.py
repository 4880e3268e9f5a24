"""The batch forward pass refuses what it refused before its sweep was trimmed, in the same words.

The sweep (``softmax_rows``) checks each block of logits with two reductions: the least entry
(NaN and −inf show there) and the largest of the rows' maxima (+inf). Any non-finite logit sends
the batch down the careful path, which says why: x (make_layer's scan), W (scanned only then),
or z itself past the float range (refused after rescaling, or rescaled when only a partial sum
overflowed). These cases are built to reach each branch in a batch of several spans on the pool,
with the bad number in one block only, and compared with the careful path's own verdict.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import smjac
from smjac.maths import _parallel
from smjac.maths.forward_pass import _forward_careful, softmax_rows
from smjac.maths.layer import make_layer

N, n, K = 2048, 16, 200  # 6.5M multiply-adds: several spans, on the pool


def _layer(dtype=np.float64, seed=5):
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n, K)) / 4).astype(dtype)
    X = rng.standard_normal((N, n)).astype(dtype)
    return W, X


def test_the_batch_takes_several_spans_and_blocks():
    spans = _parallel.sweep_spans(N, n, K, 8)
    assert len(spans) > 2 and N * n * K >= _parallel.POOL_FROM
    assert spans[0][1] - spans[0][0] > _parallel.PASS_BYTES // (K * 8)  # several blocks a span


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, N // 2 + 3, N - 1])
def test_a_non_finite_x_is_refused_as_x(dtype, bad, row):
    W, X = _layer(dtype)
    X[row, 3] = bad
    with pytest.raises(smjac.InputError, match=r"^x holds a NaN or infinite value$"):
        smjac.forward(W, X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_x_against_a_zero_row_of_w_is_refused_as_x(bad):
    # 0·inf is NaN: the x is refused whatever the weights it meets
    W, X = _layer()
    W[3] = 0
    X[N - 5, 3] = bad
    with pytest.raises(smjac.InputError, match=r"^x holds a NaN or infinite value$"):
        smjac.forward(W, X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_w_is_refused_as_w(dtype, bad):
    W, X = _layer(dtype)
    W[7, K - 2] = bad
    with pytest.raises(smjac.InputError, match=r"^W holds a NaN or infinite value$"):
        smjac.forward(W, X)


def test_a_w_that_makes_only_minus_infinity_is_refused_as_w():
    # W[0, 5] = +inf against x_0 = −1 in every row: z_5 = −inf and every row's largest logit is
    # finite, so only the least entry of a block shows it
    W, X = _layer()
    X[:, 0] = -1.0
    W[0, 5] = np.inf
    L = make_layer(W, X)
    assert softmax_rows(L) is None
    with pytest.raises(smjac.InputError, match=r"^W holds a NaN or infinite value$"):
        smjac.forward(W, X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_logits_past_the_float_range_in_one_block_are_refused_as_z(dtype, sign):
    # finite x and W whose product overflows in a few rows only: +inf (seen in a row's maximum) or
    # −inf (seen in the least entry alone, below finite maxima)
    W, X = _layer(dtype)
    big = np.finfo(dtype).max / 4
    W[2] = 0
    W[2, 9] = sign * big
    X[:, 2] = 0
    X[N - 40 : N - 37, 2] = 8.0
    L = make_layer(W, X)
    assert softmax_rows(L) is None
    with pytest.raises(smjac.InputError) as careful:
        _forward_careful(L)
    assert str(careful.value).startswith(f"z = Wᵀx overflows {np.dtype(dtype).name}")
    with pytest.raises(smjac.InputError) as fast:
        smjac.forward(W, X)
    assert str(fast.value) == str(careful.value)
    f = smjac.forward(W[:, :9], X)  # without the overflowing column: answered
    assert np.all(np.isfinite(f.h))


def test_a_partial_sum_that_overflows_is_rescaled_not_refused():
    # z = big + big − big is finite, but a sum in this order overflows: the careful path rescales
    W, X = _layer()
    big = np.finfo(np.float64).max * 0.75
    W[:3] = 0
    W[0, 4], W[1, 4], W[2, 4] = big, big, -big
    X[:, :3] = 0
    X[100, :3] = 1.0
    L = make_layer(W, X)
    rows = softmax_rows(L)
    f = smjac.forward(W, X)
    Z, H, _ = _forward_careful(L)
    if rows is None:  # the product met the overflow: the careful path's rescaled numbers
        assert f.z.tobytes() == Z.tobytes() and f.h.tobytes() == H.tobytes()
    assert np.isfinite(f.z[100, 4]) and f.h[100, 4] == 1.0


def test_x_is_named_before_b_and_the_temperature():
    W, X = _layer(np.float32)
    X[N - 1, 0] = np.nan
    b = np.full(K, np.nan, np.float32)
    with pytest.raises(smjac.InputError, match=r"^x holds a NaN or infinite value$"):
        smjac.forward(W, X, b)
    with pytest.raises(smjac.InputError, match=r"^x holds a NaN or infinite value$"):
        smjac.forward(W, X, temperature=1e39)  # past float32's range, refused after x
    with pytest.raises(smjac.InputError, match=r"^x holds a NaN or infinite value$"):
        smjac.forward(W, X, temperature=1e-50)  # 0 in float32, refused after x


def test_an_overflow_on_the_pool_is_refused_without_a_warning():
    # numpy's error state is per thread: the pool's workers run under the caller's, so the product
    # that overflows in a worker is quiet there as it is in the calling thread, and only refused
    W, X = _layer()
    W[2] = 0
    W[2, 9] = np.finfo(np.float64).max / 4
    X[:, 2] = 8.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(smjac.InputError, match="z = Wᵀx overflows float64"):
            smjac.forward(W, X)
        with np.errstate(over="raise"), pytest.raises(FloatingPointError):
            _parallel.in_spans(lambda _: np.float64(1e308) * 10, range(4), _parallel.POOL_FROM)
