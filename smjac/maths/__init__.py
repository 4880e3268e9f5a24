"""The maths of a softmax layer: pure numpy, no I/O, no flags, no printing.

Rooms: :mod:`.functions` (softmax, its log and their Jacobians), :mod:`.layer` (the checked inputs and
every choice, declared once), :mod:`.targets` (what a Jacobian is taken with respect to, one entry
each), :mod:`.forward_pass`, :mod:`.jacobians`, :mod:`.losses` (one class per loss),
:mod:`.gradients`, :mod:`.cost` (the one size estimate) and a private :mod:`._parallel` for BLAS
spans. The checker is in :mod:`smjac.checking`.

Each name loads its room on first use (what the type checker is shown below says which room
holds which), so that a command loads only the rooms it uses.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what a type checker sees of the names loaded on first use
    from ._parallel import (
        BLOCK_BYTES,
        MATVEC_COLUMNS,
        ONE_BLAS_THREAD_FROM,
        POOL_FROM,
        SPAN_BYTES,
        Progress,
        row_blocks,
    )
    from .cost import ESTIMATES, LEGEND_BYTES_PER_ROW, TEXT_BYTES_PER_NUMBER, estimate_bytes
    from .factors import Factored, jacobian_factors, layer_factors
    from .forward_pass import (
        CHUNK_BYTES,
        LOGIT_COPIES,
        Forward,
        forward,
        forward_chunks,
        layer_forward,
        row_chunks,
    )
    from .functions import dz_dW, log_softmax, log_softmax_jacobian, softmax, softmax_jacobian
    from .gradients import Gradient, constant_upstream, grad, grad_chunks, layer_grad
    from .jacobians import (
        ENTRY_FORMS,
        Blocks,
        DxParts,
        entry_form,
        jacobian,
        jacobian_blocks,
        jacobian_shape,
        layer_entry,
        layer_jacobian,
    )
    from .layer import (
        BINARY_JACOBIAN,
        BINARY_READING,
        DEFAULT_REDUCTION,
        FUNCTIONS,
        LAYOUTS,
        METHODS,
        OFS,
        REDUCTIONS,
        DTypeName,
        FunctionName,
        Layer,
        LayerOptions,
        LayoutName,
        Method,
        Of,
        Reduction,
        class_logits,
        layer_options,
        make_layer,
    )
    from .losses import CrossEntropy, Upstream
    from .numeric import Array, all_finite
    from .targets import TARGETS, WRTS, Target, Wrt, entry_forms, wrt_choices, wrt_target

# Where a name is looked for on first use, cheapest first: a name is taken from the first room
# that has it (the rooms import one another's names, so a later room may hold an earlier one's,
# the same object), and a forward pass never loads the losses, the factors or the gradients.
_ROOMS = (
    "numeric",
    "_parallel",
    "layer",
    "functions",
    "forward_pass",
    "targets",
    "jacobians",
    "cost",
    "factors",
    "losses",
    "gradients",
)


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for room in _ROOMS:
        module = importlib.import_module(f".{room}", __name__)
        if hasattr(module, name):
            value = getattr(module, name)
            globals()[name] = value  # found once: later look-ups are plain module attributes
            return value
    raise AttributeError(f"module {__name__!r} lists {name!r} but no room holds it")  # pragma: no cover


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "BINARY_JACOBIAN",
    "BINARY_READING",
    "BLOCK_BYTES",
    "CHUNK_BYTES",
    "DEFAULT_REDUCTION",
    "ENTRY_FORMS",
    "ESTIMATES",
    "FUNCTIONS",
    "LAYOUTS",
    "LEGEND_BYTES_PER_ROW",
    "LOGIT_COPIES",
    "MATVEC_COLUMNS",
    "METHODS",
    "OFS",
    "ONE_BLAS_THREAD_FROM",
    "POOL_FROM",
    "REDUCTIONS",
    "SPAN_BYTES",
    "TARGETS",
    "TEXT_BYTES_PER_NUMBER",
    "WRTS",
    "Array",
    "Blocks",
    "CrossEntropy",
    "DTypeName",
    "DxParts",
    "Factored",
    "Forward",
    "FunctionName",
    "Gradient",
    "Layer",
    "LayerOptions",
    "LayoutName",
    "Method",
    "Of",
    "Progress",
    "Reduction",
    "Target",
    "Upstream",
    "Wrt",
    "all_finite",
    "class_logits",
    "constant_upstream",
    "dz_dW",
    "entry_form",
    "entry_forms",
    "estimate_bytes",
    "forward",
    "forward_chunks",
    "grad",
    "grad_chunks",
    "jacobian",
    "jacobian_blocks",
    "jacobian_factors",
    "jacobian_shape",
    "layer_entry",
    "layer_factors",
    "layer_forward",
    "layer_grad",
    "layer_jacobian",
    "layer_options",
    "log_softmax",
    "log_softmax_jacobian",
    "make_layer",
    "row_blocks",
    "row_chunks",
    "softmax",
    "softmax_jacobian",
    "wrt_choices",
    "wrt_target",
]
