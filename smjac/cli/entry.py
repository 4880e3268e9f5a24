"""The ``smjac`` command: its own options, errors as exit codes, and the entry point, :func:`main`.

The command line is in four rooms: here the app; :mod:`.groups` the mechanism that turns a
dataclass of options into a command's parameters; :mod:`.options` the groups the commands share
(the layer, the loss, the output); the commands, one module each (:data:`.commands.COMMANDS`),
each of which reads its options, computes one result and hands it to the writer. A run builds
the app with the one command it names (:func:`build`); :mod:`.app` is the whole app.
No maths and no output here: numbers come from :mod:`smjac.maths`, results are assembled in
:mod:`smjac.outputs.results`, and every byte written goes through :class:`smjac.outputs.writer.Writer`.
Errors are turned into exit codes in one place, :func:`fail`; the process's streams and signals
are made honest by :func:`smjac.outputs.streams.prepare` in :func:`main`.
"""

import contextlib
import copy
import importlib
import os
import re
import sys
from collections.abc import Iterable
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from .. import __version__, budget
from ..errors import ExitStatus, InputError, SmjacError, shell_word
from ..formats.table import either
from ..formats.text_reading import NUMBER, WHOLE
from ..outputs import writer as output
from .commands import COMMANDS
from .flags import as_flags
from .options import size_option


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


# What click's int and float types take, as a person types it (text_reading's patterns: click
# calls int() and float(), which also read 1_0 as 10 and ٣ as 3); NaN and infinities are words
# click reads and each option's own check refuses. Compiled by re on first use.
_TYPED = {"integer": WHOLE, "number": rf"{NUMBER}|[+-]?(?:nan|inf|infinity)"}
_NUMBER_TYPES = {
    "IntParamType": "integer",
    "IntRange": "integer",
    "FloatParamType": "number",
    "FloatRange": "number",
}


def _strict_numbers(command: Any) -> None:
    """Each whole-number and number option of ``command`` (a copy of its click type) refuses what
    a person does not type as one: ``1_0``, ``٣``, ``２``."""
    for param in command.params:
        kind = next(
            (_NUMBER_TYPES[c.__name__] for c in type(param.type).__mro__ if c.__name__ in _NUMBER_TYPES), None
        )
        if kind is None:
            continue
        strict = copy.copy(param.type)
        convert = strict.convert

        def checked(
            value: Any, p: Any, ctx: Any, convert: Any = convert, kind: str = kind, strict: Any = strict
        ) -> Any:
            if isinstance(value, str) and not re.fullmatch(_TYPED[kind], value.strip(), re.IGNORECASE):
                strict.fail(
                    f"{value!r} is not {'a whole number' if kind == 'integer' else 'a number'} in ASCII digits",
                    p,
                    ctx,
                )
            number = convert(value, p, ctx)
            if isinstance(value, str) and number == 0 and re.search("[1-9]", re.split("[eE]", value)[0]):
                strict.fail(f"{value.strip()} underflows to 0 in a 64-bit float", p, ctx)  # 1e-400
            return number

        strict.convert = checked
        param.type = strict


class _Group(TyperGroup):
    """Every error raised while a command runs ends in :func:`fail`, also when run in process;
    number options take ASCII digits only (:func:`_strict_numbers`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in (self, *self.commands.values()):
            _strict_numbers(command)

    def add_command(self, cmd: Any, name: str | None = None) -> None:
        _strict_numbers(cmd)
        super().add_command(cmd, name)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (_ClickException, typer.Exit, typer.Abort):
            raise
        except (Exception, KeyboardInterrupt) as e:
            raise typer.Exit(fail(e)) from None

    def _main_shell_completion(self, ctx_args: Any, prog_name: str, complete_var: str | None = None) -> None:
        """Shell completion in click's spelling too: ``_SMJAC_COMPLETE=bash_source`` is typer's
        ``source_bash`` (and ``bash_complete`` its ``complete_bash``); typer does the rest, once
        the instruction and the shell's variables are known to be what its script sets."""
        var = complete_var or f"_{prog_name}_COMPLETE".replace("-", "_").upper()
        given = os.environ.get(var, "")
        if given:
            try:
                os.environ[var] = _instruction(var, given)
            except SmjacError as e:
                sys.exit(fail(e))  # as typer ends a completion: in process (CliRunner) too
        super()._main_shell_completion(ctx_args, prog_name, complete_var)


def _instruction(var: str, given: str) -> str:
    """``given`` (``bash_source`` or ``source_bash``) in typer's spelling, once it is known to be
    an instruction typer follows, and, for bash's completions, ``COMP_WORDS`` and ``COMP_CWORD`` to
    be what the script sets; an InputError otherwise (not typer's exit 1, nor an internal error)."""
    from typer.completion import Shells

    shells = [s.value for s in Shells]
    first, _, second = given.partition("_")
    action, shell = (first, second) if first in ("source", "complete") else (second, first)
    if action not in ("source", "complete") or shell not in shells:
        raise InputError(
            f"{var}={shell_word(given)} is not a completion instruction; use "
            f"{either([f'{s}_source' for s in shells])} for the script (it asks with bash_complete "
            "and the like; typer's source_bash, complete_bash, ... work too)"
        )
    script = f"{var}={shell_word(given)} is for the shell's completion script"
    if (action, shell) == ("complete", "bash"):
        for needed in ("COMP_WORDS", "COMP_CWORD"):
            if needed not in os.environ:
                raise InputError(
                    f"{script}, which sets {needed!r}; install it with smjac --install-completion"
                )
        words, cword = len(_shell_words(os.environ["COMP_WORDS"])), os.environ["COMP_CWORD"]
        if not (cword.isascii() and cword.isdigit() and int(cword) <= words):
            raise InputError(
                f"COMP_CWORD={shell_word(cword)} is not the index of a word in COMP_WORDS (0 to {words}); "
                f"{script}: install it with smjac --install-completion"
            )
    return f"{action}_{shell}"


def _shell_words(line: str) -> list[str]:
    """The words of ``line`` as click's ``split_arg_string`` gives them to typer: as a POSIX shell
    splits them, an unclosed quote ending the last."""
    import shlex

    lex = shlex.shlex(line, posix=True)
    lex.whitespace_split, lex.commenters = True, ""
    words: list[str] = []
    try:
        words.extend(lex)
    except ValueError:  # an unclosed quote: what was read of it is the last word
        words.append(lex.token)
    return words


HELP_WIDTH = 120  # --help fills a wide terminal up to this, for lines a person can still read


def _typer() -> typer.Typer:
    import shutil

    return typer.Typer(
        name="smjac",
        cls=_Group,
        no_args_is_help=True,
        add_completion=True,  # --install-completion, --show-completion; see _Group for the protocol
        rich_markup_mode=None,  # help text is plain: w[i,j] is a weight, not a markup tag
        pretty_exceptions_enable=False,
        context_settings={
            "help_option_names": ["-h", "--help"],
            "max_content_width": min(HELP_WIDTH, max(80, shutil.get_terminal_size().columns)),
        },
    )


def _version(value: bool) -> None:
    if value:
        output.message(f"smjac {__version__}", sys.stdout)
        raise typer.Exit()


def _main(
    ctx: typer.Context,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
    max_input_bytes: Annotated[
        int | None,
        size_option(
            "SMJAC_MAX_INPUT_BYTES",
            "Refuse an input file larger than this, before reading it: 4G, 512M or bytes; "
            "before or after the command [default: 1G].",
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


def build(names: Iterable[str]) -> typer.Typer:
    """The app with its own options and the commands ``names`` (of :data:`.commands.COMMANDS`),
    each imported from its module now. A command whose examples read ``samples/`` (and the app)
    ends its help with where that folder comes from."""
    from .samples import HINT

    built = _typer()
    built.callback(epilog=HINT)(_main)
    for name in names:
        module, function = COMMANDS[name]
        command = getattr(importlib.import_module(f".{module}", __package__), function)
        reads_samples = name != "samples" and "samples/" in (command.__doc__ or "")
        built.command(name, epilog=HINT if reads_samples else None)(command)
    return built


def main() -> NoReturn:
    """Console entry point: honest streams and signals, the app, and one exit status.

    Typer turns every command's signature into options on each run. When the first argument
    names a command, only that one is imported and turned (milliseconds of every run in a shell
    loop); anything else, such as ``smjac --help``, goes to the whole app.
    """
    try:  # from the first line: a Ctrl-C while the handlers are being set ends as any other does
        from ..outputs import streams

        streams.prepare()
        sys.argv[1:] = _global_first(sys.argv[1:])
        name = sys.argv[1] if len(sys.argv) > 1 else ""
        run = build([name] if name in COMMANDS else COMMANDS)  # the whole app: as smjac.cli.whole makes it
        try:
            status = run(standalone_mode=False)
        except _ClickException as e:
            e.show()  # type: ignore[attr-defined]
            status = e.exit_code  # type: ignore[attr-defined]
        except typer.Abort:
            status = ExitStatus.INTERRUPTED
        except SystemExit as e:  # shell completion and --show-completion end with sys.exit
            status = e.code if isinstance(e.code, int) else int(e.code is not None)
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
    >>> _global_first(["--max-input-bytes", "1K", "forward", "--max-input-bytes", "2G"])  # the last wins
    ['--max-input-bytes', '1K', '--max-input-bytes', '2G', 'forward']
    """
    start = 0  # the options before the command stay first: one given after it comes later, and wins
    while start < len(args) and args[start].startswith("-") and args[start] != "--":
        start += 2 if args[start] == _GLOBAL else 1
    head, args = args[:start], args[start:]
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
    return head + moved + rest


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
