"""The library's parameters as the command line spells them: ``layout="out-in"`` → ``--layout out-in``.

The maths, the checks and the readers name their parameters in what they say (errors and notes
alike); every message on its way to a user of the command line goes through :func:`as_flags`.
"""

import re

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
    "probes": "--probes",
    "max_weights": "--max-weights",
    "key": "--key",
    "layer": "--layer",
    "max_memory": "--max-memory",
    "max_input_bytes": "--max-input-bytes",
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
    >>> as_flags("over max_weights=14: check a few with probes=N, or raise max_weights (0: no limit)")
    'over --max-weights 14: check a few with --probes N, or raise --max-weights (0: no limit)'
    >>> as_flags("read with layout=out-in; layout=in-out overrides it; key=NAME picks another")
    'read with --layout out-in; --layout in-out overrides it; --key NAME picks another'
    >>> as_flags('give it as layer="model.safetensors"; over the budget (max_memory); raise max_input_bytes=20M')
    'give it as --layer model.safetensors; over the budget (--max-memory); raise --max-input-bytes 20M'
    """
    flagged = _PARAMETER.sub(
        lambda m: f"{_FLAGS[m[1]]} {next(g for g in m.groups()[1:] if g is not None)}", message
    )
    return _BARE.sub(lambda m: _FLAGS[m[1]], flagged)
