"""``smjac check``: the derivatives against each other, finite differences and identities."""

from typing import Annotated

import typer

from .. import inputs
from ..outputs import results
from .commands import done
from .options import (
    AtolOpt,
    LayerSource,
    Loss,
    Output,
    RtolOpt,
    layer_options,
    loss_options,
    output_options,
)

CHECK_MAX_WEIGHTS = 50_000  # about a minute of finite differences here


@layer_options
@loss_options(
    upstream=False,
    helps={
        "target": "True classes, as grad takes them: also check the batch's loss gradient (with the "
        "options below) against finite differences of its loss.",
        "reduce": "With --target: average the batch's loss, or sum it.",
    },
)
@output_options(results.CHECK, precision=None, fixed={"precision": 3})
def check(
    ctx: typer.Context,
    source: LayerSource,
    *,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    probes: Annotated[
        int | None,
        typer.Option(
            help="Move at most N logits, N weights and N inputs by finite differences, drawn at random "
            "(for a large layer) [default: all].",
            min=1,
            metavar="N",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the draw of --probes.", min=0, metavar="<int>")] = 0,
    max_weights: Annotated[
        int,
        typer.Option(
            help="Refuse to move more weights than this (per sample, times the samples) rather than "
            "run for hours; 0: no limit.",
            min=0,
            metavar="<int>",
        ),
    ] = CHECK_MAX_WEIGHTS,
    loss: Loss,
    out: Output,
) -> None:
    """Check the derivatives against each other, finite differences and identities.

    Each sample of a batch is checked; a failing check names the samples it fails for. Exits 0
    when every check holds, 1 when one fails, 2 when it could not run.

    Finite differences move one weight at a time, so the work grows as (K·n)²: a 100 × 100 layer
    takes a few seconds. Past --max-weights smjac refuses; --probes N checks N weights drawn at
    random instead of all of them. With --target, the batch's loss gradient (with --class-weights,
    --ignore-index, --label-smoothing, --reduce) is checked too. A W with one output is checked as
    the two-class softmax it is read as, and its own gradient against finite differences.

    \b
    Examples:
      smjac check -W samples/blog/W.json -x samples/blog/x.json
      smjac check -W samples/pytorch/W.json -x samples/pytorch/x.json -b samples/pytorch/b.json --layout out-in
      smjac check --layer samples/blog/layer.npz --function log-softmax --temperature 2 --dtype float32
      smjac check --layer samples/blog/layer.npz --probes 4 --seed 1
      smjac check -W samples/batch/W.json -x samples/batch/X.json --target 3,0,2,1 --label-smoothing 0.1
    """
    from ..checking.checks import check_plan

    loss.needs_target()
    inputs.one_stdin(*source.files, *loss.files)
    how = " (checked as the two-class softmax with logits [0, z], and its own gradient against finite differences)"
    w = out.writer(results.CHECK)
    L = source.load(ctx, w, binary=how)
    given = {
        "target": loss.targets(ctx, w.budget()),
        "reduce": loss.reduce,
        **loss.options(ctx, L, w.budget()),
    }
    check_plan(L, probes=probes, max_weights=max_weights, max_memory=w.budget())
    done(w.write(results.check(L, rtol=rtol, atol=atol, probes=probes, seed=seed, **given)))
