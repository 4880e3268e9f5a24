"""smjac: see and check the derivative of a softmax layer.

The Python API mirrors the command line::

    import smjac
    smjac.forward(W, x)                     # z and h
    smjac.jacobian(W, x, of="h", wrt="W", method="shortcut")
    smjac.grad(W, x, target=k)              # or upstream=g
    smjac.check(W, x)

Importing smjac loads numpy only; the command line's typer and rich stay out of it.
"""

from .core import (
    Check,
    CheckReport,
    Forward,
    Gradient,
    check,
    dz_dW,
    forward,
    grad,
    jacobian,
    log_softmax,
    numerical_jacobian,
    softmax,
    softmax_jacobian,
    validate_layer,
)
from .errors import InputError, LoadError, OutputError, ShapeError, SmjacError

__version__ = "0.1.0"

__all__ = [
    "Check",
    "CheckReport",
    "Forward",
    "Gradient",
    "InputError",
    "LoadError",
    "OutputError",
    "ShapeError",
    "SmjacError",
    "__version__",
    "check",
    "dz_dW",
    "forward",
    "grad",
    "jacobian",
    "log_softmax",
    "numerical_jacobian",
    "softmax",
    "softmax_jacobian",
    "validate_layer",
]
