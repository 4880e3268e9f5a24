"""``smjac forward``: the layer's logits and outputs."""

import typer

from ..outputs import results
from .commands import done
from .options import (
    LayerSource,
    Output,
    input_cap,
    layer_options,
    output_options,
)


@layer_options
@output_options(results.FORWARD, sample=True)
def forward(ctx: typer.Context, source: LayerSource, out: Output) -> None:
    """Run the layer forward: z = Wᵀx (+ b) and h = softmax(z / T).

    A batch x (N×n) gives z and h as N×K; its CSV has one row per sample and output.

    \b
    Examples:
      smjac forward -W samples/blog/W.json -x samples/blog/x.json
      smjac forward -W samples/batch/W.json -x samples/batch/X.json --function log-softmax
      smjac forward --layer samples/blog/layer.npz --temperature 2 --format json
    """
    w = out.writer(results.FORWARD)
    X = source.mapped_x(input_cap(ctx))
    if X is not None:  # larger than the input cap: walked a chunk of rows at a time
        L = source.load(ctx, w, x=X[:1])
        results.sample_in_range(L._replace(X=X, batched=True), out.sample)  # type: ignore[arg-type]  # its N
        done(
            w.write(
                results.forward_mapped(L, X, precision=out.precision, sample=out.sample, budget=w.budget())
            )
        )
        return
    L = source.load(ctx, w)
    results.sample_in_range(L, out.sample)
    done(w.write(results.forward(L, precision=out.precision, sample=out.sample)))
