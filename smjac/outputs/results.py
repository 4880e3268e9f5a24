"""Each command's result, as the writer takes it: the data as a document, and how a person sees it.

A builder here takes a checked :class:`~smjac.maths.Layer` and the command's choices, and returns
an :class:`~smjac.outputs.writer.Result` whose data is computed only when the writer asks for it. The
``Shape`` constants say what each result is made of before anything is computed, so the writer
can refuse a format that cannot hold it before any input is read. No maths here: numbers come
from :mod:`smjac.maths` and :mod:`smjac.checking.checks`, labels from :mod:`smjac.outputs.render`.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from typing import Any, overload

import numpy as np

from .. import maths, notation
from ..errors import ExitStatus, InputError
from ..formats.document import Document
from ..formats.table import Format
from .shapes import Result, Shape, View, flat_columns, pick, usable

FORWARD = Shape("the forward pass (z and h)", csv="columns", view="table", picture="bars")
JACOBIAN = Shape("a Jacobian", main="jacobian", extras=(), streams=True)
ENTRY = Shape("one entry", main="value", arrays=True, view="table", documents=(), picture=None)
FACTORS = Shape("the factors", csv=None, view=None, picture=None)
LEGEND = Shape("the legend", csv="records", arrays=False, view="table", documents=(), picture=None)
GRAD = Shape("the gradient", main="grad", extras=("grad_b", "loss"))
GRAD_OF_CHECKPOINT = GRAD._replace(checkpoint=True)
VERIFY = Shape("a verdict", csv=None, arrays=False, view="table", documents=(), picture=None)
DEMO = Shape("the walk-through", csv=None, arrays=False, view="table", documents=(), picture=None)
CHECK = Shape(
    "a check report", csv="records", arrays=False, view="table", documents=(Format.markdown,), picture=None
)


WHAT = {"h": "output", "z": "logit"}  # what a row of a Jacobian of h or of z is, in a picture


class Labels(Sequence[str]):
    """A matrix's row or column labels, each made when it is read: a picture of a Jacobian with
    millions of columns labels a few dozen, and a table a screenful (a list of them all took
    hundreds of MiB)."""

    def __init__(self, count: int, label: Callable[[int], str]):
        self.size, self.label = count, label

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self.label(j) for j in range(*i.indices(self.size))]
        j = operator.index(i)
        if not -self.size <= j < self.size:
            raise IndexError(i)
        return self.label(j % self.size)


def vector_labels(symbol: str, count: int) -> Labels:
    """``h₀, h₁, …`` as :func:`smjac.notation.labels` writes them, made when read."""
    return Labels(count, lambda i: f"{symbol}{notation.sub(i)}")


def weight_labels(K: int, n: int) -> Labels:
    """``w[i,j]`` for column ``i·n + j``, as :func:`smjac.notation.weight_labels` writes them, made when read."""
    return Labels(K * n, lambda c: notation.weight_label(*divmod(c, n))[0])


def column_labels(target: maths.Target, K: int, n: int) -> Labels:
    """What each column of a Jacobian with respect to ``target`` is (``w[i,j]``, ``x₃``), made when read."""
    return Labels(target.columns(K, n), lambda c: notation.column_label(target, c, n)[0])


def _agreed(doc: Document) -> int:
    """A report's exit status: 1 when a check or the user's answer disagrees."""
    return ExitStatus.OK if doc.fields["ok"] else ExitStatus.DISAGREE


def sample_in_range(L: maths.Layer, sample: int) -> None:
    """--sample picks one sample of a batch; refuse one that is not there."""
    if sample < L.N:
        return
    if not L.batched:
        raise InputError(f"--sample {sample} is out of range: x is one sample, so only --sample 0")
    raise InputError(f"--sample {sample} is out of range: the batch has {L.N} samples (0 to {L.N - 1})")


def forward(L: maths.Layer, *, precision: int, sample: int) -> Result:
    from . import render

    name = "h" if L.function == "softmax" else "log h"

    def data(progress: Any) -> Document:
        res = maths.layer_forward(L)
        values = {"z": res.z, "h": res.h}
        return Document(values, columns=flat_columns(values) if L.batched else values)

    def view(doc: Document) -> View:
        notes: list[str] = []
        z, h = pick(doc.fields["z"], L.batched, sample, notes), pick(doc.fields["h"], L.batched, sample, [])
        zt = "z" if L.temperature == 1 else f"z/{L.temperature:g}"
        wx = "Wᵀx" if L.layout == "in-out" else "Wx"
        title = f"z = {wx}{'' if L.b is None else ' + b'}, {name} = {L.function}({zt})"
        if L.binary:  # two classes: class 0's logit is 0, class 1's the layer's one output
            title = f"z = [0, {wx}{'' if L.b is None else ' + b'}], {name} = {L.function}({zt}) (binary)"
        return View(
            np.stack([z, h], axis=1),
            Labels(z.shape[0], str),
            ["z", name],
            title,
            table=lambda: render.forward_table(z, h, precision=precision, h_name=name, title=title),
            notes=notes,
            picture_title=title + (f", sample {sample} of {len(doc.fields['h'])}" if L.batched else ""),
            axes=("output t", "", f"{name}ₜ"),
        )

    return Result(
        FORWARD,
        "the forward pass",
        data,
        view,
        cost=lambda text: maths.estimate_bytes(L, "forward", text=text),
    )


def forward_mapped(L: maths.Layer, X: Any, *, precision: int, sample: int, budget: int) -> Result:
    """The forward pass of a memory-mapped batch: CSV streamed a chunk of rows at a time (the text
    the whole would give); other formats only as far as the budget holds the whole. A chunk's
    work, its text included, is a quarter of the memory ``budget`` at most."""
    from ..formats.text import to_csv

    # Every format computes the same chunks, so a mapped batch's CSV holds the very floats of its
    # JSON or .npz (a product's bits may depend on the rows it is given at once). CSV's text is
    # then made some 2^16 numbers at a time, as fast as larger pieces, and the text of one piece
    # is all that is held beside the chunk; fewer rows where the budget is small.
    most = max(1, min(maths.CHUNK_BYTES, budget // 4))
    text_row = 2 * L.K * maths.TEXT_BYTES_PER_NUMBER
    rows = max(1, min(2**16 // L.K, most // 2 // text_row))
    chunk_bytes = max(1, most - rows * text_row)  # a chunk's work and one piece of its text: most

    def chunks(progress: Any) -> Any:
        for r0, f in maths.forward_chunks(L.as_given(L.W), X, L.b, chunk_bytes=chunk_bytes, **L.options):
            for a in range(0, len(f.z), rows):
                cols = flat_columns({"z": f.z[a : a + rows], "h": f.h[a : a + rows]})
                cols["sample"] = cols["sample"] + r0 + a
                text = to_csv(Document({}, columns=cols))
                yield text if r0 + a == 0 else text.split("\n", 1)[1]
            progress(len(f.z))

    def data(progress: Any) -> Document:
        parts = []
        for r0, f in maths.forward_chunks(L.as_given(L.W), X, L.b, chunk_bytes=chunk_bytes, **L.options):
            parts.append((r0, f))
            progress(len(f.z))
        z = np.concatenate([f.z for _, f in parts])
        h = np.concatenate([f.h for _, f in parts])
        values = {"z": z, "h": h}
        return Document(values, columns=flat_columns(values))

    whole = forward(
        L._replace(X=np.empty((0, L.n), L.W.dtype), batched=True), precision=precision, sample=sample
    )
    mapped = L._replace(X=X, batched=True)  # the shapes the estimate needs; nothing is read
    # streamed, the least a chunk can be is one row: its logits and its text
    row = maths.estimate_bytes(
        L._replace(X=np.empty((1, L.n), L.W.dtype), batched=True), "forward", text="csv"
    )
    return whole._replace(
        data=data, cost=lambda text: maths.estimate_bytes(mapped, "forward", text=text), csv_chunks=chunks,
        stream_cost=lambda fmt, block_bytes: row, work=len(X), unit="samples",
        # CSV is made a chunk of rows at a time, the chunks sized by the budget
        others=[[("stream it as CSV, a chunk of rows at a time: --format csv, or -o F.csv", row)]],
    )  # fmt: skip


def grad_mapped(
    L: maths.Layer,
    X: Any,
    *,
    target: Any,
    upstream: Any,
    reduce: maths.Reduction,
    precision: int,
    budget: int,
    **loss: Any,
) -> Result:
    """The gradient over a memory-mapped batch, summed a chunk of rows at a time: memory stays flat,
    a chunk's work a quarter of the memory ``budget`` at most. ``loss``: the cross-entropy's options."""
    chunk_bytes = max(1, min(maths.CHUNK_BYTES, budget // 4))
    whole = grad(L, target=target, upstream=upstream, reduce=reduce, precision=precision, **loss)

    def data(progress: Any) -> Document:
        res = maths.grad_chunks(
            L.as_given(L.W), X, L.b, target=target, upstream=upstream, reduce=reduce, **loss,
            chunk_bytes=chunk_bytes, progress=progress, **L.options,
        )  # fmt: skip
        fields: dict[str, Any] = {"grad": res.W}
        if L.b is not None:
            fields["grad_b"] = res.b
        fields["loss"] = res.loss
        return Document(fields, matrix="grad")

    # one chunk of rows is worked on at a time; the result is the gradient alone
    r0, r1 = maths.row_chunks(X, chunk_bytes, outputs=L.classes)[0]
    chunk = L._replace(X=X[r0:r1], batched=True)
    return whole._replace(
        data=data,
        cost=lambda text: maths.estimate_bytes(chunk, "grad", text=text),
        work=len(X),
        unit="samples",
    )


def jacobian(L: maths.Layer, *, of: maths.Of, wrt: maths.Wrt, method: maths.Method, sample: int) -> Result:

    shape = maths.jacobian_shape(L, of=of, wrt=wrt)
    target = maths.TARGETS[wrt]
    what = f"d{of}/d{wrt}"

    def data(progress: Any) -> Document:
        J = L.out(maths.layer_jacobian(L, of=of, wrt=wrt, method=method, progress=progress))
        fields = {"of": of, "wrt": wrt, "method": method, "shape": list(J.shape), "jacobian": J}
        return Document(fields, matrix="jacobian")

    def view(doc: Document) -> View:
        notes: list[str] = []
        M = pick(doc.fields["jacobian"], L.batched, sample, notes)
        cols = column_labels(target, L.K, L.n)
        title = f"{what} ({method}), {M.shape[0]}×{M.shape[1]}"
        # a picture says what it draws: the function, the derivative, the method and the sample
        logs = of == "h" and L.function == "log-softmax"
        out, top = ("output log hₜ", "∂(log hₜ)") if logs else (f"{WHAT[of]} {of}ₜ", f"∂{of}ₜ")
        across, var = target.axis, target.variable
        function = L.function if L.temperature == 1 else f"{L.function} at temperature {L.temperature:g}"
        function = "the logits z, before the softmax" if of == "z" else function  # neither applies to z
        how = "" if of == "z" else f", {method} method"
        derivative = f"∂{'(log h)' if logs else of}/∂{wrt}{how}, {M.shape[0]}×{M.shape[1]}"
        batch = f", sample {sample} of {len(doc.fields['jacobian'])}" if L.batched else ""
        return View(
            M, vector_labels(of, L.K), cols, title, notes=notes, groups=L.n if target.factored else None,
            picture_title=f"{function}: {derivative}{batch}", axes=(out, across, f"{top}/∂{var}"),
        )  # fmt: skip

    def blocks(block_bytes: int) -> maths.Blocks:
        return maths.jacobian_blocks(L, of=of, wrt=wrt, method=method, block_bytes=block_bytes)

    def stream_cost(fmt: str, block_bytes: int) -> int:
        text = fmt if fmt == "csv" else False  # .npy blocks are written as they are
        return maths.estimate_bytes(
            L, "streamed", of=of, wrt=wrt, method=method, text=text, block_bytes=block_bytes
        )

    # one entry, in whichever format the refused request asked for: its costliest (a table's)
    entry = max(maths.estimate_bytes(L, "entry", of=of, wrt=wrt, text=f.value) for f in usable(ENTRY))
    others = [[(f"take one entry of it: --entry {target.entry_form.split(' ')[0]}", entry)]]
    if target.factored:  # as JSON, as --format factored writes them, or else in an .npz file
        factored = "take it as its factors, K² + n numbers: --format factored"
        others.insert(0, [(factored, maths.estimate_bytes(L, "factored", of=of, text="json")),
                          (f"{factored} -o F.npz", maths.estimate_bytes(L, "factored", of=of, text="npz"))])  # fmt: skip
    dims = " × ".join(map(str, shape if L.batched else shape[1:]))
    return Result(
        JACOBIAN, f"{what} ({dims} {L.W.dtype})", data, view,
        cost=lambda text: maths.estimate_bytes(L, "jacobian", of=of, wrt=wrt, method=method, text=text),
        work=int(np.prod(shape)) * L.W.dtype.itemsize, blocks=blocks, stream_cost=stream_cost, others=others,
    )  # fmt: skip


def legend(L: maths.Layer, *, wrt: str) -> Result:
    from . import render

    def data(progress: Any) -> Document:  # only once the budget has cleared it: K·n rows of text
        records = [
            {"column": c, "variable": v, "stored_at": w}
            for c, v, w in notation.column_legend(wrt, L.K, L.n, L.layout)
        ]
        return Document({"columns": records}, records=records)

    def view(doc: Document) -> View:
        rows = [(r["column"], r["variable"], r["stored_at"]) for r in doc.fields["columns"]]
        return View(np.zeros((0, 0)), [], [], "legend", table=lambda: render.legend_table(rows, L.layout))

    return Result(
        LEGEND,
        "the legend",
        data,
        view,
        cost=lambda text: maths.estimate_bytes(L, "legend", wrt=wrt, text=text),
    )


def entry(L: maths.Layer, index: Sequence[int], *, of: str, wrt: str, method: str, sample: int) -> Result:
    """One entry of a Jacobian; of a batch, of one sample, which the document and a note name."""
    from . import render

    target = maths.wrt_target(wrt)
    # the layer's dtype, as its Jacobian holds the entry: a float32's own shortest digits
    value = L.W.dtype.type(maths.layer_entry(L, index, of=of, wrt=wrt, method=method, sample=sample))
    column = int(np.ravel_multi_index(index[1:], target.sizes(L.K, L.n)))  # the entry's column
    label = f"∂{of}{notation.sub(index[0])}/∂{notation.column_label(target, column, L.n)[0]}"
    where = {"sample": sample} if L.batched else {}

    def data(progress: Any) -> Document:
        return Document({"entry": np.asarray(index), **where, "value": np.asarray(value)}, matrix="value")

    def view(doc: Document) -> View:
        return View(
            np.array([[value]]), [label], ["value"], label, table=lambda: render.plain(f"{label} = {value!s}")
        )

    return Result(
        ENTRY,
        "one entry",
        data,
        view,
        cost=lambda text: maths.estimate_bytes(L, "entry", of=of, wrt=wrt, text=text),
        # the default sample says how to pick another; one picked is only named
        notes=[
            f"the entry of sample {sample} of {L.N}" + ("; --sample I picks another" if sample == 0 else "")
        ]
        if L.batched
        else [],
    )


def factors(L: maths.Layer, *, of: maths.Of, wrt: str) -> Result:
    if not maths.wrt_target(wrt).factored:
        raise InputError(f"--format factored is for --wrt W; d{of}/d{wrt} is small already")

    def data(progress: Any) -> Document:
        F = maths.layer_factors(L, of=of)
        return Document({"formula": F.formula, "shape": list(F.shape), "A": F.A, "x": F.x})

    def cost(text: str) -> int:
        return maths.estimate_bytes(L, "factored", of=of, text=text)

    return Result(
        FACTORS, "the factors", data, cost=cost, others=[[("write them to a file, -o F.npz", cost("npz"))]]
    )


def _reduced(L: maths.Layer, reduce: str, target: Any, loss: dict[str, Any]) -> str:
    """How a batch's loss was combined, as its caption says: the reduction and the loss's options."""
    parts = [f"{reduce} over {L.N} samples"]
    if "ignore_index" in loss and target is not None:
        ignored = int(np.count_nonzero(np.asarray(target).reshape(-1) == loss["ignore_index"]))
        ignored = L.N if ignored and np.size(target) == 1 else ignored  # one target for every sample
        parts[0] = f"{reduce} over {L.N - ignored} of {L.N} samples, {ignored} ignored"
    if "class_weights" in loss:
        parts.append("weighted by class" + (", divided by the targets' weights" if reduce == "mean" else ""))
    if loss.get("label_smoothing"):
        parts.append(f"label smoothing {loss['label_smoothing']:g}")
    return ", ".join(parts)


def grad(
    L: maths.Layer,
    *,
    target: Any,
    upstream: Any,
    reduce: maths.Reduction,
    precision: int,
    checkpoint: Any = None,
    **options: Any,
) -> Result:
    """The gradient; ``options`` holds the cross-entropy's options (class_weights, ignore_index,
    label_smoothing), those given only."""

    notes = []
    if upstream is not None and L.function == "softmax" and maths.constant_upstream(upstream):
        notes.append(
            "note: the gradient is zero because upstream is the same for every output: each column "
            "of dh/dW sums to 0 (h always sums to 1), so summing the columns, as the post ends by "
            "suggesting, changes nothing. Use --target K or a real dLoss/dh."
        )

    def data(progress: Any) -> Document:
        res = maths.layer_grad(L, target=target, upstream=upstream, reduce=reduce, **options)
        fields: dict[str, Any] = {"grad": res.W}
        if L.b is not None:
            fields["grad_b"] = res.b
        fields["loss"] = res.loss
        return Document(fields, matrix="grad")

    def view(doc: Document) -> View:
        G, loss = doc.fields["grad"], doc.fields["loss"]
        rows, cols = ("x", "z") if L.layout == "in-out" else ("z", "x")
        where = "rows: inputs, columns: outputs" if L.layout == "in-out" else "rows: outputs, columns: inputs"
        # one sample: sum and mean agree (unless its weight divides the mean)
        how = f" ({_reduced(L, reduce, target, options)})" if L.batched or "class_weights" in options else ""
        caption = where if loss is None else f"{where}\nloss{how} = {loss:.{precision}f}"
        return View(
            G,
            vector_labels(rows, G.shape[0]),
            vector_labels(cols, G.shape[1]),
            "dLoss/dW, in W's shape",
            caption=caption,
            picture_title=f"{L.function}: ∂Loss/∂W, in W's shape (layout {L.layout}), "
            + (
                "from the upstream dLoss/dh given"
                if loss is None
                else f"cross-entropy{how.replace(' (', ', ').rstrip(')')}, loss = {loss:.4g}"
            ),
            axes=("input xⱼ", "output zᵢ", "∂Loss/∂W[j,i]")
            if L.layout == "in-out"
            else ("output zᵢ", "input xⱼ", "∂Loss/∂W[i,j]"),
            shows=("loss",),
        )

    if checkpoint is not None and L.b is not None and checkpoint.bias_key is None:
        notes.append(
            f"note: {checkpoint.label} has no bias tensor, so a .safetensors gradient holds "
            f"{checkpoint.gradient_key}'s only; dLoss/db, of the bias given, is kept by .json or .npz"
        )

    def as_checkpoint(doc: Document) -> bytes:
        from ..formats.checkpoints import gradient_bytes

        G = doc.fields["grad"]
        # in W's shape as the layer reads it; the file holds it as the checkpoint stores W
        stored = L._replace(layout=checkpoint.layout).as_given(L.as_given(G))  # by way of in-out
        return gradient_bytes(
            checkpoint, stored, doc.fields.get("grad_b"), metadata=_loss_metadata(doc.fields["loss"])
        )

    def _loss_metadata(loss: float | None) -> dict[str, str]:
        """What the gradient is of, as safetensors' ``__metadata__`` holds it: strings only."""
        meta = {"gradient": "dLoss/dW", "reduction": reduce, "samples": str(L.N)}
        if L.batched or options:
            meta["combined"] = _reduced(L, reduce, target, options)
        if loss is None:
            meta["loss"] = "none: the gradient is of an upstream dLoss/dh"
            return meta
        meta["loss"] = repr(float(loss))  # the shortest text that reads back as the same float
        meta["loss_function"] = "cross-entropy"
        t = np.asarray(target).reshape(-1)
        meta["target"] = json.dumps(t.tolist()) if t.size <= 32 else f"{t.size:,} targets, one per sample"
        return meta

    return Result(
        GRAD if checkpoint is None else GRAD_OF_CHECKPOINT,
        "the gradient",
        data,
        view,
        cost=lambda text: maths.estimate_bytes(L, "grad", text=text),
        notes=notes,
        checkpoint=None if checkpoint is None else as_checkpoint,
    )


def check(
    L: maths.Layer, *, rtol: float | None, atol: float | None, probes: int | None, seed: int, **loss: Any
) -> Result:
    """The check report; ``loss`` holds a target, its reduction and the cross-entropy's options."""
    from ..checking.checks import check_passes, layer_check
    from ..checking.tolerances import CHECK_ATOL
    from . import render

    reports: list[Any] = []

    def data(progress: Any) -> Document:
        report = layer_check(
            L, rtol=rtol, atol=CHECK_ATOL if atol is None else atol, probes=probes, seed=seed,
            progress=progress, **loss,
        )  # fmt: skip
        reports.append(report)
        fields = report.to_dict()  # JSON: schema, and each check's stable id
        records = [
            {k: v for k, v in c.items() if k != "id"} for c in fields["checks"]
        ]  # CSV's columns as before
        if any("sample" in r for r in records):  # a check of the whole batch has no sample: empty cells
            records = [{"sample": "", "failed": [], **r} for r in records]
            records = [
                {k: r[k] for k in ("name", "max_error", "tolerance", "ok", "sample", "failed")}
                for r in records
            ]
        return Document(fields, records=records)

    def view(doc: Document) -> View:
        report = reports[-1]
        M = np.array([[c.max_error, c.tolerance] for c in report.checks])
        names = [c.name for c in report.checks]
        return View(M, names, ["max error", "tolerance"], "checks", table=lambda: render.check_table(report))

    return Result(
        CHECK, "a check report", data, view, status=_agreed,
        cost=lambda text: maths.estimate_bytes(L, "check", probes=probes, text=text),
        work=check_passes(L, probes, target=loss.get("target") is not None), unit="forward passes",
    )  # fmt: skip


def demo(*, precision: int, width: int) -> Result:
    from rich.console import Group

    from . import demo as walkthrough

    def view(doc: Document) -> View:
        parts = walkthrough.renderables(width, precision)
        return View(np.zeros((0, 0)), [], [], "the post", table=lambda: Group(*parts))

    return Result(DEMO, "the walk-through", lambda progress: Document({}), view)


def verify(L: maths.Layer, answer: Any, **how: Any) -> Result:
    """The verdict on a user's own derivative; exit status 1 when it disagrees."""
    from ..checking.verification import layer_verify
    from . import render

    verdicts: list[Any] = []

    def data(progress: Any) -> Document:  # in the writer's hands: a long comparison shows a spinner
        verdicts.append(layer_verify(L, answer, **how))
        return Document(verdicts[-1].to_dict())

    def view(doc: Document) -> View:
        return View(np.zeros((0, 0)), [], [], "verdict", table=lambda: render.plain(str(verdicts[-1])))

    return Result(VERIFY, "a verdict", data, view, status=_agreed)


# What each command's result is, as the options select it: the rows of the options matrix.
COMMANDS = {
    "forward": FORWARD,
    "jacobian": JACOBIAN,
    "jacobian --entry": ENTRY,
    "jacobian --format factored": FACTORS,
    "jacobian --legend": LEGEND,
    "grad": GRAD,
    "grad --layer CHECKPOINT": GRAD_OF_CHECKPOINT,
    "check": CHECK,
    "verify": VERIFY,
}


def options_matrix() -> str:
    """The Markdown table of command × format → what happens, as the writer decides it."""
    from .shapes import left_out, refusal

    fmts = [f for f in Format if f.printable] + [f for f in Format if f.suffix and not f.printable]
    head = ["result"] + [f"`-f {f.value}`" if f.printable else f"`-o {f.suffix}`" for f in fmts]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, shape in COMMANDS.items():
        cells = []
        for f in fmts:
            if refusal(f, shape) is not None:
                cells.append("refused")
            elif left_out(f, shape):
                cells.append(f"{shape.main} only, note")
            elif shape.streams and f in (Format.csv, Format.npy):
                cells.append("streamed")
            else:
                cells.append("yes")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
