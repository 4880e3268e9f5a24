"""The commands, one module each, and what they share.

Each command reads its options (the groups of :mod:`smjac.cli.options`: the layer, the loss, the
output, with what is its own), computes one result and hands it to the writer; its docstring is
its help. :data:`COMMANDS` names them in the order the help lists them, and where each is: a run
imports the one it names (:func:`smjac.cli.entry.main`), the whole app (:mod:`.app`) all of them.
"""

import typer

# name: (module of smjac.cli, function)
COMMANDS = {
    "forward": ("forward", "forward"),
    "jacobian": ("jacobian", "jacobian"),
    "grad": ("grad", "grad"),
    "check": ("check", "check"),
    "verify": ("verify", "verify"),
    "inspect": ("inspection", "inspect_layers"),
    "demo": ("demo", "demo"),
    "samples": ("samples", "write_samples"),
}


def done(status: int) -> None:
    """End the command with the writer's exit status (1: a check or verify disagreed)."""
    if status:
        raise typer.Exit(status)
