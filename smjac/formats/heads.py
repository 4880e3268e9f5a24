"""Which layer of a model is its softmax head: the candidates, how likely each is, and the choice.

Pure logic on names and shapes, no files. A checkpoint reader lists its 2-D float tensors as
:class:`Candidate` layers, with what the model's own config says (:class:`Hints`: how many labels
or tokens the head has, whether it is a language model); :func:`choose` picks the head the way the
architectures name it (``classifier``, ``score``, ``lm_head``, ``head``, ``fc``, ``out``, …),
checked against that size, and says why; when it cannot be sure it refuses with the likeliest
candidates, a few lines however large the model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LoadError, shell_word, shown

if TYPE_CHECKING:
    from ..maths.layer import LayoutName

# How architectures name the layer that makes the logits, likeliest first. A name counts when it
# is a component of the layer's name before any block number: `classifier`, `classifier.out_proj`
# (RoBERTa), `classifier.6` (VGG), `head.fc`; not `model.layers.3.mlp.fc` (inside block 3).
HEAD_WORDS = (
    "classifier",
    "score",
    "lm_head",
    "head",
    "fc",
    "out",
    "output",
    "logits",
    "predictions",
    "embed_out",
    "output_layer",
)
# The input embedding a language model's head is tied to (GPT-2's wte, Llama's embed_tokens, …).
EMBEDDINGS = ("wte", "embed_tokens", "word_embeddings", "tok_embeddings", "embed_in", "shared")
SHOWN = 10  # candidates an error lists; the rest are counted


@dataclass(frozen=True)
class Candidate:
    """A layer that could be the head: a 2-D float weight, its bias, and how to name it.

    ``key`` is what ``key`` takes (``classifier``, ``lm_head``, a Keras layer's name);
    ``weight_key`` and ``bias_key`` are the tensors' names in the file (for a tied head, the
    embedding's). ``shape`` is as stored, in the framework's ``layout``. ``stored`` is a Keras
    layer's name in the weights store when it differs from ``key``; ``order`` its place in the
    model (or the file); ``keras`` says it is a Keras layer (for messages).
    """

    key: str
    weight_key: str
    shape: tuple[int, int]
    dtype: str
    bias_key: str | None = None
    bias_shape: tuple[int, ...] | None = None
    bias_dtype: str | None = None
    layout: LayoutName = "out-in"
    tied_to: str | None = None
    stored: str | None = None
    order: int = 0
    keras: bool = False

    @property
    def outputs(self) -> int:
        """K, the number of logits it makes."""
        return self.shape[0] if self.layout == "out-in" else self.shape[1]

    @property
    def inputs(self) -> int:
        """n, the length of the x it takes."""
        return self.shape[1] if self.layout == "out-in" else self.shape[0]

    def describe(self) -> str:
        """``classifier.weight (4×6 F32)``; a Keras layer ``classifier (stored as dense_1, kernel 6×4 float32, with bias)``.

        Examples
        --------
        >>> Candidate("lm_head", "wte.weight", (50, 8), "F32", tied_to="wte.weight").describe()
        'lm_head, tied to wte.weight (50×8 F32)'
        """
        dims = "×".join(map(str, self.shape))
        if self.keras:
            also = f"stored as {shown(self.stored)}, " if self.stored else ""
            bias = "with bias" if self.bias_key else "no bias"
            return (
                f"{shown(self.key)} ({also}kernel {dims} {NUMPY_NAMES.get(self.dtype, self.dtype)}, {bias})"
            )
        if self.tied_to:
            return f"{shown(self.key)}, tied to {shown(self.tied_to)} ({dims} {self.dtype})"
        return f"{shown(self.weight_key)} ({dims} {self.dtype})"


NUMPY_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}


@dataclass(frozen=True)
class Hints:
    """What a model's config says about its head.

    ``outputs``: the K it must have (``len(id2label)`` for a classifier, ``vocab_size`` for a
    language model), with ``why`` saying so in words; ``lm``: the architecture is a language model.
    """

    outputs: int | None = None
    why: str = ""
    lm: bool = False


def head_rank(key: str) -> int | None:
    """How likely a layer's name makes it the head: the index of its head word, or None.

    Examples
    --------
    >>> head_rank("classifier"), head_rank("classifier.out_proj"), head_rank("pre_classifier")
    (0, 0, None)
    >>> head_rank("model.layers.3.mlp.fc"), head_rank("score"), head_rank("classifier.6")
    (None, 1, 0)
    """
    found: int | None = None
    for part in key.replace("/", ".").split("."):
        if part.isdigit():  # a block of the body: whatever it holds is not the model's head
            break
        if part in HEAD_WORDS:
            rank = HEAD_WORDS.index(part)
            found = rank if found is None else min(found, rank)
    return found


def is_embedding(key: str) -> bool:
    """Whether a layer is named as a language model's input embedding (``transformer.wte``).

    Examples
    --------
    >>> is_embedding("transformer.wte"), is_embedding("model.embed_tokens"), is_embedding("lm_head")
    (True, True, False)
    """
    parts = key.split(".")
    return parts[-1] in EMBEDDINGS and not any(p.isdigit() for p in parts)


def likeliest(candidates: Sequence[Candidate], hints: Hints) -> list[Candidate]:
    """The candidates, likeliest head first: named as a head, of the size the config says,
    the last of a chain of head layers, outside the body's numbered blocks, shallow, early."""
    ends = set(map(id, chain_ends(candidates)))

    def score(c: Candidate) -> tuple[bool, int, bool, bool, bool, int, int]:
        rank = head_rank(c.key)
        return (
            rank is None,
            rank if rank is not None else 0,
            hints.outputs is not None and c.outputs != hints.outputs,
            id(c) not in ends,
            any(p.isdigit() for p in c.key.replace("/", ".").split(".")),
            c.key.count("."),
            c.order,
        )

    return sorted(candidates, key=score)


def chain_ends(pool: Sequence[Candidate]) -> list[Candidate]:
    """The layers whose outputs no other layer of ``pool`` takes as inputs: the end of a head
    made of several (RoBERTa's ``classifier.dense`` then ``classifier.out_proj``)."""
    takes = Counter(
        d.inputs for d in pool
    )  # counted once: a model of 50,000 layers is 50,000 steps, not 2.5e9
    return [c for c in pool if takes[c.outputs] == (c.inputs == c.outputs)]


def listing(candidates: Sequence[Candidate], hints: Hints, *, label: str | None = None) -> str:
    """The likeliest candidates, one per line, and how many more there are (and, given the
    checkpoint's ``label``, the command that lists them all)."""
    ranked = likeliest(candidates, hints)
    lines = [f"  {c.describe()}" for c in ranked[:SHOWN]]
    if len(ranked) > SHOWN:
        lines.append(
            f"  and {len(ranked) - SHOWN} more"
            + (f": smjac inspect {shell_word(label)} lists them all" if label else "")
        )
    return "\n".join(lines) or "  none"


def refusal(label: str, why: str, candidates: Sequence[Candidate], hints: Hints) -> LoadError:
    """The error for a head that cannot be chosen: why, what to do, the likeliest candidates."""
    ranked = likeliest(candidates, hints)
    example = f" (e.g. key={ranked[0].key!r})" if ranked else ""
    return LoadError(
        f"{label}: {why}; pick the layer with key=NAME{example}. The likeliest of its {len(ranked)} "
        f"layers:\n{listing(ranked, hints, label=label)}"
    )


def choose(
    candidates: Sequence[Candidate], hints: Hints, label: str, *, only: str = "2-D tensor"
) -> tuple[Candidate, str]:
    """The head, and a note saying which it took and why; a :class:`LoadError` when unsure.

    The only candidate is taken. Otherwise the layers named as heads are (HEAD_WORDS, the best
    name first), narrowed to those whose outputs match ``hints.outputs`` when the config says how
    many, then to the end of their chain; with no such name, the one layer of that size. For a
    Keras model (``only="Dense-like layer"``) the model's last Dense layer is the fallback.

    Examples
    --------
    >>> pre = Candidate("pre_classifier", "pre_classifier.weight", (8, 8), "F32")
    >>> cls = Candidate("classifier", "classifier.weight", (2, 8), "F32")
    >>> choose([pre, cls], Hints(2, "config.json's id2label (2 labels)"), "m")[0].key
    'classifier'
    """
    if not candidates:
        raise refusal(label, f"no float {'matrix' if only == '2-D tensor' else only}", [], hints)
    K = hints.outputs
    if len(candidates) == 1:
        c = candidates[0]
        note = f"{label}: using {c.describe()}, its only {only}"
        if K is not None and c.outputs != K:
            note += f", though it has {c.outputs} outputs and {hints.why} says {K}"
        return c, note
    named = [c for c in candidates if head_rank(c.key) is not None]
    if K is not None:
        pool = [c for c in named if c.outputs == K]
        why = f"its name says so, and its {K} outputs match {hints.why}"
        if not named:
            pool = [c for c in candidates if c.outputs == K]
            why = f"the only layer with {K} outputs, as {hints.why} says"
        elif not pool:
            outputs = ", ".join(f"{shown(c.key)} has {c.outputs}" for c in named[:3])
            raise refusal(
                label, f"{hints.why} says the head has {K} outputs, but {outputs}", candidates, hints
            )
    else:
        best = min((r for c in named if (r := head_rank(c.key)) is not None), default=None)
        pool = [c for c in named if head_rank(c.key) == best]
        why = "its name says so"
    if len(pool) > 1:
        pool = chain_ends(pool) or pool
        why += ", and it ends the chain of layers so named"
    if len(pool) == 1:
        c = pool[0]
        return c, f"{label}: using {c.describe()} as the head: {why}; key=NAME picks another"
    if only != "2-D tensor" and not named:
        last = max(candidates, key=lambda c: c.order)
        return last, f"{label}: using {last.describe()}, the model's last {only}; key=NAME picks another"
    what = "several layers could be the head" if pool or named else "no layer is named as a head"
    if K is not None and not pool:
        what += f" or has the {K} outputs {hints.why} says"
    raise refusal(label, what, candidates, hints)
