"""Progress that suits both people and cron: a rich bar on a terminal, else periodic log lines."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("spectralmoe.progress")


class Progress:
    """``start``/``advance``/``finish`` tasks; rich only when stderr is a TTY and not quiet."""

    def __init__(self, enabled: bool = True, every: float = 30.0) -> None:
        self.every = every
        self._rich = None
        self._state: dict[int, tuple[str, int, int, float, float]] = {}
        self._next = 0
        if enabled and sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
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
