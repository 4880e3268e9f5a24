"""``smjac verify``: a derivative worked out by hand, compared with smjac's and diagnosed."""

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import inputs, maths
from ..outputs import results
from ..outputs.writer import Writer
from .commands import done
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
    wrt: Annotated[
        maths.Wrt, typer.Option(help=f"With --jacobian: with respect to {maths.wrt_choices()}.")
    ] = "W",
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
