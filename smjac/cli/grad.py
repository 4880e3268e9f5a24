"""``smjac grad``: the gradient of a loss with respect to the weights (and the bias)."""

import typer

from .. import inputs
from ..outputs import results
from .commands import done
from .options import (
    LayerSource,
    Loss,
    Output,
    input_cap,
    layer_options,
    loss_options,
    output_options,
)


@layer_options
@loss_options()
@output_options(results.GRAD, also=(results.GRAD_OF_CHECKPOINT,))
def grad(ctx: typer.Context, source: LayerSource, loss: Loss, out: Output) -> None:
    """Gradient of a loss with respect to W, in W's shape and layout.

    --target K uses cross-entropy, −log p[K], and also prints that loss; --upstream FILE takes
    dLoss/dh from whatever follows the layer. Both run in O(N·K·n), without the Jacobian.
    --class-weights, --ignore-index and --label-smoothing make it torch's CrossEntropyLoss with
    those options. A W with one output is binary logistic regression (targets 0 and 1).

    \b
    Examples:
      smjac grad -W samples/blog/W.json -x samples/blog/x.json --target 3
      smjac grad -W samples/batch/W.json -x samples/batch/X.json --target 3,0,2,1 --reduce mean
      smjac grad -W samples/batch/W.json -x samples/batch/X.json --target samples/batch/targets.csv
      smjac grad -W samples/batch/W.json -x samples/batch/X.json --target 3,0,-100,1 --ignore-index -100
      smjac grad -W samples/batch/W.json -x samples/batch/X.json --target 3,0,2,1 --class-weights samples/batch/class-weights.json --label-smoothing 0.1
    """
    loss.one_of()
    loss.needs_target()
    inputs.one_stdin(*source.files, *loss.files)
    w = out.writer(results.GRAD_OF_CHECKPOINT if source.from_checkpoint else results.GRAD)
    X = source.mapped_x(input_cap(ctx))
    L = source.load(ctx, w, x=None if X is None else X[:1])
    how = {"precision": out.precision, **loss.read(ctx, L, w)}
    if X is not None:  # larger than the input cap: summed a chunk of rows at a time
        done(w.write(results.grad_mapped(L, X, budget=w.budget(), **how)))
    else:
        done(w.write(results.grad(L, checkpoint=w.checkpoint, **how)))
