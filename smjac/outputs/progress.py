"""The progress bar every long job shows on stderr (:class:`Progress`), after its first second."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, TextIO


class Progress:
    """A progress bar on stderr for work that turns out to take more than about a second.

    ``total`` is the work in ``unit`` (``"bytes"``, or a count such as ``"samples"``); 0 when it
    is not known ahead, and then a spinner and the time taken show that smjac is alive. The
    bar appears only once :data:`DELAY` seconds have passed (by ``clock``), when the work
    reports progress or, with ``watch``, from a thread that looks once the delay is over: one
    long BLAS call reports nothing until it ends. :meth:`phase` moves on to the next part of the
    work (writing a file, say). Nothing is drawn unless ``enabled`` (the writer: stderr is a
    terminal, or progress was asked for, and not --quiet); nothing ever goes to stdout.
    """

    DELAY = 1.0

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: TextIO,
        enabled: bool,
        unit: str = "bytes",
        clock: Callable[[], float] = time.monotonic,
        watch: bool = True,
        color: bool = True,
    ):
        import threading

        self.total, self.label, self.unit, self.done = total, label, unit, 0
        self.enabled, self.clock, self.color = enabled, clock, color
        self.started = clock()
        self.stderr = stream
        self.bar: Any = None
        self.ended = False
        self._lock = threading.RLock()
        self._over = threading.Event()
        if enabled and watch:
            threading.Thread(target=self._watch, name="smjac-progress", daemon=True).start()

    def _watch(self) -> None:
        if not self._over.wait(self.DELAY):
            self._show()

    def _show(self) -> None:
        """Draw the bar once the delay is over (and keep it up to date)."""
        with self._lock:
            if not self.enabled or self.ended:
                return
            if self.bar is None and self.clock() - self.started >= self.DELAY:
                self._start()
            if self.bar is not None:
                self.bar.update(self.task, completed=self.done)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        known = self.total > 0
        amount = DownloadColumn(binary_units=True) if self.unit == "bytes" else MofNCompleteColumn()
        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if known:
            columns += [BarColumn(), amount] + ([] if self.unit == "bytes" else [TextColumn(self.unit)])
        columns += [TimeElapsedColumn()] + ([TimeRemainingColumn()] if known else [])
        # enabled: a terminal, or asked for; in colour unless --color never (or NO_COLOR)
        console = Console(file=self.stderr, highlight=False, force_terminal=True, no_color=not self.color)
        self.bar = Progress(
            *columns, console=console, transient=True, redirect_stdout=False, redirect_stderr=False
        )
        self.task = self.bar.add_task(self.label, total=self.total if known else None)
        with contextlib.suppress(OSError, ValueError):
            self.bar.start()

    def __call__(self, amount: int) -> None:
        with self._lock:
            self.done += amount
        if self.enabled:
            self._show()

    def phase(self, label: str, total: int = 0, unit: str = "bytes") -> None:
        """Go on to the next part of the work: a new label and total, counted from 0."""
        with self._lock:
            self._hide()
            self.label, self.total, self.unit, self.done = label, total, unit, 0
        if self.enabled:
            self._show()

    def pause(self) -> None:
        """Take the bar off the terminal (for a message, say) until there is progress to show."""
        self._hide()

    def _hide(self) -> None:
        with self._lock:
            if self.bar is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.bar.stop()
                self.bar = None

    def close(self) -> None:
        """Take the bar off the terminal, for good."""
        with self._lock:
            self._hide()
            self.ended = True
            self._over.set()
