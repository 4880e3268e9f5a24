"""The options the commands share, declared once: the layer, the loss and the output, as groups.

Each group is a dataclass of typer options (see :func:`smjac.cli.groups.group`) with what the
commands do with those options: :class:`LayerSource` loads the checked :class:`~smjac.maths.Layer`,
:class:`Loss` reads the targets and the cross-entropy's options, :class:`Output` builds the
:class:`~smjac.outputs.writer.Writer`. A command applies one with :func:`layer_options`,
:func:`loss_options` or :func:`output_options` and takes the packed group as one parameter.
"""

import dataclasses
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import numpy as np
import typer

from .. import budget, inputs, maths
from ..checking.tolerances import ATOL_MAX, CHECK_ATOL, RTOL_MAX, default_rtol, verify_tolerances
from ..errors import SHOWN_MOST, InputError, shell_word, shown
from ..formats.text_reading import WHOLE
from ..outputs import writer as writing

if TYPE_CHECKING:
    from ..formats.npy import NpyFile
from .flags import as_flags
from .groups import group

F = TypeVar("F", bound=Callable[..., Any])

FILE: dict[str, Any] = {"exists": True, "dir_okay": False, "readable": True, "allow_dash": True}


def input_cap(ctx: typer.Context) -> int:
    """The largest input file the app's ``--max-input-bytes`` lets a command read."""
    return int(ctx.find_root().obj["max_input_bytes"])


def whole_numbers(text: str) -> list[int] | None:
    """A comma list of whole numbers in ASCII digits, spaces allowed around each; None if it is not
    one. Not int() alone, which also reads 1_0 as 10 and Arabic-Indic ١ as 1.

    >>> whole_numbers("3, 0,-100"), whole_numbers("1_0"), whole_numbers("1,,2")
    ([3, 0, -100], None, None)
    """
    parts = [p.strip() for p in text.split(",")]
    if all(re.fullmatch(WHOLE, p) for p in parts):
        return [int(p) for p in parts]
    return None


def parse_size(text: str | None) -> int | None:
    """A size option (``4G``, ``512M``, bytes) in bytes, or a usage error."""
    if text is None:
        return None
    try:
        return budget.parse_size(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def size_option(envvar: str, help: str) -> Any:
    """A size option: 4G, 512M or bytes, also from ``envvar``."""
    return typer.Option(envvar=envvar, parser=parse_size, metavar="SIZE", help=help, show_default=False)


def output_file(text: str | None) -> Path | None:
    """-o's FILE, or a usage error where it names a folder: an existing one, or a name that ends in
    a separator (``out.csv/``), which ``Path`` would quietly read as the file ``out.csv``."""
    if text is None or text == "-":
        return None if text is None else Path(text)
    if not text:
        raise typer.BadParameter("an empty name; give a file")
    ends = tuple(s for s in (os.sep, os.altsep, "/") if s)
    if text.endswith(ends):
        file = text.rstrip("".join(ends))
        offer = f"{shell_word(file)}, or a file inside it" if 0 < len(file) <= SHOWN_MOST else "a file"
        raise typer.BadParameter(f"{shown(text)} ends in {text[-1]}, so it names a folder; give {offer}")
    last = re.split("|".join(map(re.escape, ends)), text)[-1]
    if last in (".", ".."):  # x.csv/. is x.csv, a folder
        raise typer.BadParameter(f"{shown(text)} ends in {last}, so it names a folder; give a file")
    try:
        folder = Path(text).is_dir()
    except OSError:  # a name too long, say: the writer says what is wrong with it
        folder = False
    if folder:
        raise typer.BadParameter(f"{shown(text)} is a folder; give a file, inside it or elsewhere")
    return Path(text)


def within(lo: float, hi: float, *, above: bool = False) -> Callable[[float | None], float | None]:
    """A parser callback: a finite number in [lo, hi] ((lo, hi] with ``above``), or a usage error
    naming the range. click's own ranges let NaN through, and infinity would reach a JSON report."""

    def check(value: float | None) -> float | None:
        if value is None or (math.isfinite(value) and (value > lo if above else value >= lo) and value <= hi):
            return value
        if hi >= sys.float_info.max:
            raise typer.BadParameter(f"{value} is not a finite number {'>' if above else '≥'} {lo:g}")
        raise typer.BadParameter(f"{value} is not a finite number in {'(' if above else '['}{lo:g}, {hi:g}]")

    return check


def tolerance(x: float) -> str:
    """A tolerance as the help writes it: ``1e-6``, ``1.2e-5``."""
    return f"{x:.2g}".replace("e-0", "e-")


RtolOpt = Annotated[
    float | None,
    typer.Option(
        help="Relative tolerance in [0, 1], times the size of the reference [default: by dtype, "
        f"{tolerance(default_rtol(np.float64))} for float64, {tolerance(default_rtol(np.float32))} for float32; "
        f"verify: {tolerance(verify_tolerances(np.dtype(np.float16), np.dtype(np.float64))[0])} for a float16 answer].",
        callback=within(0, RTOL_MAX),
        show_default=False,
    ),
]
AtolOpt = Annotated[
    float | None,
    typer.Option(
        help=f"Absolute tolerance in [0, 1e300] [default: {tolerance(CHECK_ATOL)}; verify: by the answer's dtype].",
        callback=within(0, ATOL_MAX),
        show_default=False,
    ),
]


# ---------------------------------------------------------------- the layer


# eq=False: nobody compares a group, and the __eq__ and __hash__ that dataclasses would compile at
# import cost every start (the three groups: 0.4% of smjac forward's instructions)
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LayerSource:
    """Where the layer comes from (files, one bundle or a checkpoint) and how it is read."""

    W: Annotated[
        Path | None,
        typer.Option(
            "-W",
            "--weights",
            help="Weights W: n×K, or K×n with --layout out-in (.json, .csv, .npy; - for stdin).",
            **FILE,
        ),
    ] = None
    x: Annotated[
        Path | None,
        typer.Option(
            "-x", "--input", help="Input x: a vector (n), or a batch (N×n, one row per sample).", **FILE
        ),
    ] = None
    b: Annotated[
        Path | None, typer.Option("-b", "--bias", help="Bias b, K entries: z = Wᵀx + b.", **FILE)
    ] = None
    layer: Annotated[
        Path | None,
        typer.Option(
            "--layer",
            help="W, x (and b) in one file: .npz or a JSON object with those keys; or W and b from a model "
            "checkpoint: a save_pretrained folder, .safetensors (or its .index.json), .keras, .h5 (see --key).",
            **{**FILE, "dir_okay": True},
        ),
    ] = None
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Which layer of a --layer checkpoint: classifier takes classifier.weight and classifier.bias "
            "[default: the head, by its name; smjac inspect lists the layers].",
            show_default=False,
        ),
    ] = None
    layout: Annotated[
        maths.LayoutName | None,
        typer.Option(
            help="in-out: W is n×K, z = Wᵀx (the post). out-in: W is K×n, z = Wx (PyTorch nn.Linear) "
            "[default: in-out; a .safetensors checkpoint's is out-in].",
            show_default=False,
        ),
    ] = None
    function: Annotated[
        maths.FunctionName, typer.Option(help="The layer's output: softmax(z/T) or its log.")
    ] = "softmax"
    temperature: Annotated[
        float,
        typer.Option(
            help="T > 0 (finite): h = softmax(z / T).", callback=within(0, sys.float_info.max, above=True)
        ),
    ] = 1.0
    dtype: Annotated[
        maths.DTypeName, typer.Option("--dtype", help="Precision of the arithmetic and of written files.")
    ] = "float64"

    @property
    def files(self) -> tuple[Path | None, ...]:
        """The files named, for :func:`smjac.inputs.one_stdin`."""
        return (self.W, self.x, self.b, self.layer)

    @property
    def from_checkpoint(self) -> bool:
        """Whether ``--layer`` names a model checkpoint (not a bundle of W, x and b)."""
        if self.layer is None or str(self.layer) == "-":
            return False
        from ..formats import checkpoints  # only when a --layer is given: start-up time counts

        return checkpoints.kind(self.layer) is not None

    def mapped_x(self, max_bytes: int) -> "NpyFile | None":
        """x in a .npy file larger than the input cap, opened to be read a block of rows at a time
        (None otherwise): forward and grad walk it a chunk of rows at a time."""
        x = self.x
        if x is None or str(x) == "-" or x.suffix.lower() != ".npy" or x.stat().st_size <= max_bytes:
            return None
        return inputs.map_npy(
            x, max_bytes=max_bytes, dtype=self.dtype
        )  # cast a block at a time, as --dtype asks

    def load(
        self, ctx: typer.Context, w: writing.Writer, *, x: Any = None, binary: str | None = ""
    ) -> maths.Layer:
        """The layer the options name, loaded and checked once; a checkpoint's notes go to stderr,
        and the checkpoint itself is kept on ``w`` (a gradient can be written back in its form).

        ``x`` stands for ``-x`` when given (the first rows of a memory-mapped batch). A layer of
        one output is read as binary logistic regression, said once on stderr (with ``binary``
        after it: how this command treats it; None: not said, the command refuses it)."""
        layer: Any = self.layer
        key = self.key
        if self.from_checkpoint:
            from ..formats import checkpoints

            with w.working(f"reading {layer}"):  # a bar after a second: a large model takes a while
                layer = checkpoints.read(layer, key=key, max_bytes=input_cap(ctx), memory_budget=w.budget())
            for text in layer.notes_for(self.layout):
                w.note(as_flags(text))
            w.checkpoint, key = layer, None
        named = ", ".join(str(p) for p in (self.layer, self.W, self.x if x is None else None, self.b) if p)
        replaced: list[str] = []
        with w.working(f"reading {named}"):
            L = inputs.load_layer(
                self.W, self.x if x is None else x, self.b, layer=layer, key=key, layout=self.layout,
                function=self.function, temperature=self.temperature, dtype=self.dtype,
                max_bytes=input_cap(ctx), max_memory=w.budget(), replaced=replaced,
            )  # fmt: skip
        for said in replaced:  # the user may have meant the bundle's: say which was used
            w.note(f"note: {said}")
        if L.binary and binary is not None:
            w.note(f"note: {maths.BINARY_READING}{binary}")
        return L


def layer_options(command: F) -> F:
    """Offer the layer's nine options in place of the command's :class:`LayerSource` parameter."""
    return group(LayerSource)(command)


# ---------------------------------------------------------------- the loss


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Loss:
    """The loss a gradient is of: cross-entropy of a target (with torch's options), or dLoss/dh."""

    target: Annotated[
        str | None,
        typer.Option(
            help="True class from 0 (cross-entropy); for a batch a comma list or a file, one per sample."
        ),
    ] = None
    upstream: Annotated[
        Path | None,
        typer.Option(help="dLoss/dh from whatever follows the layer: K entries, or N×K.", **FILE),
    ] = None
    reduce: Annotated[
        maths.Reduction,
        typer.Option(
            help="Average a batch's gradients and losses, as torch, Keras and scikit-learn do, or sum them."
        ),
    ] = maths.DEFAULT_REDUCTION
    class_weights: Annotated[
        Path | None,
        typer.Option(
            "--class-weights",
            help="With --target: one weight per class, in class order (K numbers), as torch's "
            "CrossEntropyLoss(weight=); a mean divides by the targets' weights.",
            **FILE,
        ),
    ] = None
    ignore_index: Annotated[
        int | None,
        typer.Option(
            "--ignore-index",
            help="With --target: samples of this target count for nothing, in the loss and the mean "
            "(torch's default is -100; none is ignored unless given).",
            show_default=False,
            metavar="I",
        ),
    ] = None
    label_smoothing: Annotated[
        float,
        typer.Option(
            "--label-smoothing",
            help="With --target: ε in [0, 1]; the target becomes (1 − ε)·one-hot + ε/K, as torch's "
            "CrossEntropyLoss(label_smoothing=).",
            callback=within(0, 1),  # ε is a probability
            metavar="EPS",
        ),
    ] = 0.0

    @property
    def files(self) -> tuple[Any, ...]:
        """The inputs named, for :func:`smjac.inputs.one_stdin`."""
        return (self.target, self.upstream, self.class_weights)

    def needs_target(self) -> None:
        """The cross-entropy's options shape the loss of a target: a usage error without --target."""
        given = [
            f
            for f, v in (("--class-weights", self.class_weights), ("--ignore-index", self.ignore_index))
            if v is not None
        ]
        given += ["--label-smoothing"] * bool(self.label_smoothing)
        if given and self.target is None:
            raise typer.BadParameter(
                f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of the cross-entropy "
                "of --target: give --target K (an --upstream dLoss/dh already holds whatever its loss weighs)"
            )

    def one_of(self) -> None:
        """A usage error unless exactly one of --target and --upstream is given."""
        if (self.target is None) == (self.upstream is None):
            raise typer.BadParameter("give exactly one of --target K or --upstream FILE")

    def targets(self, ctx: typer.Context, max_memory: int | None = None) -> Any:
        """--target: one class, a comma list with one per sample, or a file of them (``-``: stdin).

        Integers are tried first; only a name that is ``-`` or an existing file is read as a file,
        and the message says both were tried. None without --target.
        """
        text = self.target
        if text is None:
            return None
        numbers = whole_numbers(text)
        if numbers is not None:
            return numbers
        if text == "-" or ("," not in text and Path(text).is_file()):
            return inputs.load_array(text, max_bytes=input_cap(ctx), max_memory=max_memory)
        raise InputError(
            f"--target {text!r}: not a class index (3), a comma list of them (3,0,2), nor a file that exists"
        )

    def upstream_gradient(self, ctx: typer.Context, L: maths.Layer, w: writing.Writer) -> np.ndarray | None:
        """--upstream's dLoss/dh in L's dtype, read and checked under the budget (None without it)."""
        if self.upstream is None:
            return None
        with w.working(f"reading {self.upstream}"):  # N×K of them can be as large as x
            return inputs.load_upstream(self.upstream, L, max_bytes=input_cap(ctx), max_memory=w.budget())

    def options(self, ctx: typer.Context, L: maths.Layer, max_memory: int | None = None) -> dict[str, Any]:
        """The cross-entropy's options as the maths takes them, those given only (the weights read
        and checked against L's classes)."""
        options: dict[str, Any] = {}
        if self.class_weights is not None:
            options["class_weights"] = inputs.load_class_weights(
                self.class_weights, L, max_bytes=input_cap(ctx), max_memory=max_memory
            )
        if self.ignore_index is not None:
            options["ignore_index"] = self.ignore_index
        if self.label_smoothing:
            options["label_smoothing"] = self.label_smoothing
        return options

    def read(self, ctx: typer.Context, L: maths.Layer, w: writing.Writer) -> dict[str, Any]:
        """Everything the maths takes about the loss: target, upstream, reduce and the options."""
        return {
            "target": self.targets(ctx, w.budget()),
            "upstream": self.upstream_gradient(ctx, L, w),
            "reduce": self.reduce,
            **self.options(ctx, L, w.budget()),
        }


def loss_options(*, upstream: bool = True, helps: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Offer the loss's options in place of the command's :class:`Loss` parameter (``upstream``:
    with --upstream; ``helps``: what --target, --reduce … mean for this command)."""
    return group(Loss, omit=() if upstream else ("upstream",), helps=helps)


# ---------------------------------------------------------------- the output

ColorName = Literal["auto", "always", "never"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Output:
    """Where the result goes and how it looks; :meth:`writer` makes the one writer from it."""

    fmt: Annotated[str | None, typer.Option("--format", "-f", show_default=False)] = None  # per command
    precision: Annotated[
        int,
        typer.Option(help="Digits after the point in tables and documents.", min=0, max=17, metavar="<int>"),
    ] = 6
    sample: Annotated[
        int, typer.Option(help="Which sample of a batch a table shows, from 0.", min=0, metavar="<int>")
    ] = 0
    output: Annotated[Path | None, typer.Option("-o", "--output", parser=output_file, metavar="FILE")] = (
        None  # per command
    )
    force: Annotated[
        bool, typer.Option("--force", help="Replace FILE if it exists (keeping its permissions).")
    ] = False
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes on stderr.")] = (
        False
    )
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="A progress bar on stderr for work that takes over a second: --progress draws it in a "
            "pipe or a log too, --no-progress never [default: when stderr is a terminal; never with --quiet].",
            show_default=False,
        ),
    ] = None
    max_memory: Annotated[
        int | None,
        size_option(
            "SMJAC_MAX_MEMORY",
            "Refuse a result larger than this in memory: 4G, 512M or bytes (up to 2^62) "
            "[default: half the memory available].",
        ),
    ] = None
    color: Annotated[
        ColorName,
        typer.Option(
            help="Colour on stdout. auto: at a terminal; always: in a pipe too, where it also makes a table "
            "the default format; never: none. auto follows NO_COLOR, then FORCE_COLOR, when set.",
        ),
    ] = "auto"

    def writer(self, shape: writing.Shape) -> writing.Writer:
        """The writer of a result of ``shape``: refuses what cannot be written before any work."""
        options = writing.Options(
            fmt=None if self.fmt is None else writing.Format(self.fmt), output=self.output, force=self.force,
            precision=self.precision, sample=self.sample, quiet=self.quiet, max_memory=self.max_memory,
            progress=self.progress,
        )  # fmt: skip
        return writing.Writer(shape, options, env=writing.Environment.read(color=self.color))


def suffixes(*shapes: writing.Shape) -> list[str]:
    """The suffixes of the files a result of any of ``shapes`` can be written to, in the table's order."""
    written = {f for s in shapes for f in writing.usable(s, files_only=True)}
    return [f.suffix for f in writing.Format if f.suffix and f in written]


def output_options(
    shape: writing.Shape,
    *,
    also: tuple[writing.Shape, ...] = (),
    formats: tuple[str, ...] = (),
    more: str = "",
    precision: int | None = 6,
    sample: bool = False,
    files: bool = True,
    memory: bool | None = None,
    fixed: Mapping[str, Any] | None = None,
    helps: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Offer the output options in place of the command's :class:`Output` parameter.

    ``shape`` (and ``also``, the other shapes the command's result may take) settles the
    --format choices (with ``formats`` added, ``more`` said of them) and the suffixes -o lists.
    ``precision``: its default (None: not offered); ``sample``: offer --sample; ``files``: offer
    -o, --force, --max-memory and --progress (the commands that compute); ``memory``: offer
    --max-memory (None: with ``files``).
    """
    usable = list(dict.fromkeys(f for s in (shape, *also) for f in writing.usable(s)))
    choices = tuple(f.value for f in usable) + formats
    binary = [f.value for f in usable if not f.printable]
    binary_help = (
        f". {', '.join(binary)} {'are' if len(binary) > 1 else 'is'} binary: for a pipe (| or > FILE), not a terminal"
        if binary
        else ""
    )
    also_stdout = ". Given with -o FILE, the result is printed to stdout too" if files else ""
    default = f"{'table at a terminal, ' if shape.view else ''}{'csv' if shape.csv else 'json'} in a pipe"
    written = suffixes(shape, *also)
    checkpoint = "; .safetensors for a layer read from a checkpoint" if ".safetensors" in written else ""
    written = [s for s in written if s != ".safetensors"]
    omit = {"sample"} if not sample else set()
    omit |= {"precision"} if precision is None else set()
    omit |= {"output", "force", "progress"} if not files else set()
    omit |= {"max_memory"} if not (files if memory is None else memory) else set()
    fixed = dict(fixed or {})
    return group(
        Output,
        omit=omit - set(fixed),
        fixed=fixed,
        defaults={} if precision is None else {"precision": precision},
        types={"fmt": Annotated[Literal[choices] | None, typer.Option("--format", "-f", show_default=False)]},
        helps={
            "fmt": f"How to print it on stdout [default: {default}]{more}{binary_help}{also_stdout}.",
            "output": "Write the result to FILE, atomically, in the format its suffix names: "
            f"{', '.join(written)}{checkpoint}. -o - is stdout, in --format's format.",
            **(helps or {}),
        },
    )
