"""``smjac inspect``: the layers of a checkpoint that could be its head, and the one smjac takes.

Only headers are read (no tensor), so it answers at once for a model of any size. The command
is registered by :mod:`smjac.cli.whole`; its result goes through the shared writer: a table at a
terminal, JSON in a pipe or with ``--format json``, notes on stderr.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer

from ..outputs import writer as output
from .commands import done
from .flags import as_flags
from .options import Output, input_cap, output_options

INSPECT = output.Shape(
    "a checkpoint's layers", csv=None, arrays=False, view="table", documents=(), picture=None
)


@output_options(
    INSPECT,
    precision=None,
    files=False,
    memory=True,
    helps={
        "quiet": "No notes on stderr.",
        "max_memory": "Refuse a checkpoint whose headers or config would take more than this to read: "
        "4G, 512M or bytes (up to 2^62) [default: half the memory available].",
    },
)
def inspect_layers(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path,
        typer.Argument(
            metavar="CHECKPOINT_OR_DIR",
            help="A save_pretrained folder, model.safetensors.index.json, or a .safetensors, .keras or .h5 file.",
            exists=True,
            readable=True,
            show_default=False,
        ),
    ],
    out: Output,
) -> None:
    """List the layers of a checkpoint that could be a softmax head, and the one smjac takes.

    For each 2-D weight: the name --key takes, its shape as stored, dtype, bias, layout (out-in:
    K×n as PyTorch stores it; in-out: n×K, Keras), the embedding a tied head reads, and which one
    --layer takes without --key (the head; none when that is unsure). The likeliest come first.
    Only the files' headers are read.

    \b
    Examples:
      smjac inspect samples/model/classifier.safetensors
      smjac inspect samples/model/tiny-gpt2 --format json
    """
    from ..formats import checkpoints

    w = out.writer(INSPECT)
    found = checkpoints.layers(checkpoint, max_bytes=input_cap(ctx), memory_budget=w.budget())
    for text in found.notes:
        w.note(as_flags(text))
    done(w.write(_result(found)))


def _result(found: Any) -> output.Result:
    from ..formats.document import Document

    head = found.head
    records = [
        {
            "key": c.key,
            "shape": list(c.shape),
            "dtype": c.dtype,
            "bias": c.bias_key,
            "layout": c.layout,
            "tied_to": c.tied_to,
            "head": c is head,
        }
        for c in found.candidates
    ]

    # a tied head's embedding, in the table by the key its own row has (the JSON names the tensor)
    keys = {c.weight_key: c.key for c in found.candidates}
    rows = [{**r, "tied_to": keys.get(r["tied_to"], r["tied_to"])} for r in records]

    def view(doc: Document) -> output.View:
        return output.View(np.zeros((0, 0)), [], [], "layers", table=lambda: _table(found.label, rows))

    doc = Document({"layers": records, "head": None if head is None else head.key})
    return output.Result(INSPECT, "the layers", lambda progress: doc, view)


def _table(label: str, records: list[dict[str, Any]]) -> Any:
    from ..errors import shown

    rows: list[tuple[str, ...]] = [
        (
            shown(r["key"]),
            "×".join(map(str, r["shape"])),
            r["dtype"],
            "yes" if r["bias"] else "",  # the bias is KEY.bias or bias by rule: JSON names it
            r["layout"],
            shown(r["tied_to"] or ""),
            "head" if r["head"] else "",
        )
        for r in records
    ]
    return _table_of(f"layers of {shown(label)}", rows)


def _table_of(title: str, rows: list[tuple[str, ...]]) -> Any:
    """A rich Table of the layers that lays out its header only and writes each layer's line
    itself: rich lays out and measures a table cell by cell, several times (60 s for 50,000
    layers); the columns' widths are found here once, as rich would find them."""
    from rich import box
    from rich.cells import cell_len
    from rich.segment import Segment
    from rich.table import Table

    names = ("key", "shape", "dtype", "bias", "layout", "tied to", "head")
    widths = [max(cell_len(c) for c in [name, *(r[i] for r in rows)]) for i, name in enumerate(names)]

    class Layers(Table):
        def __rich_console__(self, console: Any, options: Any) -> Any:
            header = cast("Iterable[Segment]", super().__rich_console__(console, options))  # all Segments
            lines = list(Segment.split_lines(header))
            for line in lines[:-1]:  # the title, the top edge, the header and its rule
                yield from line
                yield Segment.line()
            for r in rows:  # two spaces between columns (collapsed padding), one at each edge
                cells = (c + " " * (w - cell_len(c)) for c, w in zip(r, widths, strict=True))
                yield Segment(" " + "  ".join(cells) + " ")
                yield Segment.line()
            yield from lines[-1]  # the bottom edge
            yield Segment.line()

    # seven columns in 80: two spaces between them (collapsed padding), one at each edge
    table = Layers(
        title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left",
    )  # fmt: skip
    for name, width in zip(names, widths, strict=True):
        table.add_column(name, width=width)
    return table
