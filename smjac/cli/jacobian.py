"""``smjac jacobian``: a Jacobian of the layer, whole, one entry of it, its legend or its factors."""

import dataclasses
from typing import Annotated

import typer

from .. import maths
from ..errors import InputError
from ..outputs import results
from .commands import done
from .options import (
    LayerSource,
    Output,
    layer_options,
    output_options,
    whole_numbers,
)


@layer_options
@output_options(
    results.JACOBIAN,
    also=(results.LEGEND, results.ENTRY, results.FACTORS),
    formats=("factored",),
    more="; factored: dh/dz and x, K² + n numbers (--wrt W)",
    sample=True,
)
def jacobian(
    ctx: typer.Context,
    source: LayerSource,
    *,
    of: Annotated[maths.Of, typer.Option(help="Differentiate h (the outputs) or z (the logits).")] = "h",
    wrt: Annotated[maths.Wrt, typer.Option(help=f"With respect to {maths.wrt_choices()}.")] = "W",
    method: Annotated[
        maths.Method,
        typer.Option(help="shortcut: closed form per entry; chain: dh/dz · dz/dW, as the post."),
    ] = "shortcut",
    legend: Annotated[
        bool, typer.Option("--legend", help="Print which column is which variable instead.")
    ] = False,
    entry: Annotated[
        str | None,
        typer.Option(help=f"Print one entry, of --wrt: {maths.entry_forms()}.", show_default=False),
    ] = None,
    out: Output,
) -> None:
    """Print a Jacobian: one row per output, one column per input.

    For --wrt W, the column of weight w[i,j] (output i, input j) is i·n + j in both layouts, as
    in the post; --legend lists them. A batch x (N×n) gives N Jacobians, N × K × columns.

    dh/dW has K²·n entries. -o J.npy (or .csv) streams it to the file in blocks, so memory stays
    flat however large it is; printed or written any other way it must fit in --max-memory.
    --format factored gives it as dh/dz and x instead, and --entry T,I,J one entry of it.

    \b
    Examples:
      smjac jacobian -W samples/blog/W.json -x samples/blog/x.json --method chain
      smjac jacobian -W samples/pytorch/W.json -x samples/pytorch/x.json --layout out-in --legend
      smjac jacobian -W samples/batch/W.json -x samples/batch/X.json --sample 2 --wrt x
      smjac jacobian --layer samples/blog/layer.json --format heatmap
      smjac jacobian --layer samples/blog/layer.json --wrt z --format latex --precision 3
      smjac jacobian --layer samples/blog/layer.npz --entry 1,1,2
      smjac jacobian --layer samples/blog/layer.npz --format factored
    """
    if legend and entry is not None:
        raise typer.BadParameter("--legend and --entry each replace the Jacobian: give one of them")
    factored = out.fmt == "factored"
    if factored and (legend or entry is not None):
        raise typer.BadParameter("--format factored gives dh/dW as its factors: not with --legend or --entry")
    shape = results.LEGEND if legend else results.ENTRY if entry is not None else results.JACOBIAN
    w = dataclasses.replace(out, fmt=None).writer(results.FACTORS) if factored else out.writer(shape)
    L = source.load(ctx, w, binary=None if of == "h" else "")
    results.sample_in_range(L, out.sample)
    if legend:
        result = results.legend(L, wrt=wrt)
    elif entry is not None:
        index = whole_numbers(entry)
        if index is None:
            such = ",".join(str(i) for i in range(1, 1 + len(maths.wrt_target(wrt).index_names)))
            raise InputError(f"--entry {entry!r}: give indices from 0, such as {such} (ASCII digits)")
        result = results.entry(L, index, of=of, wrt=wrt, method=method, sample=out.sample)
    elif factored:
        result = results.factors(L, of=of, wrt=wrt)
    else:
        result = results.jacobian(L, of=of, wrt=wrt, method=method, sample=out.sample)
    done(w.write(result))
