"""``smjac inspect``: the layers of a checkpoint that could be its head, and the one smjac takes.

Only headers are read (no tensor), so it answers at once for a model of any size. The command
is registered by :mod:`smjac.cli.app`; its result goes through the shared writer: a table at a
terminal, JSON in a pipe or with ``--format json``, notes on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ..outputs import writer as output
from .commands import done
from .flags import as_flags
from .options import Output, input_cap, output_options

INSPECT = output.Shape(
    "a checkpoint's layers", csv=None, arrays=False, view="table", documents=(), picture=None
)


@output_options(INSPECT, precision=None, files=False, helps={"quiet": "No notes on stderr."})
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

    rows = [
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
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # seven columns in 80: two spaces between them (collapsed padding), one at each edge
    table = Table(
        title=f"layers of {shown(label)}", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
        title_justify="left",
    )  # fmt: skip
    names = ("key", "shape", "dtype", "bias", "layout", "tied to", "head")
    for name in names:
        table.add_column(name, overflow="fold")
    # each column one cell of lines, a layer a line (shown() leaves no newline in a name; the writer
    # widens its console to the table, so no line folds): rich lays out and measures a table cell
    # by cell, several times, which took 60 s for 50,000 layers row by row
    if rows:  # names are not markup: Text, never a string rich would parse
        table.add_row(*(Text("\n".join(r[i] for r in rows)) for i in range(len(names))))
    return table
