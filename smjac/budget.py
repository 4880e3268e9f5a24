"""Sizes and the one memory budget rule.

Sizes are bytes (``max_memory``, ``max_bytes``); the command line writes them with units
(``4G``, ``512M``: :func:`parse_size`). A budget left unset is half the memory available now
(:func:`default_memory_budget`), resolved in one place (:func:`resolve`). Every result's size comes from :mod:`smjac.maths.cost`; :func:`require` is the
one comparison with the budget and the one wording of a refusal.
"""

from __future__ import annotations

import os
import re

DEFAULT_MAX_INPUT_BYTES = 2**30  # the input size cap (max_bytes) when none is given

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
MAX_SIZE = 2**62  # the largest size smjac takes (4 EiB): past any machine, short of int64 overflow


def parse_size(text: str) -> int:
    """``"4G"``, ``"512MiB"``, ``"1.5g"`` or ``"1000000"`` as a number of bytes (units of 1024).

    >>> parse_size("1.5k"), parse_size("2G")
    (1536, 2147483648)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper(), flags=re.ASCII)
    if not m:
        raise ValueError(f"{text!r} is not a size; write it as 4G, 512M or a number of bytes")
    if len(m[1]) > 40:
        raise ValueError(f"{text[:20]!r}… is out of range: a size is 1 byte to 4 EiB (2^62 bytes)")
    whole = "." not in m[1]  # exact for a whole number of any length; float for 1.5G
    size = int(m[1]) * _UNITS[m[2]] if whole else int(float(m[1]) * _UNITS[m[2]])
    if not 0 < size <= MAX_SIZE:
        raise ValueError(f"{text!r} is out of range: a size is 1 byte to 4 EiB (2^62 bytes)")
    return size


def format_size(n: float, against: float | None = None) -> str:
    """``n`` bytes for a person: ``"1.5 MiB"``. Said beside another size ``against`` that would read
    the same but is not (a need just over a budget), in bytes, every digit.

    >>> format_size(1536), format_size(2**20 + 1), format_size(2**20 + 1, against=2**20)
    ('1.5 KiB', '1.0 MiB', '1,048,577 bytes')
    """
    if against is not None and n != against and format_size(n) == format_size(against):
        return f"{int(n):,} bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            if unit == "bytes":
                return "1 byte" if n == 1 else f"{n:.0f} bytes"
            return f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def available_memory() -> int | None:
    """Bytes of memory the system could give now (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_budget() -> int:
    """Half the memory available now; 2 GiB when that cannot be told."""
    available = available_memory()
    return available // 2 if available else 2 * 2**30


def checked(max_memory: int | None) -> int | None:
    """``max_memory`` as given, refused unless it is None or a whole number of bytes, at least 1.

    >>> checked(-1)
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: max_memory must be a whole number of bytes, at least 1, not -1
    """
    from .errors import size_in_bytes

    return None if max_memory is None else size_in_bytes("max_memory", max_memory)


def resolve(max_memory: int | None) -> int:
    """The memory budget in bytes: ``max_memory`` as given (:func:`checked`), or
    :func:`default_memory_budget`."""
    given = checked(max_memory)
    return default_memory_budget() if given is None else given


def require(need: int, what: str, max_memory: int | None, *, way: str = "") -> None:
    """Refuse, before any work, something that would take more memory than the budget allows.

    ``need`` comes from :func:`smjac.maths.estimate_bytes` (or a reader's own estimate of a
    parse); ``what`` names it ("dh/dW (150 × 22500 float64) as json"); ``way`` says what to do
    instead. The message names the figure, the budget and the flag that raises it.

    >>> require(10, "it", 100)
    >>> require(200, "it", 100)
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: it would take 200 bytes, over the memory budget of 100 bytes (max_memory)
    >>> require(2**20 + 1, "it", 2**20)  # sizes that would both read 1.0 MiB
    Traceback (most recent call last):
    ...
    smjac.errors.InputError: it would take 1,048,577 bytes, over the memory budget of 1,048,576 bytes (max_memory)
    """
    from .errors import InputError

    budget = resolve(max_memory)
    if need > budget:
        need_text, budget_text = format_size(need, against=budget), format_size(budget, against=need)
        said = f"{what} would take {need_text}, over the memory budget of {budget_text} (max_memory)"
        raise InputError(f"{said}. {way}" if way else said)
