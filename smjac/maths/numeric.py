"""Small numeric helpers shared by the maths: float conversion, finiteness, magnitudes, choices."""

from __future__ import annotations

import math
import numbers
import reprlib
import sys
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError, ShapeError

Array = NDArray[np.floating]
SMALL = 4096  # entries below which a few numpy calls cost more than the arithmetic they do
REAL = "smjac needs real numbers (float or int)"  # the readers say the same of a file


def as_float(a: ArrayLike, name: str = "an input") -> Array:
    """``a`` as an array of floats: float32 and float64 arrays keep their precision, float16 becomes
    float32 (the least smjac computes in: at float16's precision a check's tolerance would pass an
    answer 10% off), whole numbers and booleans become float64.

    Anything else is refused, naming ``name``, rather than cast into something else: complex
    numbers (the cast would drop the imaginary part), text, dates, objects that are not numbers
    (``None``, which the cast makes NaN), rows of different lengths, and whole numbers past
    float64.

    >>> as_float([1, 2]), as_float(np.float32([0.5])).dtype, as_float(np.float16([0.5])).dtype
    (array([1., 2.]), dtype('float32'), dtype('float32'))
    >>> as_float([1 + 2j], "x")
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: x has dtype complex128; smjac needs real numbers (float or int), and casting would drop the imaginary part
    """
    refuse_masked(a, name)
    try:
        arr = np.asarray(a)
    except ValueError:  # rows of different lengths
        raise ShapeError(f"{name} is not a vector or a matrix: its rows are of different lengths") from None
    if arr.dtype.kind == "f" and 4 <= arr.dtype.itemsize <= 8:
        return arr
    if arr.dtype.kind == "f" and arr.dtype.itemsize < 4:  # float16: exact in float32
        return arr.astype(np.float32)
    if arr.dtype.kind == "f":  # long double: neither BLAS nor LAPACK computes in it
        raise InputError(
            f"{name} has dtype {arr.dtype} (long double); smjac computes in float64 at most: cast it with "
            ".astype(numpy.float64), which rounds it"
        )
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    if arr.dtype.kind == "O":  # a list holding None, text, or whole numbers past int64
        return _object_floats(arr, name)
    lost = ", and casting would drop the imaginary part" if arr.dtype.kind == "c" else ""
    raise InputError(f"{name} has dtype {arr.dtype}; {REAL}{lost}")


def refuse_masked(a: object, name: str) -> None:
    """Refuse a masked array with masked entries: ``np.asarray`` drops the mask, and the numbers
    under it would be computed with. A mask that hides nothing is no mistake."""
    ma = sys.modules.get("numpy.ma")  # a masked array's module is loaded once one exists
    if ma is not None and isinstance(a, ma.MaskedArray) and ma.getmaskarray(a).any():
        at = ", ".join(str(int(i)) for i in np.argwhere(ma.getmaskarray(a))[0])
        first = f" (the first at [{at}])" if at else ""
        raise InputError(
            f"masked entries in {name}{first}: smjac reads no mask, and would take the numbers under it; "
            "fill them, with .filled(value), or leave them out"
        )


def _object_floats(arr: NDArray[np.object_], name: str) -> Array:
    """An array of Python objects as float64, if each is a real number (a Python loop: such an
    array is converted by one anyway)."""
    for i, v in enumerate(arr.flat):
        if not isinstance(v, numbers.Real | np.bool_):
            at = f" at {tuple(int(k) for k in np.unravel_index(i, arr.shape))}" if arr.ndim else ""
            raise InputError(f"{name} holds {reprlib.repr(v)}{at}, not a number; {REAL}")
    try:
        return arr.astype(np.float64)
    except OverflowError:
        raise InputError(
            f"{name} holds a whole number past float64's largest ({largest_float(np.dtype(np.float64)):.3g})"
        ) from None


def real_number(name: str, value: object) -> float:
    """A number parameter (``temperature``) as a Python float, refusing what is not one: True is
    not 1 here, nor "2" two, nor 1+0j one.

    >>> real_number("temperature", 2), real_number("temperature", np.float32(0.5))
    (2.0, 0.5)
    >>> real_number("temperature", True)
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: temperature must be a number, not True
    """
    if type(value) is float:
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:  # a NumPy 0-d array, as a reduction may give
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, not {reprlib.repr(value)}")
    try:
        with np.errstate(over="ignore"):
            out = float(value)
        if math.isinf(out) and isinstance(value, np.floating) and np.isfinite(value):  # a long double
            raise OverflowError
    except OverflowError:  # or a whole number
        shown = (
            np.format_float_scientific(value, 5) if isinstance(value, np.floating) else reprlib.repr(value)
        )
        top = largest_float(np.dtype(np.float64))
        raise InputError(f"{name}={shown} overflows float64 (its largest value is {top:.3g})") from None
    return out


def cast(a: Array, dtype: np.dtype, name: str) -> Array:
    """``a`` (finite) in ``dtype``, refusing a value the cast makes infinite (1e39 in float32),
    in the words the readers use for a file's cast.

    >>> cast(np.array([1e39]), np.dtype(np.float32), "upstream")
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: upstream: 1e+39 overflows float32 when cast for dtype=float32 (its largest value is 3.4e+38); use dtype=float64 or scale it down
    """
    if a.dtype == dtype:
        return a
    with np.errstate(over="ignore"):  # numpy would warn; the message below says it better
        out = a.astype(dtype)
    if not all_finite(out):
        largest = float(a.flat[int(np.argmax(np.abs(a)))])
        raise InputError(
            f"{name}: {largest:.6g} overflows {dtype} when cast for dtype={dtype} (its largest value is "
            f"{largest_float(dtype):.3g}); use dtype=float64 or scale it down"
        )
    return out


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
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value
