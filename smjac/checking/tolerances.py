"""The tolerances of ``check`` and ``verify``: their one home.

A value agrees with its reference when ``max|a − r| ≤ atol + rtol·max|r|``. The defaults follow
the dtype of the arithmetic: coarser types round more, so they are allowed more.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..maths.numeric import real_number

CHECK_ATOL = 1e-9  # check's absolute tolerance, and verify's floor in float64


def default_rtol(dtype: np.dtype | type) -> float:
    """1e-6 in float64; looser where the arithmetic is coarser (float32: about 1.2e-5).

    >>> default_rtol(np.float64), f"{default_rtol(np.float32):.2g}"
    (1e-06, '1.2e-05')
    """
    return max(1e-6, 100 * float(np.finfo(dtype).eps))


def default_atol(dtype: np.dtype | type) -> float:
    """``verify``'s: :data:`CHECK_ATOL` in float64; ten ulps of 1 in coarser types (float32: about 1.2e-6).

    >>> default_atol(np.float64), f"{default_atol(np.float32):.2g}"
    (1e-09, '1.2e-06')
    """
    return max(CHECK_ATOL, 10 * float(np.finfo(dtype).eps))


def made_in(answer: np.dtype, layer: np.dtype) -> np.dtype:
    """The precision an answer of dtype ``answer`` to a layer in ``layer``'s was made in, as far as
    can be told: the coarser of the two (a whole-number answer says nothing of it)."""
    return max((answer if answer.kind == "f" else layer, layer), key=lambda d: float(np.finfo(d).eps))


def verify_tolerances(answer: np.dtype, layer: np.dtype) -> tuple[float, float]:
    """``verify``'s default ``(rtol, atol)`` for an answer of dtype ``answer`` to a layer computed
    in ``layer``'s: those of the coarser of the two, at most float32's (smjac computes in float32
    at least), and for an answer held in fewer digits than that (float16) its own rounding, four
    units in its last place, on top. At float16's own defaults (rtol 0.098) an answer 9% off passed.

    >>> [f"{t:.2g}" for t in verify_tolerances(np.dtype(np.float16), np.dtype(np.float64))]
    ['0.0039', '1.2e-06']
    >>> verify_tolerances(np.dtype(np.int64), np.dtype(np.float64))
    (1e-06, 1e-09)
    """
    eps = lambda d: float(np.finfo(d).eps)  # noqa: E731
    coarse = made_in(answer, layer)
    arithmetic = coarse if eps(coarse) <= eps(np.float32) else np.dtype(np.float32)
    held = eps(answer) if answer.kind == "f" else 0.0
    return max(default_rtol(arithmetic), 4 * held), default_atol(arithmetic)


RTOL_MAX, ATOL_MAX = 1.0, 1e300  # a tolerance past these lets every answer agree


def given(name: str, value: object, default: float) -> float:
    """A tolerance the caller gave (None: ``default``), refused when it is not a number in its
    range: ``rtol`` in [0, 1], ``atol`` in [0, 1e300]. A tolerance of ``inf``, ``nan`` or ``True``
    would let every answer pass without a word.

    >>> given("rtol", None, 1e-6), given("atol", 0, 1e-9)
    (1e-06, 0.0)
    >>> given("rtol", float("inf"), 1e-6)
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: rtol must be a finite number in [0, 1], not inf
    """
    if value is None:
        return default
    tol = real_number(name, value)
    top = RTOL_MAX if name == "rtol" else ATOL_MAX
    if not 0 <= tol <= top:  # nan fails both
        raise InputError(f"{name} must be a finite number in [0, {top:g}], not {tol!r}")
    return tol


def describe() -> str:
    """The defaults in words, for help texts."""
    return (
        f"rtol by dtype, {default_rtol(np.float64):g} for float64 and {default_rtol(np.float32):.2g} for "
        f"float32; atol {CHECK_ATOL:g} (verify: {default_atol(np.float32):.2g} for float32)"
    )
