"""smjac: see and check the derivative of a softmax layer.

The Python API mirrors the command line::

    import smjac
    smjac.forward(W, x)                     # z and h
    smjac.jacobian(W, x, of="h", wrt="W", method="shortcut")
    smjac.grad(W, x, target=k)              # or upstream=g
    smjac.check(W, x)
    smjac.verify(W, x, my_dh_dW)            # is a derivative by hand right? where, and why not?
    smjac.verify(W, X, grad=g, target=y)    # or grad_b=, jacobian=: named by what it is

Each also takes ``b=``, ``layout="out-in"`` (PyTorch's K×n weights), ``function="log-softmax"``
and ``temperature=`` (the keywords of ``LayerOptions``, documented once in ``make_layer``, each
choice typed as a ``Literal``); x may be a batch (N×n). Each checks its inputs first; to check them once
and reuse them, ``L = smjac.make_layer(W, x)`` and pass ``L`` to ``layer_forward``,
``layer_factors``, ``layer_grad``, ``layer_check`` or ``jacobian_blocks``.
Importing smjac loads nothing but its error types; numpy comes with the first function used, and
the command line's typer and rich stay out of it.
"""

import importlib
from typing import TYPE_CHECKING

from .errors import InputError, LoadError, OutputError, ShapeError, SmjacError

__version__ = "0.3.0"

if TYPE_CHECKING:  # what a type checker sees of the names loaded on first use, below
    from .checking.checks import Check, CheckReport, check, layer_check, numerical_jacobian
    from .checking.mistakes import MISTAKES
    from .checking.verdict import Verdict
    from .checking.verification import layer_verify, verify
    from .maths import (
        Blocks,
        Factored,
        Forward,
        Gradient,
        Layer,
        LayerOptions,
        dz_dW,
        forward,
        forward_chunks,
        grad,
        grad_chunks,
        jacobian,
        jacobian_blocks,
        jacobian_factors,
        layer_factors,
        layer_forward,
        layer_grad,
        log_softmax,
        log_softmax_jacobian,
        make_layer,
        softmax,
        softmax_jacobian,
    )

# Everything but the errors loads on first use: ``import smjac`` itself imports no numpy, so the
# command line can stop quietly on a Ctrl-C from its first moment (smjac.cli), and the checker and
# the verifier load only for the commands that use them.
_LAZY = {
    **dict.fromkeys(
        (
            "Blocks",
            "Factored",
            "Forward",
            "Gradient",
            "Layer",
            "LayerOptions",
            "dz_dW",
            "forward",
            "forward_chunks",
            "grad",
            "grad_chunks",
            "jacobian",
            "jacobian_blocks",
            "jacobian_factors",
            "layer_factors",
            "layer_forward",
            "layer_grad",
            "log_softmax",
            "log_softmax_jacobian",
            "make_layer",
            "softmax",
            "softmax_jacobian",
        ),
        "maths",
    ),
    **dict.fromkeys(
        ("Check", "CheckReport", "check", "layer_check", "numerical_jacobian"), "checking.checks"
    ),
    **dict.fromkeys(("verify", "layer_verify"), "checking.verification"),
    "Verdict": "checking.verdict",
    "MISTAKES": "checking.mistakes",
}
_MODULES = {"budget", "checking", "cli", "formats", "inputs", "maths", "notation", "outputs", "samples"}


def __getattr__(name: str) -> object:
    if name in _MODULES:  # smjac.maths after a bare ``import smjac``, as when this file imported it
        return importlib.import_module(f".{name}", __name__)
    if name not in _LAZY:
        raise AttributeError(f"module 'smjac' has no attribute {name!r}")
    module = importlib.import_module(f".{_LAZY[name]}", __name__)
    value = getattr(module, name)
    globals()[name] = value  # found once: later look-ups are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "MISTAKES",
    "Blocks",
    "Check",
    "CheckReport",
    "Factored",
    "Forward",
    "Gradient",
    "InputError",
    "Layer",
    "LayerOptions",
    "LoadError",
    "OutputError",
    "ShapeError",
    "SmjacError",
    "Verdict",
    "__version__",
    "check",
    "dz_dW",
    "forward",
    "forward_chunks",
    "grad",
    "grad_chunks",
    "jacobian",
    "jacobian_blocks",
    "jacobian_factors",
    "layer_check",
    "layer_factors",
    "layer_forward",
    "layer_grad",
    "layer_verify",
    "log_softmax",
    "log_softmax_jacobian",
    "make_layer",
    "numerical_jacobian",
    "softmax",
    "softmax_jacobian",
    "verify",
]
