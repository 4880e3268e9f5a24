"""``smjac samples``: write the sample files that the examples read into a folder's ``samples/``.

Every example in smjac's help and documentation reads its inputs from ``samples/``: a clone has
the repository's own, and an installed smjac writes its copy anywhere with ``smjac samples .``.
The help of every command whose examples read ``samples/`` ends with :data:`HINT`
(:func:`smjac.cli.entry.build`).
"""

from pathlib import Path
from typing import Annotated

import typer

from ..errors import OutputError
from ..outputs import writer as output

HINT = "The examples read their files from samples/: smjac samples . writes it into the current folder."


def write_samples(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="[DIR]",
            help="The folder to write samples/ into, made if it is not there [default: the current folder].",
            show_default=False,
        ),
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Replace sample files there whose bytes differ from smjac's.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No message on stderr.")] = False,
) -> None:
    """Write the sample files that the examples read into DIR/samples.

    Every example in this help and in smjac's documentation reads its inputs from samples/: the
    blog post's layer, a batch, a PyTorch layer, small model checkpoints and wrong answers for
    verify. A clone of the repository has them; anywhere else, smjac samples . writes them. A
    file already there with the same bytes is left as it is; one whose bytes differ is refused,
    before anything is written, unless --force.

    \b
    Examples:
      smjac samples .
      smjac jacobian -W samples/blog/W.json -x samples/blog/x.json
    """
    from .. import samples as sample_files  # only when run: every other command's start-up counts

    plan = sample_files.plan(directory)
    if plan.differ and not force:
        raise OutputError(plan.refusal("add --force to replace"))
    done = sample_files.write(directory, force=force)
    if quiet:
        return
    written = len(done.new) + len(done.differ)
    if not written:
        output.message(f"{done.target}/ already holds smjac's {len(done.same)} sample files")
        return
    files = f"{written} sample file{'s' if written != 1 else ''}"
    replaced = f" ({len(done.differ)} replaced)" if done.differ else ""
    kept = f"; {len(done.same)} were there already" if done.same else ""
    output.message(f"wrote {files}{replaced} into {done.target}/{kept}")
