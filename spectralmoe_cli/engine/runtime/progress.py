"""Progress that suits both people and cron: a rich bar on a terminal, else periodic log lines.

``Progress`` counts predict's chunks; ``StepProgress`` counts training steps with their loss.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)
LOG_EVERY = 20


class Progress:
    """``start``/``advance``/``finish`` tasks; rich only when stderr is a TTY and not quiet.

    ``enabled=False`` is silent (evaluate scores many small images; one line each is enough).
    """

    def __init__(self, enabled: bool = True, every: float = 30.0) -> None:
        self.every = every
        self.enabled = enabled
        self._rich = None
        self._state: dict[int, tuple[str, int, int, float, float]] = {}
        self._next = 0
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress
            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      TimeRemainingColumn(), transient=True)
            self._rich.start()

    def start(self, description: str, total: int) -> int:
        if self._rich is not None:
            return self._rich.add_task(description, total=total)
        self._next += 1
        now = time.monotonic()
        self._state[self._next] = (description, total, 0, now, now)
        return self._next

    def advance(self, task: int, n: int = 1) -> None:
        if self._rich is not None:
            self._rich.advance(task, n)
            return
        description, total, done, started, last = self._state[task]
        done += n
        if not self.enabled:
            self._state[task] = (description, total, done, started, last)
            return
        now = time.monotonic()
        if now - last >= self.every or done == total:
            eta = (now - started) / done * (total - done) if done else 0.0
            log.info("%s: %d/%d chunks, %.0f s elapsed, ETA %.0f s", description, done, total,
                     now - started, eta)
            last = now
        self._state[task] = (description, total, done, started, last)

    def finish(self, task: int) -> None:
        if self._rich is not None:
            self._rich.remove_task(task)
        else:
            self._state.pop(task, None)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class StepProgress:
    """Reports optimiser steps; the ETA is the mean seconds per step of this session."""

    def __init__(self, start: int, total: int) -> None:
        self.start, self.total = start, total
        self.began = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                console=Console(stderr=True))
            self.task = self.bar.add_task("train", total=total, completed=start, status="")
            self.bar.start()

    def step(self, step: int, loss: float, lr: float, seconds: float) -> None:
        status = f"loss {loss:.4f} lr {lr:.2e} {seconds:.2f} s/step"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, status=status)
        elif step % LOG_EVERY == 0 or step in (self.start + 1, self.total):
            per_step = (time.perf_counter() - self.began) / (step - self.start)
            log.info("step %d/%d %s eta %s", step, self.total, status,
                     _clock(per_step * (self.total - step)))

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message)
        else:
            log.info(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
