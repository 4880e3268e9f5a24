"""JSON and CSV: strict readers (every number finite unless asked, no ragged rows, no duplicate
keys) and writers whose numbers read back bit for bit.

Both directions run at the speed of C in the common case, through orjson, and keep the careful
code for everything else. Reading is :mod:`smjac.formats.text_reading`, writing
:mod:`smjac.formats.text_writing`; their public functions are gathered here, the codec's one name (its tuning constants stay in
the module that reads them, where a test can set them).
"""

from __future__ import annotations

from .text_reading import (
    careful_csv,
    careful_document,
    careful_json,
    fast_csv,
    fast_document,
    fast_json,
    json_array,
    json_document,
    json_kind,
    parse_csv,
    parse_json,
    read_text,
)
from .text_writing import (
    csv_bytes,
    csv_lines,
    csv_text,
    json_bytes,
    plain_floats,
    stream_csv,
    to_csv,
    to_json,
)

__all__ = [
    "careful_csv",
    "careful_document",
    "careful_json",
    "csv_bytes",
    "csv_lines",
    "csv_text",
    "fast_csv",
    "fast_document",
    "fast_json",
    "json_array",
    "json_bytes",
    "json_document",
    "json_kind",
    "parse_csv",
    "parse_json",
    "plain_floats",
    "read_text",
    "stream_csv",
    "to_csv",
    "to_json",
]
