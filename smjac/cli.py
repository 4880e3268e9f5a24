"""The ``smjac`` command line: parse, call the core, hand the result to io or render. No maths here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum, IntEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from typer.core import TyperGroup

from . import __version__, core
from . import io as smio
from .errors import SmjacError


class ExitStatus(IntEnum):
    """Exit codes, as ``diff`` uses them."""

    OK = 0
    DISAGREE = 1  # smjac check found a disagreement
    ERROR = 2  # usage error, or input/output that could not be read or written
    PIPE_CLOSED = 141  # the reader went away (smjac ... | head): 128 + SIGPIPE, as Unix tools end


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Of(str, Enum):
    h = "h"
    z = "z"


class Wrt(str, Enum):
    W = "W"
    z = "z"
    x = "x"
    b = "b"


class Method(str, Enum):
    shortcut = "shortcut"
    chain = "chain"


class _Group(TyperGroup):
    """Turns every smjac error into one line on stderr and exit 2: the one place errors are caught."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except SmjacError as e:
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(ExitStatus.ERROR) from None
        except BrokenPipeError:
            # Nobody is reading: stop quietly. Point stdout at /dev/null so that the flush at exit
            # does not fail a second time with a message.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(ExitStatus.PIPE_CLOSED) from None


app = typer.Typer(
    name="smjac",
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help text is plain: w[i,j] is a weight, not a markup tag
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_INPUT = "Inputs"
_OUTPUT = "Output"
_FILE = {"exists": True, "dir_okay": False, "readable": True, "allow_dash": True, "rich_help_panel": _INPUT}

WeightsOpt = Annotated[
    Path,
    typer.Option(
        "-W", "--weights", help="Weights W, n inputs × K outputs (.json, .csv, .npy; - for stdin).", **_FILE
    ),
]
InputOpt = Annotated[Path, typer.Option("-x", "--input", help="Input vector x, n entries.", **_FILE)]
BiasOpt = Annotated[
    Path | None, typer.Option("-b", "--bias", help="Bias b, K entries: z = Wᵀx + b.", **_FILE)
]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        help="How to print: table (default at a terminal), csv (default in a pipe) or json.",
        show_default=False,
        rich_help_panel=_OUTPUT,
    ),
]
PrecisionOpt = Annotated[
    int, typer.Option(help="Digits after the point in tables.", min=0, max=17, rich_help_panel=_OUTPUT)
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        help="Write the result to FILE (.npy, .csv, .json, .npz), atomically.",
        dir_okay=False,
        rich_help_panel=_OUTPUT,
    ),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace FILE if it exists.", rich_help_panel=_OUTPUT)
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"smjac {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
    max_input_bytes: Annotated[
        int,
        typer.Option(
            envvar="SMJAC_MAX_INPUT_BYTES",
            min=1,
            help="Refuse an input file larger than this many bytes, before reading it.",
        ),
    ] = smio.DEFAULT_MAX_INPUT_BYTES,
) -> None:
    """See and check the derivative of a softmax layer h = softmax(Wᵀx).

    W is n×K (n inputs, K outputs), as in the blog post; Jacobians have one row per output and
    one column per input, with weight w[i,j] (output i, input j) at column i·n + j. Indices count
    from 0. Results go to stdout, messages to stderr. Exit status: 0 ok, 1 check found a
    disagreement, 2 usage error or bad input/output.

    \b
    Example:
      smjac jacobian -W samples/blog/W.json -x samples/blog/x.json
    """
    ctx.obj = {"max_input_bytes": max_input_bytes}


def _max_bytes(ctx: typer.Context) -> int:
    return int(ctx.find_root().obj["max_input_bytes"])


def _load(
    ctx: typer.Context, W: Path, x: Path, b: Path | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    return smio.load_layer(W, x, b, max_bytes=_max_bytes(ctx))


def _note(message: str) -> None:
    typer.echo(message, err=True)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console  # rich only when a person is shown a table

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich would exit 1; leave it to the one handler
            self.quiet = True
            raise BrokenPipeError

    return _Console(stderr=stderr, highlight=False)


def _emit(
    doc: smio.Document,
    *,
    what: str,
    fmt: OutputFormat | None,
    output: Path | None,
    force: bool,
    table: Callable[[int], tuple[Any, str | None]],
) -> None:
    """Write ``doc`` to ``output`` and/or print it: a table for a person, plain data for a pipe."""
    if output is not None:
        smio.save(doc, output, force=force, what=what)
        _note(f"wrote {output}")
        if fmt is None:
            return
    if fmt is None:
        fmt = OutputFormat.table if sys.stdout.isatty() else OutputFormat.csv
    if fmt is OutputFormat.json:
        sys.stdout.write(smio.to_json(doc))
    elif fmt is OutputFormat.csv:
        sys.stdout.write(smio.to_csv(doc))
    else:
        console = _console()
        shown, elided = table(console.width)
        console.print(shown)
        if elided:
            _note(elided)


@app.command()
def forward(
    ctx: typer.Context,
    W: WeightsOpt,
    x: InputOpt,
    b: BiasOpt = None,
    fmt: FormatOpt = None,
    precision: PrecisionOpt = 6,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Run the layer forward: z = Wᵀx (+ b) and h = softmax(z).

    \b
    Example:
      smjac forward -W samples/blog/W.json -x samples/blog/x.json
    """
    from . import render

    res = core.forward(*_load(ctx, W, x, b))
    doc = smio.Document({"z": res.z, "h": res.h}, columns=("z", "h"))
    _emit(
        doc,
        what="the forward pass (z and h)",
        fmt=fmt,
        output=output,
        force=force,
        table=lambda width: (render.forward_table(res.z, res.h, precision=precision), None),
    )


_COLUMNS = {"W": "w", "z": "z", "x": "x", "b": "b"}


@app.command()
def jacobian(
    ctx: typer.Context,
    W: WeightsOpt,
    x: InputOpt,
    b: BiasOpt = None,
    of: Annotated[Of, typer.Option(help="Differentiate h (probabilities) or z (logits).")] = Of.h,
    wrt: Annotated[Wrt, typer.Option(help="With respect to W, z, x or b.")] = Wrt.W,
    method: Annotated[
        Method, typer.Option(help="shortcut: closed form per entry; chain: dh/dz · dz/dW, as the post.")
    ] = Method.shortcut,
    fmt: FormatOpt = None,
    precision: PrecisionOpt = 6,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Print a Jacobian: one row per output, one column per input.

    For --wrt W, the column of weight w[i,j] (output i, input j) is i·n + j, as in the post.

    \b
    Example:
      smjac jacobian -W samples/blog/W.json -x samples/blog/x.json --method chain
    """
    from . import render

    Wa, xa, ba = _load(ctx, W, x, b)
    J = core.jacobian(Wa, xa, ba, of=of.value, wrt=wrt.value, method=method.value)
    n, K = Wa.shape
    doc = smio.Document(
        {"of": of.value, "wrt": wrt.value, "method": method.value, "shape": list(J.shape), "jacobian": J},
        matrix="jacobian",
    )
    cols = render.weight_labels(K, n) if wrt is Wrt.W else render.labels(_COLUMNS[wrt.value], J.shape[1])

    def table(width: int) -> tuple[Any, str | None]:
        shown = render.matrix_table(
            J,
            render.labels(of.value, K),
            cols,
            title=f"d{of.value}/d{wrt.value} ({method.value}), {J.shape[0]}×{J.shape[1]}",
            precision=precision,
            width=width,
        )
        return shown.table, shown.elided

    _emit(doc, what=f"d{of.value}/d{wrt.value}", fmt=fmt, output=output, force=force, table=table)


@app.command()
def grad(
    ctx: typer.Context,
    W: WeightsOpt,
    x: InputOpt,
    b: BiasOpt = None,
    target: Annotated[
        int | None, typer.Option(help="True class, from 0: cross-entropy loss −log h[target].", min=0)
    ] = None,
    upstream: Annotated[
        Path | None, typer.Option(help="dLoss/dh, K entries, from whatever follows the layer.", **_FILE)
    ] = None,
    fmt: FormatOpt = None,
    precision: PrecisionOpt = 6,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Gradient of a loss with respect to W, in W's shape (n×K).

    --target K uses cross-entropy, −log h[K], and also prints that loss; --upstream FILE takes
    dLoss/dh from whatever follows the layer. Both run in O(K·n), without the Jacobian.

    \b
    Example:
      smjac grad -W samples/blog/W.json -x samples/blog/x.json --target 3
    """
    from . import render

    if (target is None) == (upstream is None):
        raise typer.BadParameter("give exactly one of --target K or --upstream FILE")
    Wa, xa, ba = _load(ctx, W, x, b)
    g = None
    if upstream is not None:
        g = smio.load_array(upstream, max_bytes=_max_bytes(ctx))
    res = core.grad(Wa, xa, ba, target=target, upstream=g)
    n, K = Wa.shape
    doc = smio.Document({"grad": res.W, "loss": res.loss}, matrix="grad")
    if g is not None and np.all(g == g.flat[0]):
        _note(
            "note: the gradient is zero because upstream is the same for every output: each column "
            "of dh/dW sums to 0 (h always sums to 1), so summing the columns, as the post ends by "
            "suggesting, changes nothing. Use --target K or a real dLoss/dh."
        )
    if res.loss is not None and (
        fmt is OutputFormat.csv or (fmt is None and output is None and not sys.stdout.isatty())
    ):
        _note(f"loss = {res.loss!r} (--format json puts it on stdout)")

    def table(width: int) -> tuple[Any, str | None]:
        caption = (
            None if res.loss is None else f"loss −log h{render.sub(target or 0)} = {res.loss:.{precision}f}"
        )
        shown = render.matrix_table(
            res.W,
            render.labels("x", n),
            render.labels("z", K),
            title="dLoss/dW in W's shape (rows: inputs, columns: outputs)",
            precision=precision,
            width=width,
            caption=caption,
        )
        return shown.table, shown.elided

    _emit(doc, what="the gradient", fmt=fmt, output=output, force=force, table=table)


@app.command()
def check(
    ctx: typer.Context,
    W: WeightsOpt,
    x: InputOpt,
    b: BiasOpt = None,
    rtol: Annotated[
        float, typer.Option(help="Relative tolerance, times the size of the reference.", min=0)
    ] = 1e-6,
    atol: Annotated[float, typer.Option(help="Absolute tolerance.", min=0)] = 1e-9,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Check the derivatives against each other, finite differences and identities.

    Exits 0 when every check holds, 1 when one fails, 2 when it could not run.

    \b
    Example:
      smjac check -W samples/blog/W.json -x samples/blog/x.json
    """
    from . import render

    report = core.check(*_load(ctx, W, x, b), rtol=rtol, atol=atol)
    records = [
        {"name": c.name, "max_error": c.max_error, "tolerance": c.tolerance, "ok": c.ok}
        for c in report.checks
    ]
    doc = smio.Document({"ok": report.ok, "checks": records}, records=records)
    _emit(
        doc,
        what="a check report",
        fmt=fmt,
        output=output,
        force=force,
        table=lambda width: (render.check_table(report), None),
    )
    if not report.ok:
        raise typer.Exit(ExitStatus.DISAGREE)


@app.command()
def demo(precision: PrecisionOpt = 5) -> None:
    """Walk through the blog post on its own example, step by step.

    \b
    Example:
      smjac demo
    """
    from . import demo as walkthrough

    walkthrough.run(_console(), precision=precision)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
