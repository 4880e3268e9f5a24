"""The library's parameters as the command line spells them: ``layout="out-in"`` → ``--layout out-in``.

The maths, the checks and the readers name their parameters in what they say (errors and notes
alike); every message on its way to a user of the command line goes through :func:`as_flags`.
"""

import ast
import re

from ..errors import shell_word

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
    "method": "--method",
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
    "max_bytes": "--max-input-bytes",  # the readers' name for the input cap
    "W": "-W",
    "x": "-x",
    "b": "-b",
}
# A parameter stands apart: a name within a file name (class_weights.json), a path
# (runs/max_memory), a tensor's dotted name (attn.key), a label's brackets (m.safetensors[key=1])
# or quotes ('max_memory', a name the message quotes) is not one.
_APART = r"(?<![\w./\\'\"`[-])"
# name=value (quoted or not; name= alone is the flag alone) or, for the parameter names no prose
# uses, the name said bare ("class_weights sum to 0"); found in one pass, so that a value
# (key='class_weights') is never taken for a name. A pattern, compiled (and kept by re's cache) on
# the first message: compiling it costs a millisecond of every start, which most runs never use
_PARAMETER = (
    rf"{_APART}(?:(?P<name>{'|'.join(_FLAGS)})=(?:(?P<quoted>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|(?P<word>[^\s,;:.)][^\s,;)]*))?"
    rf"|(?P<bare>{'|'.join(n for n in _FLAGS if '_' in n)})(?![\w'\"`-]|[./\\]\w))"
)


def _flag(m: re.Match[str]) -> str:
    """One parameter as its flag: a value the message quoted (as Python does, ``key='a\\nb'``) is
    quoted for the shell if it needs it (a path with a space, a name with a newline)."""
    if m["bare"] is not None:
        return _FLAGS[m["bare"]]
    flag = _FLAGS[m["name"]]
    if m["quoted"] is not None:
        try:
            value = ast.literal_eval(m["quoted"])
        except (ValueError, SyntaxError):
            value = m["quoted"][1:-1]
        return f"{flag} {shell_word(str(value))}"
    return flag if m["word"] is None else f"{flag} {m['word']}"


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
    >>> as_flags('give it as layer="model.safetensors"; over the budget (max_memory); raise max_bytes=20M')
    'give it as --layer model.safetensors; over the budget (--max-memory); raise --max-input-bytes 20M'
    >>> as_flags("missing W= and x=: give each as a file; give b=FILE for another")
    'missing -W and -x: give each as a file; give -b FILE for another'
    >>> as_flags("m.safetensors: leave out layout=; key='dense 1' is two words")
    "m.safetensors: leave out --layout; --key 'dense 1' is two words"

    Names that are not parameters stay as they are:

    >>> as_flags("class_weights.json: holds NaN; no tensor 'key' in runs/max_memory/m.safetensors")
    "class_weights.json: holds NaN; no tensor 'key' in runs/max_memory/m.safetensors"
    >>> as_flags("pick the layer with key=NAME (e.g. key='class_weights')")
    'pick the layer with --key NAME (e.g. --key class_weights)'
    """
    return re.sub(_PARAMETER, _flag, message)
