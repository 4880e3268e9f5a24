"""The commands that run a layer: each reads its options, computes one result, and writes it.

The shared options come as three groups (:mod:`smjac.cli.options`): the layer, the loss and the
output; a command adds only what is its own. The app registers these functions
(:mod:`smjac.cli.app`); their docstrings are their help.
"""

import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import budget, inputs, maths
from ..outputs import results
from ..outputs.writer import Writer
from .options import (
    FILE,
    AtolOpt,
    LayerSource,
    Loss,
    Output,
    RtolOpt,
    input_cap,
    layer_options,
    loss_options,
    output_options,
)


def done(status: int) -> None:
    """End the command with the writer's exit status (1: a check or verify disagreed)."""
    if status:
        raise typer.Exit(status)


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
        results.sample_in_range(L._replace(X=X, batched=True), out.sample)
        done(w.write(results.forward_mapped(L, X, precision=out.precision, sample=out.sample)))
        return
    L = source.load(ctx, w)
    results.sample_in_range(L, out.sample)
    done(w.write(results.forward(L, precision=out.precision, sample=out.sample)))


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
    wrt: Annotated[maths.Wrt, typer.Option(help="With respect to W, z, x or b.")] = "W",
    method: Annotated[
        maths.Method,
        typer.Option(help="shortcut: closed form per entry; chain: dh/dz · dz/dW, as the post."),
    ] = "shortcut",
    legend: Annotated[
        bool, typer.Option("--legend", help="Print which column is which variable instead.")
    ] = False,
    entry: Annotated[
        str | None,
        typer.Option(
            help="Print one entry: T,I,J for --wrt W (∂h_T/∂w[I,J]), T,K otherwise.", show_default=False
        ),
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
        result = results.entry(L, entry, of=of, wrt=wrt, sample=out.sample)
    elif factored:
        result = results.factors(L, of=of, wrt=wrt)
    else:
        result = results.jacobian(L, of=of, wrt=wrt, method=method, sample=out.sample)
    done(w.write(result))


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
            max=budget.MAX_SIZE,
            metavar="N",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the draw of --probes.", min=0, max=2**63 - 1)] = 0,
    max_weights: Annotated[
        int,
        typer.Option(
            help="Refuse to move more weights than this (per sample, times the samples) rather than "
            "run for hours; 0: no limit.",
            min=0,
            max=budget.MAX_SIZE,
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
    given = {"target": loss.targets(ctx), "reduce": loss.reduce, **loss.options(ctx, L)}
    check_plan(L, probes=probes, max_weights=max_weights, max_memory=w.budget())
    done(w.write(results.check(L, rtol=rtol, atol=atol, probes=probes, seed=seed, **given)))


@layer_options
@loss_options(
    helps={
        "target": "With --grad: the true class (cross-entropy); a list or file for a batch.",
        "upstream": "With --grad: dLoss/dh instead of a target (K, or N×K).",
        "reduce": "With --grad: how your batch was combined (mean, as torch does, or sum).",
    }
)
@output_options(results.VERIFY, precision=None)
def verify(
    ctx: typer.Context,
    source: LayerSource,
    *,
    grad: Annotated[Path | None, typer.Option("--grad", help="Your dLoss/dW, in W's shape.", **FILE)] = None,
    grad_b: Annotated[Path | None, typer.Option("--grad-b", help="Your dLoss/db, K entries.", **FILE)] = None,
    jacobian: Annotated[
        Path | None,
        typer.Option(
            "--jacobian", help="Your Jacobian: K × … for one sample, N × K × … for a batch.", **FILE
        ),
    ] = None,
    of: Annotated[maths.Of, typer.Option(help="With --jacobian: of h or of z.")] = "h",
    wrt: Annotated[maths.Wrt, typer.Option(help="With --jacobian: with respect to W, z, x or b.")] = "W",
    loss: Loss,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    out: Output,
) -> None:
    """Check YOUR derivative: say where it is wrong, in the model's terms, and which known mistake it is.

    Give one answer: --grad FILE (with --target or --upstream), --grad-b FILE, or --jacobian FILE
    (with --of and --wrt). Exits 0 when it agrees, 1 when it disagrees, 2 when it could not run.
    The answer agrees when max|a − r| ≤ atol + rtol·max|r|. A .npy answer is read memory-mapped,
    so a Jacobian of gigabytes is compared block by block. The answer may hold NaN or inf (in any
    format): they get their own diagnosis. --class-weights, --ignore-index and --label-smoothing
    give the loss your gradient is of, as grad takes them.

    \b
    Examples:
      smjac verify -W samples/blog/W.json -x samples/blog/x.json --jacobian samples/mistakes/diagonal-only.json
      smjac verify -W samples/blog/W.json -x samples/blog/x.json --grad samples/mistakes/missing-one-hot.json --target 2
    """
    given = [(p, k) for p, k in ((grad, "grad"), (grad_b, "grad_b"), (jacobian, "jacobian")) if p is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --grad FILE, --grad-b FILE or --jacobian FILE")
    ((path, kind),) = given
    if kind != "jacobian" and (loss.target is None) == (loss.upstream is None):  # the loss it is of
        raise typer.BadParameter(
            f"--{kind.replace('_', '-')} needs exactly one of --target K or --upstream FILE"
        )
    loss.needs_target()
    inputs.one_stdin(*source.files, path, *loss.files)
    w = out.writer(results.VERIFY)
    L = source.load(ctx, w)
    answer = read_answer(ctx, w, path, answer_shape(L, kind, of, wrt))
    how = {"kind": kind, "of": of, "wrt": wrt, "rtol": rtol, "atol": atol, **loss.read(ctx, L, w)}
    done(w.write(results.verify(L, answer, max_memory=w.budget(), **how)))


def answer_shape(L: maths.Layer, kind: str, of: maths.Of, wrt: maths.Wrt) -> tuple[int, ...]:
    """The shape verify takes an answer of ``kind`` in (or its transpose: the same count)."""
    if kind == "grad_b":
        return (L.K,)
    if kind == "grad":
        return L.W.shape
    N, K, cols = maths.jacobian_shape(L, of=of, wrt=wrt)
    return (N, K, cols) if L.batched else (K, cols)


ANSWER_BYTES_PER_NUMBER = 32  # a float64 in full as JSON or CSV writes it, its separator, some indent


def read_answer(ctx: typer.Context, w: Writer, path: Path, shape: tuple[int, ...]) -> Any:
    """The answer, read under the input cap and the budget.

    A JSON or CSV file longer than a right answer could be is held to ``shape``: one of more
    numbers is refused as soon as its commas count them, before it is parsed. Any other answer of
    a wrong size is read (it costs no more than a right one): verify says which derivative its
    shape would be, the catalogue's ``shape`` mistake; a .npy is only mapped either way.
    """
    text = str(path) != inputs.STDIN and path.suffix.lower() in (".json", ".csv")
    long = text and path.stat().st_size > ANSWER_BYTES_PER_NUMBER * math.prod(shape)
    with w.working(f"reading {path}"):
        return inputs.load_answer(
            path, expected=shape if long else None, max_bytes=input_cap(ctx), max_memory=w.budget()
        )


@output_options(results.DEMO, precision=5, files=False, fixed={"fmt": "table", "quiet": False})
def demo(out: Output) -> None:
    """Walk through the blog post on its own example, step by step.

    \b
    Example:
      smjac demo
    """
    w = out.writer(results.DEMO)
    done(w.write(results.demo(precision=out.precision, width=w.env.width)))
