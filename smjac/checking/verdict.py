"""The result of :func:`smjac.verify`: a :class:`Verdict`, its JSON form and its plain-text report.

Entries are named in the model's terms: ``∂h₂/∂w[1,0]`` is the derivative of output 2 with respect
to the weight joining input 0 to output 1, stored at ``W[0,1]`` in the post's layout (in-out) and
at ``W[1,0]`` in PyTorch's (out-in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..maths import TARGETS
from ..notation import column_label, sub, to_ascii, weight_label
from .problem import weight_at

if TYPE_CHECKING:
    from .problem import Problem


def derivative_name(pr: Problem) -> str:
    """What is verified, in the post's notation: ``dh/dW``, ``dz/dx``, ``dL/dW``, ``dL/db``."""
    if pr.kind == "grad":
        return "dL/dW"
    if pr.kind == "grad_b":
        return "dL/db"
    return f"d{pr.of}/d{pr.wrt}"


def entry_name(pr: Problem, r: int, c: int, sample: int | None = None) -> tuple[str, str]:
    """The name of entry (r, c) of the standard per-sample matrix, and where its variable is stored.

    >>> from smjac.checking.problem import Problem
    >>> from smjac import make_layer
    >>> pr = Problem(make_layer(np.ones((2, 3)), np.ones(2)), "jacobian")
    >>> entry_name(pr, 2, 1 * 2 + 0)
    ('∂h₂/∂w[1,0]', 'W[0,1]')
    """
    L = pr.L
    if pr.kind == "grad_b":
        return f"∂L/∂b{sub(c)}", f"b[{c}]"
    if pr.kind == "grad":  # (r, c) of W as given
        i, j = weight_at(L, r, c)
        name, stored = weight_label(int(i), int(j), L.layout)
        return f"∂L/∂{name}", stored
    name, stored = column_label(pr.wrt_target, c, L.n, L.layout, sample)
    return f"∂{pr.of}{sub(r)}/∂{name}", stored


def describe_shape(pr: Problem, shape: tuple[int, ...]) -> str:
    """What an array of this shape would be for this layer, or "" when nothing is.

    >>> from smjac.checking.problem import Problem
    >>> from smjac import make_layer
    >>> pr = Problem(make_layer(np.ones((3, 5)), np.ones(3)), "grad")
    >>> describe_shape(pr, (5, 15))
    'dh/dW for one sample (K × K·n: one row per output, one column per weight w[i,j] at i·n + j)'
    """
    L = pr.L
    K, n, N = L.K, L.n, L.N
    known: dict[tuple[int, ...], str] = {}

    def add(s: tuple[int, ...], what: str) -> None:
        known.setdefault(s, what)

    jac = "one row per output, one column per"
    add((K, K * n), f"dh/dW for one sample (K × K·n: {jac} weight w[i,j] at i·n + j)")
    add((K * n, K), "dh/dW transposed (K·n × K, as the post prints it)")
    grad_io, grad_oi = "dL/dW in the post's layout (n × K)", "dL/dW in PyTorch's layout (K × n)"
    if pr.kind == "grad":
        add(L.as_given(L.W).shape, {"in-out": grad_io, "out-in": grad_oi}[L.layout])
    add((K, n), f"dh/dx for one sample (K × n: {jac} input) or {grad_oi}")
    add((n, K), f"{grad_io}, or dh/dx transposed")
    add((K, K), "dh/dz or dh/db for one sample (K × K)")
    add((K,), "dL/db or dL/dz for one sample (K entries)")
    add((n,), "dL/dx for one sample (n entries)")
    add((K * n,), "a gradient or one row of dh/dW, flattened (K·n entries)")
    if L.batched:
        add((N, K, K * n), "dh/dW for each sample (N × K × K·n)")
        add((N, K, n), "dh/dx for each sample (N × K × n)")
        add((N, K, K), "dh/dz or dh/db for each sample (N × K × K)")
        add((N, K), "dL/dz for each sample (N × K)")
        add(
            (N * K, N * K * n),
            "the block-diagonal Jacobian of the whole batch (N·K × N·K·n); give N × K × K·n",
        )
        add((N * K, N * K), "the block-diagonal dh/dz of the whole batch (N·K × N·K); give N × K × K")
    for target in TARGETS.values():  # a target not named above: its Jacobian's shape, plainly
        cols, across = target.columns(K, n), "·".join(target.shape) or "1"
        add((K, cols), f"dh/d{target.name} for one sample (K × {across})")
        if L.batched:
            add((N, K, cols), f"dh/d{target.name} for each sample (N × K × {across})")
    return known.get(tuple(shape), "")


SCHEMA = 1
"""The version of the JSON documents ``smjac verify`` and ``smjac check`` write; it grows when a field
changes meaning or goes, not when one is added."""

_ARRANGEMENTS = {
    "T": "transposed",
    "co": "in j·K + i column order",
    "T+co": "transposed and in j·K + i column order",
}


@dataclass(frozen=True)
class Diagnosis:
    """A catalogue mistake the answer matches: its id, the evidence and details, and the fix."""

    mistake: str
    detail: str
    fix: str


@dataclass(frozen=True)
class Entry:
    """One of the worst entries: its name, where its variable is stored, its index in the answer."""

    name: str
    stored: str
    index: tuple[int, ...]
    sample: int | None
    yours: float
    true: float
    error: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stored": self.stored,
            "index": list(self.index),
            "sample": self.sample,
            "yours": _json_float(self.yours),
            "true": _json_float(self.true),
            "error": _json_float(self.error),
        }


def _json_float(v: float | None) -> float | None:
    """JSON has no NaN or inf: they become null (the answer's non-finite entries are counted)."""
    return None if v is None or not np.isfinite(v) else float(v)


@dataclass(frozen=True)
class Verdict:
    """Whether the answer agrees with the truth, where it does not, and which mistake it matches.

    ``error`` holds ``max_abs = max|a − r|``, ``max_rel = max_abs / max|r|`` (0 when both are 0),
    and the ``rtol`` and ``atol`` it was held to: ``ok`` when ``max_abs ≤ atol + rtol·max|r|``.
    ``outside`` counts the entries beyond that bound (NaN included), ``where`` counts them by
    output, by W's row and column (as stored), in the diagonal (t = i) or off-diagonal blocks, and
    by sample. ``errors`` is ``answer − truth`` for one sample (the worst, ``errors_sample``), in
    the standard arrangement (rows = outputs), for a heatmap; None past 4M entries.
    """

    ok: bool
    kind: str
    what: str
    shape: tuple[int, ...]
    expected: tuple[int, ...]
    max_abs: float | None
    max_rel: float | None
    rtol: float
    atol: float
    scale: float
    outside: int
    size: int
    worst: tuple[Entry, ...]
    diagnosis: tuple[Diagnosis, ...]
    where: dict[str, Any] = field(default_factory=dict)
    errors: np.ndarray | None = field(default=None, repr=False)
    errors_sample: int | None = None
    frame: str = "std"
    notes: tuple[str, ...] = ()

    @property
    def error(self) -> dict[str, float | None]:
        return {
            "max_abs": _json_float(self.max_abs),
            "max_rel": _json_float(self.max_rel),
            "rtol": self.rtol,
            "atol": self.atol,
        }

    @property
    def tolerance(self) -> float:
        """``atol + rtol·max|r|``, the bound ``max_abs`` is held to."""
        return self.atol + self.rtol * self.scale

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``smjac verify``: schema, ok, kind, error, outside, worst, diagnosis, notes.

        ``schema`` is :data:`SCHEMA`; each diagnosis's ``mistake`` is a stable id of the catalogue,
        in the order the mistakes were made (arrangement, value, factors), for a script to match on.
        """
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "kind": self.kind,
            "error": self.error,
            "outside": self.outside,
            "worst": [e.to_dict() for e in self.worst],
            "diagnosis": [{"mistake": d.mistake, "detail": d.detail, "fix": d.fix} for d in self.diagnosis],
            "notes": list(self.notes),
        }

    def report(self, *, ascii: bool = False) -> str:
        """The readable report; ``ascii=True`` spells ∂h₂ as dh_2, − as -, and so on."""
        head = f"{self.what} {'agrees' if self.ok else 'DISAGREES'}: answer of shape {self.shape}"
        how = _ARRANGEMENTS.get(self.frame)
        if how:  # the shape already says it: the first line does too
            head += f" is {how} (expected {self.expected})"
            if self.outside == 0:
                head += f"; its entries are the truth's, {how}"
        lines = [head]
        if self.max_abs is None:
            lines.append(f"  expected shape {self.expected}")
        else:
            bound = f"atol + rtol·max|r| = {self.atol:.3g} + {self.rtol:.3g} × {self.scale:.6g} = {self.tolerance:.3g}"
            rel = (
                ""
                if self.max_rel is None or not np.isfinite(self.max_rel)
                else f" (relative {self.max_rel:.3g})"
            )
            sign = "≤" if self.max_abs <= self.tolerance else ">"
            against = f" against the truth {how}" if how else ""
            lines.append(f"  error{against}: max|a − r| = {self.max_abs:.3g}{rel} {sign} {bound}")
            so = f", compared {how}" if how else ""
            lines.append(f"  outside the tolerance{so}: {self.outside:,} of {self.size:,} entries")
        if self.outside and self.where:
            lines.extend(f"  {line}" for line in self._where_lines())
        if self.worst:
            lines.append("  worst entries:")
            for e in self.worst:
                at = f"sample {e.sample}, " if e.sample is not None else ""
                lines.append(
                    f"    {at}{e.name} (stored at {e.stored}; answer{list(e.index)}): "
                    f"yours {e.yours:.6g}, true {e.true:.6g}"
                )
        lines.extend(f"  note: {n}" for n in self.notes)
        if not self.ok:
            if self.diagnosis:
                lines.append("  diagnosis:")
                for d in self.diagnosis:
                    lines.append(f"    {d.mistake}: {d.detail}")
                    lines.append(f"      fix: {d.fix}")
            else:
                lines.append(
                    "  diagnosis: no known mistake matches this answer; the errors sit as shown above"
                )
        text = "\n".join(lines)
        return to_ascii(text) if ascii else text

    def _where_lines(self) -> list[str]:
        def counts(name: str, label: str, vals: list[int]) -> str:
            nz = [f"{label.format(i)} {v}" for i, v in enumerate(vals) if v]
            return f"{name}: " + (", ".join(nz[:12]) + (" …" if len(nz) > 12 else "") if nz else "none")

        w, out = self.where, []
        if "by_output" in w:
            out.append(counts("by output", "output {}", w["by_output"]))
        if "by_W_row" in w:
            out.append(counts("by row of W", "W[{},:]", w["by_W_row"]))
            out.append(counts("by column of W", "W[:,{}]", w["by_W_column"]))
        if "diagonal_blocks" in w:
            out.append(
                f"diagonal blocks (t = i): {w['diagonal_blocks']}, off-diagonal: {w['off_diagonal_blocks']}"
            )
        if "by_sample" in w:
            out.append(counts("by sample", "sample {}", w["by_sample"]))
        return out

    def __str__(self) -> str:
        return self.report()
