"""The ``smjac`` command line: parse, load, call a result builder, hand the result to the writer.

No maths and no output here: numbers come from :mod:`smjac.maths`, results are assembled in
:mod:`smjac.outputs.results`, and every byte written goes through :class:`smjac.outputs.writer.Writer`. Errors
are turned into exit codes in one place, :func:`fail`; the process's streams and signals are made
honest by :func:`smjac.outputs.streams.prepare` in :func:`main`.
"""

import contextlib
import math
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import numpy as np
import typer
from typer.core import TyperGroup

from .. import __version__, budget, inputs, maths
from ..checking.tolerances import CHECK_ATOL, default_rtol
from ..errors import ExitStatus, InputError, SmjacError
from ..outputs import results
from ..outputs import writer as output
from .inspection import inspect_layers
from .samples import register as register_samples

# The library names its parameters (temperature=0.5, layout="out-in"); the command line spells them
# as its flags, here and nowhere else.
_FLAGS = {
    "temperature": "--temperature",
    "layout": "--layout",
    "function": "--function",
    "reduce": "--reduce",
    "wrt": "--wrt",
    "dtype": "--dtype",
    "of": "--of",
    "target": "--target",
    "class_weights": "--class-weights",
    "ignore_index": "--ignore-index",
    "label_smoothing": "--label-smoothing",
}
_PARAMETER = re.compile(rf"\b({'|'.join(_FLAGS)})=(?:\"([^\"]*)\"|'([^']*)'|([^\s,;)]+))")
# parameter names no prose uses, said bare ("class_weights sum to 0"): spelled as flags too
_BARE = re.compile(rf"\b({'|'.join(n for n in _FLAGS if '_' in n)})\b")


def as_flags(message: str) -> str:
    """A library message as the command line says it: ``layout="out-in"`` → ``--layout out-in``.

    >>> as_flags('use T ≥ 0.5 (or function="softmax"); temperature=0.1 overflows')
    'use T ≥ 0.5 (or --function softmax); --temperature 0.1 overflows'
    >>> as_flags("the targets' class_weights sum to 0; every target is ignore_index=-100")
    "the targets' --class-weights sum to 0; every target is --ignore-index -100"
    """
    flagged = _PARAMETER.sub(
        lambda m: f"{_FLAGS[m[1]]} {next(g for g in m.groups()[1:] if g is not None)}", message
    )
    return _BARE.sub(lambda m: _FLAGS[m[1]], flagged)


def fail(e: BaseException) -> int:
    """The one place an error becomes a line on stderr and an exit status."""
    from ..outputs import streams

    if isinstance(e, BrokenPipeError):  # nobody is reading: stop quietly
        output.abandon_stdout()
        return ExitStatus.PIPE_CLOSED
    if isinstance(e, streams.Interrupted):
        return e.status
    if isinstance(e, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    if isinstance(e, SmjacError):
        text = f"Error: {as_flags(str(e))}"
    elif isinstance(e, MemoryError):
        text = "Error: out of memory; give smaller inputs or a lower --max-memory"
    elif isinstance(e, OSError) and e.filename is None:  # from click's own output (--help)
        output.abandon_stdout()
        text = f"Error: cannot write to standard output: {e.strerror or e}"
    else:
        if os.environ.get("SMJAC_DEBUG"):
            import traceback

            traceback.print_exception(e, file=sys.stderr)
        text = f"Error: internal error: {type(e).__name__}: {e}; please report it (SMJAC_DEBUG=1 shows where)"
    output.message(text)
    return ExitStatus.ERROR


# click's usage errors, whether typer bundles its own click (0.28) or uses the package
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class _Group(TyperGroup):
    """Every error raised while a command runs ends in :func:`fail`, also when run in process."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (_ClickException, typer.Exit, typer.Abort):
            raise
        except (Exception, KeyboardInterrupt) as e:
            raise typer.Exit(fail(e)) from None


HELP_WIDTH = 120  # --help fills a wide terminal up to this, for lines a person can still read


def _typer() -> typer.Typer:
    import shutil

    return typer.Typer(
        name="smjac",
        cls=_Group,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,  # help text is plain: w[i,j] is a weight, not a markup tag
        pretty_exceptions_enable=False,
        context_settings={
            "help_option_names": ["-h", "--help"],
            "max_content_width": min(HELP_WIDTH, max(80, shutil.get_terminal_size().columns)),
        },
    )


app = _typer()

_FILE = {"exists": True, "dir_okay": False, "readable": True, "allow_dash": True}

WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "-W",
        "--weights",
        help="Weights W: n×K, or K×n with --layout out-in (.json, .csv, .npy; - for stdin).",
        **_FILE,
    ),
]
InputOpt = Annotated[
    Path | None,
    typer.Option(
        "-x", "--input", help="Input x: a vector (n), or a batch (N×n, one row per sample).", **_FILE
    ),
]
BiasOpt = Annotated[
    Path | None, typer.Option("-b", "--bias", help="Bias b, K entries: z = Wᵀx + b.", **_FILE)
]
LayerOpt = Annotated[
    Path | None,
    typer.Option(
        "--layer",
        help="W, x (and b) in one file: .npz or a JSON object with those keys; or W and b from a model "
        "checkpoint: a save_pretrained folder, .safetensors (or its .index.json), .keras, .h5 (see --key).",
        **{**_FILE, "dir_okay": True},
    ),
]
LayoutOpt = Annotated[
    maths.LayoutName | None,
    typer.Option(
        help="in-out: W is n×K, z = Wᵀx (the post). out-in: W is K×n, z = Wx (PyTorch nn.Linear) "
        "[default: in-out; a .safetensors checkpoint's is out-in].",
        show_default=False,
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Which layer of a --layer checkpoint: classifier takes classifier.weight and classifier.bias "
        "[default: the head, by its name; smjac inspect lists the layers].",
        show_default=False,
    ),
]
FunctionOpt = Annotated[maths.FunctionName, typer.Option(help="The layer's output: softmax(z/T) or its log.")]
ClassWeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--class-weights",
        help="With --target: one weight per class, in class order (K numbers), as torch's "
        "CrossEntropyLoss(weight=); a mean divides by the targets' weights.",
        **_FILE,
    ),
]
IgnoreIndexOpt = Annotated[
    int | None,
    typer.Option(
        "--ignore-index",
        help="With --target: samples of this target count for nothing, in the loss and the mean "
        "(torch's default is -100; none is ignored unless given).",
        show_default=False,
        metavar="I",
    ),
]


def _g(x: float) -> str:
    """A tolerance as the help writes it: ``1e-6``, ``1.2e-5``."""
    return f"{x:.2g}".replace("e-0", "e-")


def _within(lo: float, hi: float, *, above: bool = False) -> Any:
    """A parser callback: a finite number in [lo, hi] ((lo, hi] with ``above``), or a usage error
    naming the range. click's own ranges let NaN through, and infinity would reach a JSON report."""

    def check(value: float | None) -> float | None:
        if value is None or (math.isfinite(value) and (value > lo if above else value >= lo) and value <= hi):
            return value
        if hi >= sys.float_info.max:
            raise typer.BadParameter(f"{value} is not a finite number {'>' if above else '≥'} {lo:g}")
        raise typer.BadParameter(f"{value} is not a finite number in {'(' if above else '['}{lo:g}, {hi:g}]")

    return check


TemperatureOpt = Annotated[
    float,
    typer.Option(
        help="T > 0 (finite): h = softmax(z / T).", callback=_within(0, sys.float_info.max, above=True)
    ),
]
LabelSmoothingOpt = Annotated[
    float,
    typer.Option(
        "--label-smoothing",
        help="With --target: ε in [0, 1]; the target becomes (1 − ε)·one-hot + ε/K, as torch's "
        "CrossEntropyLoss(label_smoothing=).",
        callback=_within(0, 1),
        metavar="EPS",
    ),
]
RtolOpt = Annotated[
    float | None,
    typer.Option(
        help="Relative tolerance in [0, 1], times the size of the reference "
        f"[default: by dtype, {_g(default_rtol(np.float64))} for float64, {_g(default_rtol(np.float32))} for float32].",
        callback=_within(0, 1),
        show_default=False,
    ),
]
AtolOpt = Annotated[
    float | None,
    typer.Option(
        help=f"Absolute tolerance in [0, 1e300] [default: {_g(CHECK_ATOL)}; verify: by the answer's dtype].",
        callback=_within(0, 1e300),
        show_default=False,
    ),
]
DTypeOpt = Annotated[
    maths.DTypeName, typer.Option("--dtype", help="Precision of the arithmetic and of written files.")
]


def _formats(shape: output.Shape, *extra: str) -> Any:
    """The --format choices of a command: those its result can be printed as."""
    return Literal[tuple(f.value for f in output.usable(shape)) + extra]


def _format_opt(shape: output.Shape, *extra: str, more: str = "") -> Any:
    return Annotated[
        _formats(shape, *extra) | None,
        typer.Option(
            "--format",
            "-f",
            help=f"How to print it [default: {'table at a terminal, ' if shape.view else ''}"
            f"{'csv' if shape.csv else 'json'} in a pipe]{more}.",
            show_default=False,
        ),
    ]


PrecisionOpt = Annotated[
    int, typer.Option(help="Digits after the point in tables and documents.", min=0, max=17)
]
SampleOpt = Annotated[int, typer.Option(help="Which sample of a batch a table shows, from 0.", min=0)]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        help="Write the result to FILE, atomically, in the format its suffix names: "
        + ", ".join(f.suffix for f in output.Format if f.suffix)
        + ".",
        dir_okay=False,
    ),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace FILE if it exists (keeping its permissions).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes on stderr.")]


def _size(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return budget.parse_size(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


MaxMemoryOpt = Annotated[
    int | None,
    typer.Option(
        envvar="SMJAC_MAX_MEMORY",
        parser=_size,
        metavar="SIZE",
        help="Refuse a result larger than this in memory: 4G, 512M or bytes (up to 2^62) "
        "[default: half the memory available].",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        output.message(f"smjac {__version__}", sys.stdout)
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
    max_input_bytes: Annotated[
        int | None,
        typer.Option(
            envvar="SMJAC_MAX_INPUT_BYTES",
            parser=_size,
            metavar="SIZE",
            help="Refuse an input file larger than this, before reading it: 4G, 512M or bytes; "
            "before or after the command [default: 1G].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """See and check the derivative of a softmax layer h = softmax(Wᵀx).

    W is n×K (n inputs, K outputs), as in the blog post, or K×n with --layout out-in; Jacobians
    have one row per output and one column per input, with weight w[i,j] (output i, input j) at
    column i·n + j in both layouts. Indices count from 0. Results go to stdout, messages to
    stderr. Exit status: 0 ok, 1 check or verify found a disagreement, 2 usage error or bad
    input/output, 141 the reader of stdout left, 128 + n stopped by signal n.

    \b
    Example:
      smjac jacobian -W samples/blog/W.json -x samples/blog/x.json
    """
    ctx.obj = {
        "max_input_bytes": budget.DEFAULT_MAX_INPUT_BYTES if max_input_bytes is None else max_input_bytes
    }


def _max_bytes(ctx: typer.Context) -> int:
    return int(ctx.find_root().obj["max_input_bytes"])


def _is_checkpoint(layer: Path | None) -> bool:
    if layer is None or str(layer) == "-":
        return False
    from ..formats import checkpoints  # only when a --layer is given: start-up time counts

    return checkpoints.kind(layer) is not None


def _load(
    ctx: typer.Context, w: output.Writer, W, x, b, layer, layout, function, temperature, dtype, key=None,
    *, binary: str | None = "",
) -> maths.Layer:  # fmt: skip
    """The layer the options name, loaded and checked once; a checkpoint's notes go to stderr,
    and the checkpoint itself is kept on ``w`` (a gradient can be written back in its form).

    A layer of one output is read as binary logistic regression, said once on stderr (with
    ``binary`` after it: how this command treats it; None: not said, the command refuses it)."""
    if _is_checkpoint(layer):
        from ..formats import checkpoints

        layer = checkpoints.read(layer, key=key, max_bytes=_max_bytes(ctx), memory_budget=w.budget())
        for text in layer.notes_for(layout):
            w.note(text)
        w.checkpoint, key = layer, None
    L = inputs.load_layer(
        W, x, b, layer=layer, key=key, layout=layout, function=function, temperature=temperature, dtype=dtype,
        max_bytes=_max_bytes(ctx), max_memory=w.budget(),
    )  # fmt: skip
    if L.binary and binary is not None:
        w.note(f"note: {maths.BINARY_READING}{binary}")
    return L


def _needs_target(target: Any, class_weights: Any, ignore_index: Any, label_smoothing: float) -> None:
    """The cross-entropy's options shape the loss of a target: a usage error without --target."""
    given = [
        f for f, v in (("--class-weights", class_weights), ("--ignore-index", ignore_index)) if v is not None
    ]
    given += ["--label-smoothing"] * bool(label_smoothing)
    if given and target is None:
        raise typer.BadParameter(
            f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of the cross-entropy of "
            "--target: give --target K (an --upstream dLoss/dh already holds whatever its loss weighs)"
        )


def _loss_options(ctx: typer.Context, L: maths.Layer, class_weights, ignore_index, label_smoothing) -> dict:
    """The cross-entropy's options as the maths takes them, those given only (the weights read
    and checked against L's classes)."""
    options: dict[str, Any] = {}
    if class_weights is not None:
        options["class_weights"] = inputs.load_class_weights(class_weights, L, max_bytes=_max_bytes(ctx))
    if ignore_index is not None:
        options["ignore_index"] = ignore_index
    if label_smoothing:
        options["label_smoothing"] = label_smoothing
    return options


def _mapped(ctx: typer.Context, x: Path | None) -> Any:
    """An x in a .npy file larger than the input cap, memory-mapped read-only (None otherwise):
    forward and grad walk it a chunk of rows at a time."""
    if x is None or str(x) == "-" or x.suffix.lower() != ".npy" or x.stat().st_size <= _max_bytes(ctx):
        return None
    return inputs.map_npy(x)


def _writer(
    shape: output.Shape, fmt: str | None, out: Path | None, force: bool, **more: Any
) -> output.Writer:
    f = None if fmt is None else output.Format(fmt)
    return output.Writer(shape, output.Options(fmt=f, output=out, force=force, **more))


def _done(status: int) -> None:
    if status:
        raise typer.Exit(status)


@app.command()
def forward(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    key: KeyOpt = None,
    layout: LayoutOpt = None,
    function: FunctionOpt = "softmax",
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = "float64",
    fmt: _format_opt(results.FORWARD) = None,  # type: ignore[valid-type]
    precision: PrecisionOpt = 6,
    sample: SampleOpt = 0,
    output: OutputOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
) -> None:
    """Run the layer forward: z = Wᵀx (+ b) and h = softmax(z / T).

    A batch x (N×n) gives z and h as N×K; its CSV has one row per sample and output.

    \b
    Examples:
      smjac forward -W samples/blog/W.json -x samples/blog/x.json
      smjac forward -W samples/batch/W.json -x samples/batch/X.json --function log-softmax
      smjac forward --layer samples/blog/layer.npz --temperature 2 --format json
    """
    w = _writer(
        results.FORWARD,
        fmt,
        output,
        force,
        precision=precision,
        sample=sample,
        quiet=quiet,
        max_memory=max_memory,
    )
    X = _mapped(ctx, x)
    if X is not None:  # larger than the input cap: walked a chunk of rows at a time
        L = _load(ctx, w, W, X[:1], b, layer, layout, function, temperature, dtype, key)
        results.sample_in_range(L._replace(X=X, batched=True), sample)
        _done(w.write(results.forward_mapped(L, X, precision=precision, sample=sample)))
        return
    L = _load(ctx, w, W, x, b, layer, layout, function, temperature, dtype, key)
    results.sample_in_range(L, sample)
    _done(w.write(results.forward(L, precision=precision, sample=sample)))


@app.command()
def jacobian(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    key: KeyOpt = None,
    layout: LayoutOpt = None,
    function: FunctionOpt = "softmax",
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = "float64",
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
    fmt: _format_opt(  # type: ignore[valid-type]
        results.JACOBIAN, "factored", more="; factored: dh/dz and x, K² + n numbers (--wrt W)"
    ) = None,
    precision: PrecisionOpt = 6,
    sample: SampleOpt = 0,
    output: OutputOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
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
    if fmt == "factored" and (legend or entry is not None):
        raise typer.BadParameter("--format factored gives dh/dW as its factors: not with --legend or --entry")
    shape = results.LEGEND if legend else results.ENTRY if entry is not None else results.JACOBIAN
    if fmt == "factored":
        shape, fmt = results.FACTORS, None
    w = _writer(
        shape, fmt, output, force, precision=precision, sample=sample, quiet=quiet, max_memory=max_memory
    )
    L = _load(
        ctx, w, W, x, b, layer, layout, function, temperature, dtype, key, binary=None if of == "h" else ""
    )
    results.sample_in_range(L, sample)
    if legend:
        result = results.legend(L, wrt=wrt)
    elif entry is not None:
        result = results.entry(L, entry, of=of, wrt=wrt, sample=sample)
    elif shape is results.FACTORS:
        result = results.factors(L, of=of, wrt=wrt)
    else:
        result = results.jacobian(L, of=of, wrt=wrt, method=method, sample=sample)
    _done(w.write(result))


def _targets(ctx: typer.Context, text: str) -> Any:
    """--target: one class, a comma list with one per sample, or a file of them (``-``: stdin).

    Integers are tried first; only a name that is ``-`` or an existing file is read as a file,
    and the message says both were tried.
    """
    parts = [p.strip() for p in text.split(",")]
    with contextlib.suppress(ValueError):
        return [int(p) for p in parts]
    if text == "-" or (len(parts) == 1 and Path(text).is_file()):
        return inputs.load_array(text, max_bytes=_max_bytes(ctx))
    raise InputError(
        f"--target {text!r}: not a class index (3), a comma list of them (3,0,2), nor a file that exists"
    )


@app.command()
def grad(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    key: KeyOpt = None,
    layout: LayoutOpt = None,
    function: FunctionOpt = "softmax",
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = "float64",
    target: Annotated[
        str | None,
        typer.Option(
            help="True class from 0 (cross-entropy); for a batch a comma list or a file, one per sample."
        ),
    ] = None,
    upstream: Annotated[
        Path | None,
        typer.Option(help="dLoss/dh from whatever follows the layer: K entries, or N×K.", **_FILE),
    ] = None,
    reduce: Annotated[
        maths.Reduction,
        typer.Option(
            help="Average a batch's gradients and losses, as torch, Keras and scikit-learn do, or sum them."
        ),
    ] = maths.DEFAULT_REDUCTION,
    class_weights: ClassWeightsOpt = None,
    ignore_index: IgnoreIndexOpt = None,
    label_smoothing: LabelSmoothingOpt = 0.0,
    fmt: _format_opt(results.GRAD) = None,  # type: ignore[valid-type]
    precision: PrecisionOpt = 6,
    output: OutputOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
) -> None:
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
    if (target is None) == (upstream is None):
        raise typer.BadParameter("give exactly one of --target K or --upstream FILE")
    _needs_target(target, class_weights, ignore_index, label_smoothing)
    inputs.one_stdin(W, x, b, layer, target, upstream, class_weights)
    shape = results.GRAD_OF_CHECKPOINT if _is_checkpoint(layer) else results.GRAD
    w = _writer(shape, fmt, output, force, precision=precision, quiet=quiet, max_memory=max_memory)
    X = _mapped(ctx, x)
    L = _load(ctx, w, W, x if X is None else X[:1], b, layer, layout, function, temperature, dtype, key)
    t = None if target is None else _targets(ctx, target)
    g = None if upstream is None else inputs.load_array(upstream, max_bytes=_max_bytes(ctx))
    loss = _loss_options(ctx, L, class_weights, ignore_index, label_smoothing)
    if X is not None:  # larger than the input cap: summed a chunk of rows at a time
        _done(
            w.write(
                results.grad_mapped(
                    L, X, target=t, upstream=g, reduce=reduce, precision=precision, budget=w.budget(), **loss
                )
            )
        )
        return
    _done(
        w.write(
            results.grad(
                L, target=t, upstream=g, reduce=reduce, precision=precision, checkpoint=w.checkpoint, **loss
            )
        )
    )


CHECK_MAX_WEIGHTS = 50_000  # about a minute of finite differences here


@app.command()
def check(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    key: KeyOpt = None,
    layout: LayoutOpt = None,
    function: FunctionOpt = "softmax",
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = "float64",
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
    target: Annotated[
        str | None,
        typer.Option(
            help="True classes, as grad takes them: also check the batch's loss gradient (with the options "
            "below) against finite differences of its loss.",
            show_default=False,
        ),
    ] = None,
    reduce: Annotated[
        maths.Reduction, typer.Option(help="With --target: average the batch's loss, or sum it.")
    ] = maths.DEFAULT_REDUCTION,
    class_weights: ClassWeightsOpt = None,
    ignore_index: IgnoreIndexOpt = None,
    label_smoothing: LabelSmoothingOpt = 0.0,
    fmt: _format_opt(results.CHECK) = None,  # type: ignore[valid-type]
    output: OutputOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
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

    _needs_target(target, class_weights, ignore_index, label_smoothing)
    inputs.one_stdin(W, x, b, layer, target, class_weights)
    how = " (checked as the two-class softmax with logits [0, z], and its own gradient against finite differences)"
    w = _writer(results.CHECK, fmt, output, force, precision=3, quiet=quiet, max_memory=max_memory)
    L = _load(ctx, w, W, x, b, layer, layout, function, temperature, dtype, key, binary=how)
    loss = {"target": None if target is None else _targets(ctx, target), "reduce": reduce}
    loss |= _loss_options(ctx, L, class_weights, ignore_index, label_smoothing)
    check_plan(L, probes=probes, max_weights=max_weights, max_memory=w.budget())
    _done(w.write(results.check(L, rtol=rtol, atol=atol, probes=probes, seed=seed, **loss)))


@app.command()
def verify(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    key: KeyOpt = None,
    layout: LayoutOpt = None,
    function: FunctionOpt = "softmax",
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = "float64",
    grad: Annotated[Path | None, typer.Option("--grad", help="Your dLoss/dW, in W's shape.", **_FILE)] = None,
    grad_b: Annotated[
        Path | None, typer.Option("--grad-b", help="Your dLoss/db, K entries.", **_FILE)
    ] = None,
    jacobian: Annotated[
        Path | None,
        typer.Option(
            "--jacobian", help="Your Jacobian: K × … for one sample, N × K × … for a batch.", **_FILE
        ),
    ] = None,
    of: Annotated[maths.Of, typer.Option(help="With --jacobian: of h or of z.")] = "h",
    wrt: Annotated[maths.Wrt, typer.Option(help="With --jacobian: with respect to W, z, x or b.")] = "W",
    target: Annotated[
        str | None,
        typer.Option(help="With --grad: the true class (cross-entropy); a list or file for a batch."),
    ] = None,
    upstream: Annotated[
        Path | None, typer.Option(help="With --grad: dLoss/dh instead of a target (K, or N×K).", **_FILE)
    ] = None,
    reduce: Annotated[
        maths.Reduction,
        typer.Option(help="With --grad: how your batch was combined (mean, as torch does, or sum)."),
    ] = maths.DEFAULT_REDUCTION,
    class_weights: ClassWeightsOpt = None,
    ignore_index: IgnoreIndexOpt = None,
    label_smoothing: LabelSmoothingOpt = 0.0,
    rtol: RtolOpt = None,
    atol: AtolOpt = None,
    fmt: _format_opt(results.VERIFY) = None,  # type: ignore[valid-type]
    output: OutputOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
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
    if kind == "grad" and (target is None) == (upstream is None):
        raise typer.BadParameter("--grad needs exactly one of --target K or --upstream FILE")
    _needs_target(target, class_weights, ignore_index, label_smoothing)
    w = _writer(results.VERIFY, fmt, output, force, quiet=quiet, max_memory=max_memory)
    L = _load(ctx, w, W, x, b, layer, layout, function, temperature, dtype, key)
    answer = inputs.load_answer(path, max_bytes=_max_bytes(ctx))
    t = None if target is None else _targets(ctx, target)
    g = None if upstream is None else inputs.load_array(upstream, max_bytes=_max_bytes(ctx))
    how = {
        "kind": kind,
        "of": of,
        "wrt": wrt,
        "target": t,
        "upstream": g,
        "reduce": reduce,
        "rtol": rtol,
        "atol": atol,
        **_loss_options(ctx, L, class_weights, ignore_index, label_smoothing),
    }
    _done(w.write(results.verify(L, answer, **how)))


app.command("inspect")(inspect_layers)


@app.command()
def demo(precision: PrecisionOpt = 5) -> None:
    """Walk through the blog post on its own example, step by step.

    \b
    Example:
      smjac demo
    """
    w = output.Writer(results.DEMO, output.Options(fmt=output.Format.table, precision=precision))
    _done(w.write(results.demo(precision=precision, width=w.env.width)))


register_samples(app)  # after every other command: their help says where samples/ comes from


def main() -> NoReturn:
    """Console entry point: honest streams and signals, the app, and one exit status.

    Typer turns every command's signature into options on each run. When the first argument
    names a command, only that one is turned (a few milliseconds of every run in a shell loop);
    anything else, such as ``smjac --help``, goes to the whole app.
    """
    from ..outputs import streams

    streams.prepare()
    sys.argv[1:] = _global_first(sys.argv[1:])
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    chosen = [
        c
        for c in app.registered_commands
        if c.callback and (c.name or c.callback.__name__.replace("_", "-")) == name  # typer's naming
    ]
    run = app
    if chosen:
        run = _typer()
        run.registered_callback = app.registered_callback
        run.registered_commands = chosen
    try:
        try:
            status = run(standalone_mode=False)
        except _ClickException as e:
            e.show()  # type: ignore[attr-defined]
            status = e.exit_code  # type: ignore[attr-defined]
        except typer.Abort:
            status = ExitStatus.INTERRUPTED
        status = status if isinstance(status, int) else 0
        sys.stdout.flush()
    except BaseException as e:
        status = fail(e)
    _exit(status)


_GLOBAL = "--max-input-bytes"


def _global_first(args: list[str]) -> list[str]:
    """The app's own options moved before the command, so that they work after it too.

    >>> _global_first(["grad", "-W", "W.npy", "--max-input-bytes", "4G"])
    ['--max-input-bytes', '4G', 'grad', '-W', 'W.npy']
    >>> _global_first(["forward", "--max-input-bytes=1M", "--", "--max-input-bytes"])
    ['--max-input-bytes=1M', 'forward', '--', '--max-input-bytes']
    """
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i:]
            break
        if i > 0 and a == _GLOBAL and i + 1 < len(args):
            moved += args[i : i + 2]
            i += 2
            continue
        if i > 0 and a.startswith(_GLOBAL + "="):
            moved.append(a)
        else:
            rest.append(a)
        i += 1
    return moved + rest


def _exit(status: int) -> NoReturn:
    """End the process now that the output is flushed, without the interpreter's teardown.

    Unloading numpy, typer and their modules takes 10-15 ms after the work is done; a shell loop
    pays it on every call. Everything smjac writes is complete by now (files are synced and
    renamed before a command returns, stdout was flushed and checked), so only stderr needs
    flushing. Under a tracer or profiler (coverage, say), whose atexit hooks must run, it exits
    the ordinary way.
    """
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    if sys.gettrace() or sys.getprofile() or "coverage" in sys.modules:
        sys.exit(status)
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
