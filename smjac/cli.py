"""The ``smjac`` command line: parse, call the core, hand the result to io or render. No maths here."""

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from enum import Enum, IntEnum
from pathlib import Path
from typing import Annotated, Any, NamedTuple, NoReturn

import numpy as np
import typer
from typer.core import TyperGroup

from . import __version__, core
from . import files as smio
from .errors import InputError, OutputError, SmjacError


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
    markdown = "markdown"
    latex = "latex"
    heatmap = "heatmap"
    factored = "factored"


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


class Layout(str, Enum):
    in_out = "in-out"
    out_in = "out-in"


class Function(str, Enum):
    softmax = "softmax"
    log_softmax = "log-softmax"


class Reduce(str, Enum):
    sum = "sum"
    mean = "mean"


class DType(str, Enum):
    float64 = "float64"
    float32 = "float32"


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


CHECK_MAX_WEIGHTS = 50_000  # about a minute of finite differences here


def _typer() -> typer.Typer:
    return typer.Typer(
        name="smjac",
        cls=_Group,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,  # help text is plain: w[i,j] is a weight, not a markup tag
        pretty_exceptions_show_locals=False,
        context_settings={"help_option_names": ["-h", "--help"]},
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
        "--layer", help="W, x (and b) in one file: .npz, or a JSON object with those keys.", **_FILE
    ),
]
LayoutOpt = Annotated[
    Layout,
    typer.Option(help="in-out: W is n×K, z = Wᵀx (the post). out-in: W is K×n, z = Wx (PyTorch nn.Linear)."),
]
FunctionOpt = Annotated[Function, typer.Option(help="The layer's output: softmax(z/T) or its log.")]
TemperatureOpt = Annotated[float, typer.Option(help="T > 0: h = softmax(z / T).")]
DTypeOpt = Annotated[DType, typer.Option("--dtype", help="Precision of the arithmetic and of written files.")]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        help="table (default at a terminal), csv (default in a pipe), json, markdown, latex, heatmap, "
        "or factored (jacobian --wrt W only: dh/dz and x, K² + n numbers).",
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
        help="Write the result to FILE, atomically: data as .npy, .csv, .json or .npz; the table as .md or .tex.",
        dir_okay=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")]


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

    W is n×K (n inputs, K outputs), as in the blog post, or K×n with --layout out-in; Jacobians
    have one row per output and one column per input, with weight w[i,j] (output i, input j) at
    column i·n + j in both layouts. Indices count from 0. Results go to stdout, messages to
    stderr. Exit status: 0 ok, 1 check found a disagreement, 2 usage error or bad input/output.

    \b
    Example:
      smjac jacobian -W samples/blog/W.json -x samples/blog/x.json
    """
    ctx.obj = {"max_input_bytes": max_input_bytes}


class Opts(NamedTuple):
    """The options every command shares: where the layer comes from and what kind it is."""

    W: Path | None
    x: Path | None
    b: Path | None
    layer: Path | None
    layout: str
    function: str
    temperature: float
    dtype: str

    def kind(self) -> dict[str, Any]:
        return {"layout": self.layout, "function": self.function, "temperature": self.temperature}


def _opts(W, x, b, layer, layout, function, temperature, dtype) -> Opts:
    return Opts(W, x, b, layer, layout.value, function.value, temperature, dtype.value)


def _max_bytes(ctx: typer.Context) -> int:
    return int(ctx.find_root().obj["max_input_bytes"])


def _load(ctx: typer.Context, o: Opts) -> core.Layer:
    """The layer the options name, loaded and checked once."""
    return smio.load_layer(o.W, o.x, o.b, layer=o.layer, dtype=o.dtype, max_bytes=_max_bytes(ctx), **o.kind())


def _note(message: str) -> None:
    typer.echo(message, err=True)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console  # rich only when a person is shown a table

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich would exit 1; leave it to the one handler
            self.quiet = True
            raise BrokenPipeError

    return _Console(stderr=stderr, highlight=False)


class _Progress:
    """A progress bar on stderr for work that turns out to take more than about a second.

    Nothing is drawn when stderr is not a terminal, or with --quiet; nothing ever goes to stdout.
    """

    DELAY = 1.0

    def __init__(self, total: int, label: str, quiet: bool = False):
        self.total, self.label, self.done = total, label, 0
        self.enabled = not quiet and sys.stderr.isatty()
        self.started = time.monotonic()
        self.bar: Any = None

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        if not self.enabled:
            return
        if self.bar is None and time.monotonic() - self.started > self.DELAY:
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            self.bar = Progress(
                self.label, BarColumn(), DownloadColumn(binary_units=True), TimeRemainingColumn(),
                console=_console(stderr=True), transient=True,
            )  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class View(NamedTuple):
    """What a person sees of a result: one matrix (one sample of a batch), labelled."""

    M: np.ndarray
    rows: list[str]
    cols: list[str]
    title: str
    caption: str | None = None
    table: Callable[[], Any] | None = None  # a table of its own, instead of the matrix's
    notes: Sequence[str] = ()
    documents: Sequence[str] = ("markdown", "latex")  # the text formats that can hold it

    def refuse(self, kind: str, what: str, suffix: str | None = None) -> None:
        """Refuse to show this as ``kind`` (a --format, or a document written to ``suffix``).

        A matrix can become any of them. A result with a table of its own (a legend, a check
        report) has no heatmap, and only the documents it lists.
        """
        if kind in self.documents or (kind == "heatmap" and self.table is None):
            return
        if suffix is not None:
            others = ".json, .csv or .md" if "markdown" in self.documents else ".json or .csv"
            raise OutputError(f"{what} cannot be written as {suffix}; use {others}")
        usable = ["table", "json", "csv", *self.documents]
        raise typer.BadParameter(
            f"{what} is a table, not a matrix: use {', '.join(usable[:-1])} or {usable[-1]}, not {kind}"
        )


# A file named FILE.md or FILE.tex holds what --format markdown or latex prints.
DOCUMENT_SUFFIXES = {".md": "markdown", ".tex": "latex"}


def _document(v: View, kind: str, precision: int) -> str:
    from . import render

    if kind == "markdown":
        return render.markdown(v.M, v.rows, v.cols, precision)
    return render.latex(v.M, precision)


def _check_output(output: Path | None, force: bool) -> None:
    """Refuse a file smjac cannot write, or would clobber, before any work is done."""
    if output is None:
        return
    suffix = output.suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES and suffix.lstrip(".") not in {f.value for f in smio.Format}:
        what = f"suffix '{suffix}'" if suffix else "no suffix"
        raise OutputError(f"{output}: {what}; smjac writes .json, .csv, .npy, .npz, .md and .tex")
    smio.check_writable(output, force=force)


def _pick(batch: np.ndarray, batched: bool, sample: int, view_notes: list[str]) -> np.ndarray:
    """One sample of a per-sample result, for the formats that show one matrix."""
    if not batched:
        return batch
    if sample >= len(batch):
        raise InputError(
            f"--sample {sample} is out of range: the batch has {len(batch)} samples (0 to {len(batch) - 1})"
        )
    view_notes.append(
        f"showing sample {sample} of {len(batch)}; --sample I shows another, --format json all of them"
    )
    return batch[sample]


def _emit(doc: smio.Document, *, what: str, fmt: OutputFormat | None, output: Path | None, force: bool,
          precision: int, view: Callable[[], View]) -> None:  # fmt: skip
    """Write ``doc`` to ``output`` and/or print it: a picture for a person, plain data for a pipe.

    Whether the result can take the format asked for, and the file's kind, is settled first, so
    a refusal writes nothing.
    """
    if fmt is OutputFormat.factored:
        raise typer.BadParameter("--format factored is for smjac jacobian --wrt W")
    document = DOCUMENT_SUFFIXES.get(output.suffix.lower()) if output is not None else None
    v = (
        view()
        if document or fmt in (OutputFormat.markdown, OutputFormat.latex, OutputFormat.heatmap)
        else None
    )
    if v is not None:
        if fmt is not None:
            v.refuse(fmt.value, what)
        if document and output is not None:
            v.refuse(document, what, suffix=output.suffix)
    if output is not None:
        if document and v is not None:
            smio.write_atomic(output, _document(v, document, precision).encode(), force=force)
            if fmt is None:  # otherwise they follow what is printed
                for text in v.notes:
                    _note(text)
        else:
            smio.save(doc, output, force=force, what=what)
        _note(f"wrote {output}")
        if fmt is None:
            return
    if fmt is None:
        fmt = OutputFormat.table if sys.stdout.isatty() else OutputFormat.csv
    if fmt is OutputFormat.json:
        sys.stdout.write(smio.to_json(doc))
        return
    if fmt is OutputFormat.csv:
        sys.stdout.write(smio.to_csv(doc))
        return
    from . import render

    v = v or view()
    notes: list[str | None] = list(v.notes)
    if fmt in (OutputFormat.markdown, OutputFormat.latex):
        sys.stdout.write(_document(v, fmt.value, precision))
    elif fmt is OutputFormat.heatmap:
        console = _console()
        picture, note = render.heatmap(
            v.M,
            title=v.title,
            width=console.width - 1,
            height=max(4, console.height - 6),
            color=console.color_system is not None,
        )
        console.print(picture)
        notes.append(note)
    else:
        console = _console()
        if v.table is not None:
            console.print(v.table())
        else:
            shown = render.matrix_table(
                v.M,
                v.rows,
                v.cols,
                title=v.title,
                precision=precision,
                width=console.width,
                caption=v.caption,
            )
            console.print(shown.table)
            notes.append(shown.elided)
    for line in notes:
        if line:
            _note(line)


def _flat_columns(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A batch's per-sample vectors (N×K each) as long CSV columns: sample, i, then each value."""
    N, K = next(iter(values.values())).shape
    index = {"sample": np.repeat(np.arange(N), K), "i": np.tile(np.arange(K), N)}
    return {**index, **{name: v.reshape(-1) for name, v in values.items()}}


def _size(text: str) -> int:
    try:
        return smio.parse_size(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--max-memory") from None


def _print_entry(L: core.Layer, text: str, of: str, wrt: str, sample: int, fmt: OutputFormat | None) -> None:
    """--entry: one number of the Jacobian, without building the rest of it."""
    from . import render

    try:
        index = [int(p) for p in text.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: give indices from 0, such as 1,1,2", param_hint="--entry"
        ) from None
    want = 3 if wrt == "W" else 2
    if len(index) != want:
        form = "T,I,J (output T, weight w[I,J])" if wrt == "W" else f"T,K (output T, {wrt}[K])"
        raise typer.BadParameter(f"{text!r}: --wrt {wrt} takes {form}", param_hint="--entry")
    if wrt == "W":
        t, i, j = index
        value = core.layer_factors(L, of=of).entry(t, i, j, sample=sample)
        label = f"∂{of}{render.sub(index[0])}/∂w[{index[1]},{index[2]}]"
    else:
        J = core.layer_jacobian(L, of=of, wrt=wrt)[sample]
        t, k = index
        for name, v, size in (("T", t, J.shape[0]), ("K", k, J.shape[1])):
            if not 0 <= v < size:
                raise InputError(f"{name} = {v} is out of range: 0 ≤ {name} ≤ {size - 1}")
        value = float(J[t, k])
        label = f"∂{of}{render.sub(t)}/∂{wrt}{render.sub(k)}"
    if fmt is OutputFormat.json:
        sys.stdout.write(smio.to_json(smio.Document({"entry": index, "value": value})))
    elif fmt is OutputFormat.table or (fmt is None and sys.stdout.isatty()):
        typer.echo(f"{label} = {value!r}")
    else:
        typer.echo(repr(value))


@app.command()
def forward(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    layout: LayoutOpt = Layout.in_out,
    function: FunctionOpt = Function.softmax,
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = DType.float64,
    fmt: FormatOpt = None,
    precision: PrecisionOpt = 6,
    sample: SampleOpt = 0,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Run the layer forward: z = Wᵀx (+ b) and h = softmax(z / T).

    A batch x (N×n) gives z and h as N×K; its CSV has one row per sample and output.

    \b
    Examples:
      smjac forward -W samples/blog/W.json -x samples/blog/x.json
      smjac forward -W samples/batch/W.json -x samples/batch/X.json --function log-softmax
      smjac forward --layer samples/blog/layer.npz --temperature 2 --format json
    """
    from . import render

    o = _opts(W, x, b, layer, layout, function, temperature, dtype)
    _check_output(output, force)
    L = _load(ctx, o)
    res = core.layer_forward(L)
    batched = res.h.ndim == 2
    values = {"z": res.z, "h": res.h}
    doc = smio.Document(values, columns=_flat_columns(values) if batched else values)
    name = "h" if o.function == "softmax" else "log h"

    def view() -> View:
        notes: list[str] = []
        z, h = _pick(res.z, batched, sample, notes), _pick(res.h, batched, sample, [])
        zt = "z" if o.temperature == 1 else f"z/{o.temperature:g}"
        title = f"z = {'Wᵀx' if o.layout == 'in-out' else 'Wx'}{'' if L.b is None else ' + b'}, {name} = {o.function}({zt})"
        return View(
            np.stack([z, h], axis=1),
            [str(i) for i in range(z.shape[0])],
            ["z", name],
            title,
            table=lambda: render.forward_table(z, h, precision=precision, h_name=name, title=title),
            notes=notes,
        )

    _emit(
        doc,
        what="the forward pass (z and h)",
        fmt=fmt,
        output=output,
        force=force,
        precision=precision,
        view=view,
    )


@app.command()
def jacobian(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    layout: LayoutOpt = Layout.in_out,
    function: FunctionOpt = Function.softmax,
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = DType.float64,
    of: Annotated[Of, typer.Option(help="Differentiate h (the outputs) or z (the logits).")] = Of.h,
    wrt: Annotated[Wrt, typer.Option(help="With respect to W, z, x or b.")] = Wrt.W,
    method: Annotated[
        Method,
        typer.Option(help="shortcut: closed form per entry; chain: dh/dz · dz/dW, as the post."),
    ] = Method.shortcut,
    legend: Annotated[
        bool, typer.Option("--legend", help="Print which column is which variable instead.")
    ] = False,
    entry: Annotated[
        str | None,
        typer.Option(
            help="Print one entry: T,I,J for --wrt W (∂h_T/∂w[I,J]), T,K otherwise.", show_default=False
        ),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            envvar="SMJAC_MAX_MEMORY",
            help="Refuse to build a Jacobian larger than this in memory: 4G, 512M or bytes "
            "[default: half the memory available].",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar and no notes on stderr.")
    ] = False,
    fmt: FormatOpt = None,
    precision: PrecisionOpt = 6,
    sample: SampleOpt = 0,
    output: OutputOpt = None,
    force: ForceOpt = False,
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
    from . import render

    o = _opts(W, x, b, layer, layout, function, temperature, dtype)
    _check_output(output, force)
    L = _load(ctx, o)
    n, K = L.n, L.K
    if legend:
        rows = render.legend_rows(wrt.value, K, n, o.layout)
        records = [{"column": c, "variable": v, "stored_at": w} for c, v, w in rows]
        doc = smio.Document({"columns": records}, records=records)

        def legend_view() -> View:
            return View(
                np.zeros((0, 0)),
                [],
                [],
                "legend",
                table=lambda: render.legend_table(rows, o.layout),
                documents=(),
            )

        _emit(
            doc, what="the legend", fmt=fmt, output=output, force=force, precision=precision, view=legend_view
        )
        return
    if sample >= L.N:
        raise InputError(f"--sample {sample} is out of range: the batch has {L.N} samples (0 to {L.N - 1})")
    if entry is not None:
        _print_entry(L, entry, of.value, wrt.value, sample, fmt)
        return
    if fmt is OutputFormat.factored:
        if wrt.value != "W":
            raise typer.BadParameter(
                f"--format factored is for --wrt W; d{of.value}/d{wrt.value} is small already"
            )
        F = core.layer_factors(L, of=of.value)
        factors = smio.Document({"formula": F.formula, "shape": list(F.shape), "A": F.A, "x": F.x})
        if output is None:
            sys.stdout.write(smio.to_json(factors))
            return
        smio.save(factors, output, force=force, what="the factors")
        if not quiet:
            _note(f"wrote {output}")
        return
    shape = core.jacobian_shape(L, of=of.value, wrt=wrt.value)
    nbytes = int(np.prod(shape)) * L.W.dtype.itemsize
    what = f"d{of.value}/d{wrt.value}"
    dims = " × ".join(map(str, shape if L.batched else shape[1:]))
    budget = smio.default_memory_budget() if max_memory is None else _size(max_memory)
    progress = _Progress(nbytes, what, quiet)
    try:
        if output is not None and fmt is None and output.suffix.lower() in (".npy", ".csv"):
            blocks = core.jacobian_blocks(L, of=of.value, wrt=wrt.value, method=method.value)
            smio.write_blocks(output, blocks.shape, blocks.dtype, blocks.rows, force=force, progress=progress)
            progress.close()
            if not quiet:
                _note(f"wrote {output} ({dims} {L.W.dtype}, {smio.format_size(nbytes)})")
            return
        if output is None and (fmt is OutputFormat.csv or (fmt is None and not sys.stdout.isatty())):
            # plain data to a pipe: streamed block by block, so any size fits (smjac ... | gzip)
            blocks = core.jacobian_blocks(L, of=of.value, wrt=wrt.value, method=method.value)
            sys.stdout.flush()
            smio.stream_csv(sys.stdout.buffer, blocks.rows, progress=progress)
            return
        if nbytes > budget:
            raise InputError(
                f"{what} would take {smio.format_size(nbytes)} ({dims} {L.W.dtype}), over the memory budget of "
                f"{smio.format_size(budget)} (--max-memory). Stream it in blocks to a file, -o J.npy, or as CSV to a "
                "pipe, --format csv; "
                "or take it as its factors, K² + n numbers: --format factored (one entry: --entry T,I,J)"
            )
        J = L.out(core.layer_jacobian(L, of=of.value, wrt=wrt.value, method=method.value, progress=progress))
    finally:
        progress.close()
    doc = smio.Document(
        {"of": of.value, "wrt": wrt.value, "method": method.value, "shape": list(J.shape), "jacobian": J},
        matrix="jacobian",
    )
    cols = render.weight_labels(K, n) if wrt.value == "W" else render.labels(wrt.value.lower(), J.shape[-1])

    def view() -> View:
        notes: list[str] = []
        M = _pick(J, L.batched, sample, notes)
        title = f"d{of.value}/d{wrt.value} ({method.value}), {M.shape[0]}×{M.shape[1]}"
        return View(M, render.labels(of.value, K), cols, title, notes=notes)

    _emit(
        doc,
        what=f"d{of.value}/d{wrt.value}",
        fmt=fmt,
        output=output,
        force=force,
        precision=precision,
        view=view,
    )


def _targets(ctx: typer.Context, text: str) -> np.ndarray:
    """--target: one class, a comma list with one per sample, or a file of them."""
    parts = [p.strip() for p in text.split(",")]
    try:
        return np.array([int(p) for p in parts])
    except ValueError:
        if len(parts) > 1:
            raise InputError(f"--target {text!r}: a comma list holds class indices, such as 3,0,2") from None
    return smio.load_array(text, max_bytes=_max_bytes(ctx))


@app.command()
def grad(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    layout: LayoutOpt = Layout.in_out,
    function: FunctionOpt = Function.softmax,
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = DType.float64,
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
        Reduce, typer.Option(help="Sum or average a batch's gradients and losses.")
    ] = Reduce.sum,
    fmt: FormatOpt = None,
    precision: PrecisionOpt = 6,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Gradient of a loss with respect to W, in W's shape and layout.

    --target K uses cross-entropy, −log p[K], and also prints that loss; --upstream FILE takes
    dLoss/dh from whatever follows the layer. Both run in O(N·K·n), without the Jacobian.

    \b
    Examples:
      smjac grad -W samples/blog/W.json -x samples/blog/x.json --target 3
      smjac grad -W samples/batch/W.json -x samples/batch/X.json --target 3,0,2,1 --reduce mean
      smjac grad -W samples/batch/W.json -x samples/batch/X.json --target samples/batch/targets.csv
    """
    from . import render

    if (target is None) == (upstream is None):
        raise typer.BadParameter("give exactly one of --target K or --upstream FILE")
    o = _opts(W, x, b, layer, layout, function, temperature, dtype)
    _check_output(output, force)
    L = _load(ctx, o)
    t = None if target is None else _targets(ctx, target)
    g = None if upstream is None else smio.load_array(upstream, max_bytes=_max_bytes(ctx)).astype(o.dtype)
    res = core.layer_grad(L, target=t, upstream=g, reduce=reduce.value)
    fields: dict[str, Any] = {"grad": res.W, "loss": res.loss}
    if L.b is not None:
        fields["grad_b"] = res.b
    doc = smio.Document(fields, matrix="grad")
    constant = g is not None and bool(np.all(g == g.reshape(-1, g.shape[-1])[:, :1]))
    if constant and o.function == "softmax":
        _note(
            "note: the gradient is zero because upstream is the same for every output: each column "
            "of dh/dW sums to 0 (h always sums to 1), so summing the columns, as the post ends by "
            "suggesting, changes nothing. Use --target K or a real dLoss/dh."
        )
    csv_out = fmt is OutputFormat.csv or (fmt is None and output is None and not sys.stdout.isatty())
    if res.loss is not None and csv_out:
        _note(f"loss = {res.loss!r} (--format json puts it on stdout)")

    def view() -> View:
        rows, cols = ("x", "z") if o.layout == "in-out" else ("z", "x")
        Wshape = res.W.shape
        where = "rows: inputs, columns: outputs" if o.layout == "in-out" else "rows: outputs, columns: inputs"
        caption = where if res.loss is None else f"{where}\nloss ({reduce.value}) = {res.loss:.{precision}f}"
        return View(
            res.W,
            render.labels(rows, Wshape[0]),
            render.labels(cols, Wshape[1]),
            "dLoss/dW, in W's shape",
            caption=caption,
        )

    _emit(doc, what="the gradient", fmt=fmt, output=output, force=force, precision=precision, view=view)


@app.command()
def check(
    ctx: typer.Context,
    W: WeightsOpt = None,
    x: InputOpt = None,
    b: BiasOpt = None,
    layer: LayerOpt = None,
    layout: LayoutOpt = Layout.in_out,
    function: FunctionOpt = Function.softmax,
    temperature: TemperatureOpt = 1.0,
    dtype: DTypeOpt = DType.float64,
    rtol: Annotated[
        float | None,
        typer.Option(
            help="Relative tolerance, times the size of the reference [default: 1e-6, float32 1.2e-5].", min=0
        ),
    ] = None,
    atol: Annotated[float, typer.Option(help="Absolute tolerance.", min=0)] = 1e-9,
    probes: Annotated[
        int | None,
        typer.Option(
            help="Move at most N logits, N weights and N inputs by finite differences, drawn at random "
            "(for a large layer) [default: all].",
            min=1,
            metavar="N",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the draw of --probes.")] = 0,
    max_weights: Annotated[
        int,
        typer.Option(
            help="Refuse to move more weights than this (per sample, times the samples) rather than "
            "run for hours; 0: no limit.",
            min=0,
        ),
    ] = CHECK_MAX_WEIGHTS,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Check the derivatives against each other, finite differences and identities.

    Each sample of a batch is checked; a failing check names the samples it fails for. Exits 0
    when every check holds, 1 when one fails, 2 when it could not run.

    Finite differences move one weight at a time, so the work grows as (K·n)²: a 100 × 100 layer
    takes a few seconds. Past --max-weights smjac refuses; --probes N checks N weights drawn at
    random instead of all of them.

    \b
    Examples:
      smjac check -W samples/blog/W.json -x samples/blog/x.json
      smjac check -W samples/pytorch/W.json -x samples/pytorch/x.json -b samples/pytorch/b.json --layout out-in
      smjac check --layer samples/blog/layer.npz --function log-softmax --temperature 2 --dtype float32
      smjac check --layer samples/blog/layer.npz --probes 4 --seed 1
    """
    from . import render
    from .checks import forward_passes, layer_check

    o = _opts(W, x, b, layer, layout, function, temperature, dtype)
    _check_output(output, force)
    L = _load(ctx, o)
    moved = min(L.K * L.n, probes or L.K * L.n)
    if max_weights and moved * L.N > max_weights:
        what = f"K·n = {L.K * L.n:,} weights" if moved == L.K * L.n else f"--probes {moved:,} weights"
        samples = f" and {L.N} samples, {moved * L.N:,} in all," if L.batched else ""
        raise InputError(
            f"{what}{samples} over --max-weights {max_weights:,}: finite differences would take about "
            f"{forward_passes(L, probes):,} forward passes. Check a random few with --probes N (1000, say), "
            "or raise --max-weights (0: no limit) to wait"
        )
    report = layer_check(L, rtol=rtol, atol=atol, probes=probes, seed=seed)
    records = [
        {
            "name": c.name,
            "max_error": c.max_error,
            "tolerance": c.tolerance,
            "ok": c.ok,
            **({} if c.sample is None else {"sample": c.sample, "failed": list(c.failed)}),
        }
        for c in report.checks
    ]
    doc = smio.Document({"ok": report.ok, "checks": records}, records=records)
    M = np.array([[c.max_error, c.tolerance] for c in report.checks])

    def view():
        return View(
            M,
            [c.name for c in report.checks],
            ["max error", "tolerance"],
            "checks",
            table=lambda: render.check_table(report),
            documents=("markdown",),
        )

    _emit(doc, what="a check report", fmt=fmt, output=output, force=force, precision=3, view=view)
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
    """Console entry point.

    Typer turns every command's signature into options on each run. When the first argument
    names a command, only that one is turned (a few milliseconds of every run in a shell loop);
    anything else, such as ``smjac --help``, goes to the whole app.
    """
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
        run()
    except SystemExit as e:
        _exit(e.code)
    _exit(0)


def _exit(code: object) -> NoReturn:
    """End the process now that the output is flushed, without the interpreter's teardown.

    Unloading numpy, typer and their modules takes 10-15 ms after the work is done; a shell loop
    pays it on every call. Everything smjac writes is complete by now (files are synced and
    renamed before a command returns), so only the two streams need flushing. Under a tracer or
    profiler (coverage, say), whose atexit hooks must run, it exits the ordinary way.
    """
    status = code if isinstance(code, int) else 0 if code is None else 1
    if not isinstance(code, int | None):
        print(code, file=sys.stderr)
    if sys.gettrace() or sys.getprofile() or "coverage" in sys.modules:
        sys.exit(status)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left after the last write
        status = ExitStatus.PIPE_CLOSED
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
