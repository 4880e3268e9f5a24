"""A softmax layer's inputs, checked once: W, x, b and every choice (layout, function, temperature).

Each choice is declared here once, as a ``Literal``; the command line takes its options from these.
The post's conventions: ``z = Wᵀx + b`` with W n×K (``layout="in-out"``, the default), or
``z = Wx + b`` with W K×n (``layout="out-in"``, PyTorch's ``nn.Linear``); then ``h = softmax(z / T)``
or its log. x may be one sample (n entries) or a batch (N×n).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Literal, NamedTuple, TypedDict, get_args

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError, ShapeError
from ._parallel import all_finite_rows
from .numeric import SMALL, Array, all_finite, as_float, check_choice, largest_float, real_number

if TYPE_CHECKING:  # for annotations (``**layer: Unpack[LayerOptions]``) only: nothing is imported at run time
    if sys.version_info >= (3, 11):
        from typing import Unpack as Unpack
    else:
        from typing_extensions import Unpack as Unpack

# Each choice is declared once, here; the command line takes its options from these.
Of = Literal["h", "z"]
Method = Literal["shortcut", "chain"]
LayoutName = Literal["in-out", "out-in"]
FunctionName = Literal["softmax", "log-softmax"]
Reduction = Literal["mean", "sum"]
DTypeName = Literal["float64", "float32"]
OFS, METHODS = get_args(Of), get_args(Method)  # the choice of wrt is declared with the targets, in .targets
LAYOUTS, FUNCTIONS, REDUCTIONS = get_args(LayoutName), get_args(FunctionName), get_args(Reduction)
# No float dtype overflows below float16's largest number: a temperature under it needs no look at its dtype
_NO_OVERFLOW = float(np.finfo(np.float16).max)
# A batch is averaged, as torch (CrossEntropyLoss), Keras and scikit-learn do; one sample is the same either way.
DEFAULT_REDUCTION: Reduction = "mean"


class LayerOptions(TypedDict, total=False):
    """The layer's choices, as keywords: every public function takes them as ``**layer`` and hands
    them to :func:`make_layer`, which documents them and holds their defaults."""

    layout: LayoutName
    function: FunctionName
    temperature: float


# the keywords a public function hands to make_layer as ``**layer``: the choices, and the labels of its messages
_NAMES = ("W", "x", "b")  # make_layer's labels unless it is given others
_count, _isfinite, _tuple_new = np.count_nonzero, np.isfinite, tuple.__new__
LAYER_KEYWORDS = frozenset((*LayerOptions.__annotations__, "names"))


def layer_options(caller: str, layer: LayerOptions) -> LayerOptions:
    """``layer``, the keywords the public function ``caller`` took as ``**layer``, with one it does not
    know refused as Python refuses a keyword, naming that function: not :func:`make_layer`, which
    the user did not call.

    >>> layer_options("forward", {"lay_out": "out-in"})
    Traceback (most recent call last):
    ...
    TypeError: forward() got an unexpected keyword argument 'lay_out'; the layer's options are layout, function, temperature
    """
    for key in layer:
        if key not in LAYER_KEYWORDS:
            options = ", ".join(LayerOptions.__annotations__)
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {key!r}; the layer's options are {options}"
            )
    return layer


class Layer(NamedTuple):
    """A softmax layer and its input, checked and put in the post's layout.

    ``W`` is n×K whatever layout it was given in, ``X`` is N×n (one row per sample, N = 1 for a
    single vector) and ``batched`` says whether results keep the sample axis.

    A W with one output (K = 1) is binary logistic regression, as scikit-learn stores a two-class
    model (``coef_`` 1×n): two classes with logits ``[0, z]``, so ``p = [1 − σ(z/T), σ(z/T)]``
    (:attr:`binary`, :func:`class_logits`). A one-class softmax would be 1 whatever z is.
    """

    W: Array
    X: Array
    b: Array | None
    batched: bool
    layout: LayoutName
    function: FunctionName
    temperature: float

    @property
    def n(self) -> int:
        return self.W.shape[0]

    @property
    def K(self) -> int:
        return self.W.shape[1]

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def binary(self) -> bool:
        """One output: binary logistic regression, two classes (see the class's docstring)."""
        return self.W.shape[1] == 1

    @property
    def classes(self) -> int:
        """How many classes the outputs h hold: K, or 2 for a binary layer."""
        return 2 if self.W.shape[1] == 1 else self.W.shape[1]

    def require_samples(self, why: str, instead: str = "") -> None:
        """Refuse an empty batch where a result over its samples has no meaning: ``why`` says what
        (``"there is nothing to check"``), ``instead`` what else would do. Its forward pass and
        Jacobians are empty arrays.

        >>> make_layer(np.ones((2, 3)), np.zeros((0, 2))).require_samples("there is nothing to check")
        Traceback (most recent call last):
        ...
        smjac.errors.InputError: x has no samples (a 0×2 batch): there is nothing to check; give at least one
        """
        if self.N == 0:
            raise InputError(
                f"x has no samples (a 0×{self.n} batch): {why}; give at least one"
                + (f", or {instead}" if instead else "")
            )

    def out(self, a: Array) -> Array:
        """Drop the sample axis of a per-sample result when x was a single vector."""
        return a if self.batched else a[0]

    @property
    def options(self) -> LayerOptions:
        """The choices this layer was made with, to make another one like it:
        ``make_layer(W2, x2, b2, **L.options)``."""
        return {"layout": self.layout, "function": self.function, "temperature": self.temperature}

    def as_given(self, a: Array) -> Array:
        """An n×K array (in-out, as :attr:`W` is kept) in the layout W was given in: ``a`` itself,
        or its transpose (a view) for ``"out-in"``. A transpose is its own inverse, so this also
        brings an array in W's given layout back to in-out.

        This is the one place that knows how the layouts relate; a weight gradient, ``x δᵀ`` in
        in-out, is ``δ xᵀ`` out-in (:meth:`weight_factors` orders its factors so that it is
        written straight in W's layout).

        >>> L = make_layer(np.ones((2, 3)), np.ones(3), layout="out-in")
        >>> L.as_given(L.W).shape
        (2, 3)
        """
        return a if self.layout == "in-out" else a.T

    def weight_factors(self, X: Array, delta: Array) -> tuple[Array, Array]:
        """``(A, B)`` with ``Aᵀ B`` = :meth:`as_given` of ``Xᵀ δ`` (N×n and N×K): dLoss/dW in the
        layout W was given in, made directly in it, without a transposed copy. For one sample
        ``A[0] ⊗ B[0]`` is ``x δᵀ`` (in-out) or ``δ xᵀ`` (out-in)."""
        return (X, delta) if self.layout == "in-out" else (delta, X)


# What a one-output W is read as, said once by the command line (a note), and why its Jacobian of h is refused.
BINARY_READING = (
    "W has one output: read as binary logistic regression (two classes, p = [1 − σ(z), σ(z)]) "
    "as scikit-learn stores it"
)
BINARY_JACOBIAN = (
    "W has one output, read as binary logistic regression (p = [1 − σ(z), σ(z)]), so its Jacobian of h is "
    "ambiguous: of both probabilities (2 rows) or of σ(z) alone (1 row)? smjac does not guess. Give W a first "
    "output of zeros (n×2 in-out, 2×n out-in, and b = [0, b]): softmax([0, z]) is the same p, and row 1 of that "
    "layer's Jacobian is σ(z)'s. Or use of=\"z\" for dz/d…, or grad with a target for the loss gradient"
)


def class_logits(L: Layer, Z: Array) -> Array:
    """The logits of the classes (N×classes): Z itself, or ``[0, z]`` for a binary layer.

    >>> L = make_layer([[2.0]], [1.0])
    >>> class_logits(L, np.array([[2.0]]))
    array([[0., 2.]])
    """
    if not L.binary:
        return Z
    return np.concatenate([np.zeros_like(Z), Z], axis=1)


def make_layer(
    W: ArrayLike,
    x: ArrayLike,
    b: ArrayLike | None = None,
    *,
    layout: LayoutName = "in-out",
    function: FunctionName = "softmax",
    temperature: float = 1.0,
    names: tuple[str, str, str] = _NAMES,
) -> Layer:
    """Check that W, x and b fit together and that x and b are finite, and put them in the post's layout.

    Every public function takes the layer as ``W, x, b`` and the keywords below (``**layer``,
    typed as :class:`LayerOptions`) and hands them here.

    Parameters
    ----------
    W : array_like
        Weights: n×K (``layout="in-out"``, the post's) or K×n (``"out-in"``, PyTorch's).
    x : array_like
        One input (n) or a batch (N×n).
    b : array_like, optional
        Bias, K entries; none by default, as in the post.
    layout : {"in-out", "out-in"}, default "in-out"
        How W is laid out: ``z = Wᵀx + b`` (W n×K) or ``z = Wx + b`` (W K×n).
    function : {"softmax", "log-softmax"}, default "softmax"
        ``h = softmax(z / T)`` or its log.
    temperature : float, default 1
        T > 0; the logits are divided by it, in the layer's dtype, which must hold it (float32
        holds T up to 3.4e38). A number, not a bool.
    names : (str, str, str)
        Label W, x and b in error messages (the command line passes file names): a tuple or list
        of three strings, none empty or blank.

    Returns
    -------
    Layer
        W (n×K whatever layout it was given in), X (N×n), b, and the choices.

    Raises
    ------
    ShapeError
        When a dimension is wrong; the message names the shapes and the fix.
    InputError
        When a value is NaN or infinite or not a real number (complex, text, None), when the
        temperature is 0 or infinite in the layer's dtype, or when an option is not known.

    Notes
    -----
    W is not scanned here (a second full read of the largest input): a NaN or infinity in W is
    refused by the first computation that meets it (see the comment in the body).

    Examples
    --------
    >>> make_layer(np.ones((3, 5)), np.ones(4))
    Traceback (most recent call last):
    ...
    smjac.errors.ShapeError: W has shape (3, 5) but x has 4 entries; with layout="in-out" W is n×K (one row per input), so x needs 3 entries or W 4 rows
    """
    check_choice("layout", layout, LAYOUTS)
    check_choice("function", function, FUNCTIONS)
    temperature = real_number("temperature", temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be a positive number, not {temperature}")
    # a label is what each message calls its array: one of only spaces would leave a message without its subject
    if names is not _NAMES and (  # the default needs no look: a call costs microseconds (small layers)
        not isinstance(names, (tuple, list))
        or len(names) != 3
        or not all(isinstance(v, str) and v.strip() for v in names)
    ):
        raise InputError(f"names must be three labels, for W, x and b, each some text, not {names!r}")
    wn, xn, bn = names
    W, x = as_float(W, wn), as_float(x, xn)
    if W.ndim != 2:
        shape = "n inputs × K outputs" if layout == "in-out" else "K outputs × n inputs"
        swapped = W.ndim == 1 and x.ndim == 2 and x.shape[0] > 1 and W.shape[0] in x.shape
        hint = f"; {wn} and {xn} look swapped: -W takes the matrix, -x the input vector" if swapped else ""
        raise ShapeError(f"{wn} must be a matrix ({shape}) but has shape {W.shape}{hint}")
    if W.size == 0:
        raise ShapeError(f"{wn} is empty (shape {W.shape})")
    Wio = W if layout == "in-out" else W.T
    n, K = Wio.shape
    if x.ndim == 1 or (x.ndim == 2 and x.shape == (n, 1) and n != 1) or (x.ndim == 2 and x.shape[0] == 1):
        X, batched = x.reshape(1, -1), False  # one sample, written as a vector, a row or a column
    elif x.ndim == 2:
        X, batched = x, True
    else:
        raise ShapeError(f"{xn} must be a vector (n) or a batch (N×n) but has shape {x.shape}")
    if X.shape[1] != n:
        entries = f"{X.shape[1]} entries" + (
            f" per sample (shape {x.shape}, read as a batch of {X.shape[0]} samples)" if batched else ""
        )
        other = "out-in" if layout == "in-out" else "in-out"
        if W.shape[layout == "in-out"] == X.shape[1]:  # the other axis would fit
            hint = f'{wn} fits layout="{other}"' + (
                " (K×n, as PyTorch stores nn.Linear)" if other == "out-in" else " (n×K, as in the post)"
            )
        elif layout == "in-out":
            hint = f'with layout="in-out" W is n×K (one row per input), so {xn} needs {n} entries or {wn} {X.shape[1]} rows'
        else:
            hint = f'with layout="out-in" W is K×n (one column per input), so {xn} needs {n} entries or {wn} {X.shape[1]} columns'
        raise ShapeError(f"{wn} has shape {W.shape} but {xn} has {entries}; {hint}")
    if b is not None:
        b = as_float(b, bn)
        if b.ndim == 2 and 1 in b.shape:
            b = b.reshape(-1)
        if b.shape != (K,):
            raise ShapeError(f"{bn} has shape {b.shape} but {wn} has K = {K} outputs; {bn} needs {K} entries")
    # W is not scanned here: a second full read of the largest input would cost a third of a
    # gradient. A non-finite entry of W that reaches z is refused there (layer_logits); one that cannot
    # (multiplied by an x_j of 0, where a BLAS may skip it) changes no result built from z and x,
    # and whatever reads W itself again (dh/dx, dLoss/dx, check) scans it first (check_finite_W). A
    # memory-mapped x is checked chunk by chunk as it is read (grad_chunks, forward_chunks).
    # a small x counted at once (three calls fewer: a call costs microseconds), a large one on the
    # pool, a memory-mapped one chunk by chunk as it is read
    small_x = X.size <= SMALL and type(x) is np.ndarray
    if not (_count(_isfinite(X)) == X.size if small_x else isinstance(x, np.memmap) or all_finite_rows(X, K)):
        raise InputError(f"{xn} holds a NaN or infinite value")
    if b is not None and not isinstance(b, np.memmap) and not all_finite(b):
        raise InputError(f"{bn} holds a NaN or infinite value")
    dtype = W.dtype if X.dtype == W.dtype and b is None else np.result_type(W, X, *([] if b is None else [b]))
    # z/T is computed in the layer's dtype, where a T under 1 may be 0 (float16's least number is 6e-8)
    # and a large one infinite (float32's largest is 3.4e38): z/T would then be 0, h uniform
    if temperature < 1 and dtype.type(temperature) == 0:
        tiny = float(np.finfo(dtype).smallest_subnormal)
        raise InputError(
            f"temperature={temperature:.3g} is 0 in {dtype} (its smallest number is {tiny:.3g}), so z/T "
            f'would divide by zero; use a larger temperature or dtype="float64"'
        )
    if temperature > _NO_OVERFLOW and temperature > largest_float(dtype):
        raise InputError(
            f"temperature={temperature:.6g} overflows {dtype} when cast for dtype={dtype} (its largest value is "
            f"{largest_float(dtype):.3g}); use dtype=float64 or a smaller temperature"
        )
    # the tuple made directly, in the fields' order (W, X, b, batched, layout, function,
    # temperature): keywords cost as much again as the tuple, and the named tuple's own __new__
    # 0.1 µs, on a call of a few microseconds for a small layer
    return _tuple_new(
        Layer,
        (
            Wio if Wio.dtype is dtype else Wio.astype(dtype, copy=False),  # an equal dtype: no copy either
            X if X.dtype is dtype else X.astype(dtype, copy=False),
            b if b is None or b.dtype is dtype else b.astype(dtype, copy=False),
            batched,
            layout,
            function,
            temperature,
        ),
    )
