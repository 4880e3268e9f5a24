"""One pass over the answer: each block against the truth and against every candidate mistake.

A :class:`Trial` is one candidate in one arrangement, ruled out by the first block that puts an
entry beyond its tolerance (:class:`Dots` often rules it out from inner products alone, without
a pass of its own); :class:`Stats` gathers everything the report says of the answer's errors
against the truth. :func:`compare` reads the answer a block of rows at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..maths import Array, row_blocks
from ..maths.forward_pass import release_rows
from .problem import Problem, weight_at
from .sources import Source, frame_block, std_from_frame, to_std

WORST = 5
ERRORS_MAX = 2**22  # entries of the error matrix kept for a heatmap (32 MiB); larger ones are not kept


def fit(a: Array, b: Array) -> float | None:
    """The c minimising ‖a − c·b‖, or None while b is all zero (a later block decides)."""
    # scaled by the largest |b| first, so that numbers near the float limit do not overflow the sums
    m = float(np.max(np.abs(b))) if b.size else 0.0
    if not m > 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        t, u = b.ravel() / m, a.ravel() / m
        c = float(np.dot(u, t)) / float(np.dot(t, t))
    return c if np.isfinite(c) else None


class Dots:
    """Inner products of one block of the answer with its candidates' blocks, each taken once.

    ``‖a − f·b − λ·d‖² = a·a − 2f a·b + f² b·b − 2λ a·d + 2fλ b·d + λ² d·d`` rules a candidate out
    without a pass of its own: where it exceeds ``m·tol²`` (m entries), some entry is off by more
    than tol. Only a clear excess counts (the sum's rounding is allowed for), and where a product
    is not finite the candidate is compared entry by entry as before.
    """

    ANSWER = 0

    def __init__(self, a: Array) -> None:
        self.flat = {self.ANSWER: a.ravel()}
        self.cache: dict[tuple[int, int], float] = {}

    def block(self, src: Source, where: tuple[str, int, int, int, int, int, int]) -> Array:
        """The candidate's block in this arrangement, made once however many factors try it."""
        key = id(src)
        if key not in self.flat:
            self.flat[key] = np.asarray(frame_block(src, *where), dtype=np.float64).ravel()
        return self.flat[key].reshape(self.flat[self.ANSWER].size // where[4], where[4])

    def drop(self, src: Source) -> None:
        """Let go of a candidate's block once every trial on it is done: one is held at a time."""
        self.flat.pop(id(src), None)

    def dot(self, i: int, j: int) -> float:
        key = (min(i, j), max(i, j))
        if key not in self.cache:
            with np.errstate(over="ignore", invalid="ignore"):
                self.cache[key] = float(np.dot(self.flat[key[0]], self.flat[key[1]]))
        return self.cache[key]

    def too_far(self, kb: int, f: float, kd: int, lam: float, tol: float) -> bool:
        a, m = self.ANSWER, self.flat[self.ANSWER].size
        terms = [self.dot(a, a), -2 * f * self.dot(a, kb), f * f * self.dot(kb, kb)]
        if lam:
            terms += [
                -2 * lam * self.dot(a, kd),
                2 * f * lam * self.dot(kb, kd),
                lam * lam * self.dot(kd, kd),
            ]
        with np.errstate(over="ignore", invalid="ignore"):
            sse, size = sum(terms), sum(abs(t) for t in terms)
            bound = m * tol * tol
        if not (np.isfinite(size) and np.isfinite(bound)):
            return False
        return sse - 1e-8 * size > bound


@dataclass
class Trial:
    """The answer against one candidate in one arrangement: ``factor·base + coef·term``.

    ``base`` is the truth (None) or a mistake's own answer; ``factor`` is fixed, or fitted from the
    first block where the base is not zero (``fit``: the ``scale`` mistake); ``term`` is a direction
    whose coefficient is fitted the same way (``l2-term``'s W). The tolerance is the truth's own,
    ``atol + rtol·max|candidate|``, known once the fitted numbers are.
    """

    ids: tuple[str, ...]
    details: tuple[str, ...]
    fixes: tuple[str | None, ...]
    frame: str
    base: Source | None
    base_max: float
    factor: float | None = 1.0
    fit: bool = False
    term: Source | None = None
    term_max: float = 0.0
    coef: float | None = None
    atol: float = 0.0
    rtol: float = 0.0
    unit_tol: float = 0.0  # the truth's tolerance: a fitted number that moves the answer less is no mistake
    notes: tuple[str, ...] = ()  # said when this candidate matches a right answer
    residual: float = 0.0
    alive: bool = True

    @property
    def tol(self) -> float:
        size = abs(self.factor or 0.0) * self.base_max + abs(self.coef or 0.0) * self.term_max
        return self.atol + self.rtol * size

    @property
    def known(self) -> bool:
        return self.factor is not None and (self.term is None or self.coef is not None)

    def update(self, a: Array, b: Array, d: Array | None, dots: Dots, kb: int, kd: int) -> None:
        if self.fit and self.factor is None:
            self.factor = fit(a, b)
            if self.factor is not None and abs(abs(self.factor) - 1) * self.base_max <= self.unit_tol:
                self.alive = False  # c ≈ ±1 is the candidate itself or its sign, both tried as they stand
        if d is not None and self.coef is None and self.factor is not None:
            with np.errstate(invalid="ignore", over="ignore"):
                self.coef = fit(a - self.factor * b, d)
            if self.coef is not None and abs(self.coef) * self.term_max <= self.unit_tol:
                self.alive = False  # no term at all: the candidate without it is tried too
        if not self.alive:
            return
        if self.known and dots.too_far(kb, self.factor or 0.0, kd, self.coef or 0.0, self.tol):
            self.alive = False
            return
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.multiply(self.factor or 0.0, b)  # a − f·b, in place: one block-sized temporary
            np.subtract(a, diff, out=diff)
            if d is not None:
                diff -= (self.coef or 0.0) * d
            res = float(np.max(np.abs(diff, out=diff))) if diff.size else 0.0
        self.residual = max(self.residual, res) if res == res else np.inf
        if self.known and not self.residual <= self.tol:
            self.alive = False  # the tolerance is known: no later block can save it
        if not np.isfinite(self.tol):
            self.alive = False  # "inf ≤ inf" is no evidence


class Stats:
    """Everything the report says about the errors of the answer against the truth."""

    def __init__(self, pr: Problem, frame: str, R: int, C: int, tol: float, keep: bool = True) -> None:
        L = pr.L
        self.pr, self.frame, self.R, self.C, self.tol = pr, frame, R, C, tol
        self.max_abs = 0.0
        self.outside = 0
        self.non_finite = 0
        self.worst: list[tuple[float, int, int, int, float, float]] = []
        self.by_output = np.zeros(L.K, dtype=np.int64)
        self.by_sample = np.zeros(L.N, dtype=np.int64)
        self.by_W: np.ndarray = np.zeros(L.as_given(L.W).shape, dtype=np.int64)  # in W's shape as given
        self.diagonal = np.zeros(2, dtype=np.int64)  # outside in diagonal, off-diagonal blocks
        self.keep = keep and R * C <= ERRORS_MAX
        self.sample_E = np.zeros((R, C)) if self.keep else None
        self.errors: Array | None = None
        self.errors_sample = 0
        self.sample_max = -1.0
        self.best = -1.0

    def update(self, s: int, r0: int, a: Array, t: Array, finite: bool) -> None:
        L, pr = self.pr.L, self.pr
        with np.errstate(invalid="ignore", over="ignore"):
            if self.sample_E is not None:
                E = np.subtract(a, t, out=self.sample_E[r0 : r0 + len(a)])
                absE = np.abs(E)
            else:
                absE = np.subtract(a, t)
                np.abs(absE, out=absE)  # in place: one block-sized temporary, not three
        if not finite:
            self.non_finite += int(np.count_nonzero(~np.isfinite(a)))
            absE[~np.isfinite(absE)] = np.inf  # NaN ranks as the worst error
        top = float(np.max(absE)) if absE.size else 0.0
        self.max_abs = max(self.max_abs, top)
        self.sample_max = max(self.sample_max, top)
        if top <= self.tol:
            return  # nothing outside: no entry to count or name
        out_r, out_c = np.nonzero(~(absE <= self.tol))
        self.outside += out_r.size
        if out_r.size:
            rr, cc = to_std(self.frame, out_r + r0, out_c, L.K, L.n)
            self.by_sample[s] += out_r.size
            if pr.kind == "jacobian":
                self.by_output += np.bincount(rr, minlength=L.K)
                wrt = pr.wrt_target
                if wrt.factored:
                    i, j = divmod(cc, L.n)
                    np.add.at(L.as_given(self.by_W), (j, i), 1)  # w[i,j] is W[j,i] in-out
                if wrt.per_output:
                    i = wrt.column_output(cc, L.n)
                    on = int(np.count_nonzero(rr == i))
                    self.diagonal += (on, rr.size - on)
            elif pr.kind == "grad":
                np.add.at(self.by_W, (rr, cc), 1)
                self.by_output += np.bincount(weight_at(L, rr, cc)[0], minlength=L.K)
            else:
                self.by_output += np.bincount(cc, minlength=L.K)
        flat = absE.ravel()
        k = min(WORST, flat.size)
        if k:
            idx = np.argpartition(-flat, k - 1)[:k]
            for f in idx:
                if flat[f] > self.tol:
                    r, c = divmod(int(f), a.shape[1])
                    self.worst.append((float(flat[f]), s, r0 + r, c, float(a[r, c]), float(t[r, c])))
            self.worst = sorted(self.worst, key=lambda w: -w[0])[:WORST]

    def end_sample(self, s: int) -> None:
        if self.sample_E is not None and self.sample_max > self.best:
            self.best = self.sample_max
            L = self.pr.L
            self.errors = std_from_frame(self.sample_E, self.frame, L.K, L.n).copy()
            self.errors_sample = s
        self.sample_max = -1.0


def compare(
    pr: Problem,
    answer: np.ndarray,
    frames: list[str],
    R: int,
    C: int,
    truth: Source,
    trials: list[Trial],
    stats: Stats | None,
    block_bytes: int,
) -> None:
    """One pass over the answer: every trial in these frames (all R×C per sample), and the stats.

    A block of rows is compared with one candidate value at a time (the trials on it share its
    block), and a memory-mapped answer's pages are handed back once the block is done.
    """
    N = 1 if pr.kind != "jacobian" else pr.L.N
    for s in range(N):
        rows = None if hasattr(answer, "rows") else sample_rows(answer, s, R, C)
        for r0, r1 in row_blocks(R, C * 8, block_bytes):
            # a large .npy answer (an NpyFile) is read a block at a time with positional reads: a
            # file cut short meanwhile is refused, naming it, where a mapped page would kill smjac
            block = answer.rows(s * R + r0, s * R + r1, C) if rows is None else rows[r0:r1]  # type: ignore[attr-defined]
            # in a call of its own, so that this block's arrays are gone before the next is read
            compare_block(pr, np.asarray(block, dtype=np.float64), frames, (s, r0, r1), truth, trials, stats)
            del block
            release(answer, s, R, C, r0, r1)
        if stats is not None:
            stats.end_sample(s)


def compare_block(
    pr: Problem,
    a: Array,
    frames: list[str],
    at: tuple[int, int, int],
    truth: Source,
    trials: list[Trial],
    stats: Stats | None,
) -> None:
    """Rows ``r0:r1`` of sample s (``at``), ``a``, against the truth and each live trial."""
    s, r0, r1 = at
    finite = bool(np.isfinite(np.sum(a))) or bool(np.all(np.isfinite(a)))
    for frame in frames:
        primary = stats is not None and frame == stats.frame
        live = [tr for tr in trials if tr.alive and tr.frame == frame]
        if not finite:
            for tr in live:
                tr.alive = False  # NaN matches no candidate: the non-finite diagnosis says why
            live = []
        if not primary and not live:
            continue  # every candidate in this arrangement is ruled out: skip making it
        on: dict[int, tuple[Source, list[Trial]]] = {id(truth): (truth, [])}
        for trial in live:
            base_src = truth if trial.base is None else trial.base
            on.setdefault(id(base_src), (base_src, []))[1].append(trial)
        dots = Dots(a)
        where = (frame, s, r0, r1, a.shape[1], pr.L.K, pr.L.n)
        for src, group in on.values():
            if src is truth and primary:
                assert stats is not None
                stats.update(s, r0, a, dots.block(truth, where), finite)
            for trial in group:
                base = dots.block(src, where)
                d = None if trial.term is None else dots.block(trial.term, where)
                trial.update(a, base, d, dots, id(src), id(trial.term))
            dots.drop(src)


def sample_rows(answer: np.ndarray, s: int, R: int, C: int) -> np.ndarray:
    """Sample s's R×C matrix of the answer, a view (N × R × C, N·R × C, or one sample's shape)."""
    return answer[s] if answer.ndim == 3 else answer.reshape(-1, C)[s * R : (s + 1) * R]


def release(answer: np.ndarray, s: int, R: int, C: int, r0: int, r1: int) -> None:
    """Hand back the pages of a memory-mapped answer's rows r0:r1 of sample s once compared
    (:func:`smjac.maths.forward_pass.release_rows`): read pages would otherwise stay resident.
    An answer stored column-major has its rows spread over the whole file: all of it is handed
    back, to be read again as the next block needs it."""
    if not isinstance(answer, np.memmap):
        return
    if answer.flags.c_contiguous:
        release_rows(answer.reshape(-1, C), s * R + r0, s * R + r1)
    elif answer.flags.f_contiguous:
        release_rows(answer.reshape(-1, order="F")[None], 0, 1)
