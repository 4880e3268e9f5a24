"""A result as data: named fields, and how its main matrix, columns or records are laid out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------- writing


class Document(NamedTuple):
    """A command's result, ready to be written in any format.

    ``fields`` is the JSON object (arrays allowed). ``matrix`` names the one field a ``.npy`` or a
    plain ``.csv`` holds. Without one, ``columns`` (name → 1-D array, all of one length) or
    ``records`` (rows of scalars) make a CSV with a header. NPZ holds every array and number in
    ``fields``.
    """

    fields: Mapping[str, Any]
    matrix: str | None = None
    columns: Mapping[str, np.ndarray] = MappingProxyType({})
    records: Sequence[Mapping[str, Any]] = ()
