"""Small numeric helpers shared by the maths: float conversion, finiteness, magnitudes, choices."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError

Array = NDArray[np.floating]
SMALL = 4096  # entries below which a few numpy calls cost more than the arithmetic they do


def as_float(a: ArrayLike) -> Array:
    """Float arrays keep their precision; anything else becomes float64."""
    arr = np.asarray(a)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def all_finite(a: Array) -> bool:
    """Whether every entry is finite, in one pass and without a boolean array the size of ``a``.

    A NaN or infinity makes the sum NaN or infinite; a finite sum therefore clears them all. Only
    a sum that overflows needs the entry-by-entry look. A small array is looked at entry by entry
    at once: its boolean array costs less than the errstate and the sum's Python wrapper.
    """
    if a.size <= SMALL:  # counted: np.all and .all() go through a Python wrapper that costs twice as much
        return int(np.count_nonzero(np.isfinite(a))) == a.size
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(a)):
            return True
    return bool(np.all(np.isfinite(a)))


def largest_float(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).max)


def peak_abs(a: Array) -> float:
    """``max|a|`` as a Python float (0 for an empty array)."""
    return float(np.max(np.abs(a), initial=0.0))


def at_least(v: float) -> str:
    """``v`` rounded up to two significant digits: a bound that is safe to quote as "use T ≥ …"."""
    text = f"{v:.2g}"
    return text if float(text) >= v else f"{v * 1.05:.2g}"


def pow2(a: float) -> float:
    """A power of two near ``a`` (≤ 2|a|, never infinite): dividing by it is exact and keeps digits."""
    return math.ldexp(1.0, math.frexp(a)[1] - 1) if a > 0 else 1.0


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value
