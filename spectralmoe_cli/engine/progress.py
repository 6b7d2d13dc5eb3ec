"""Training progress: a rich bar with ETA on a terminal, one-line log records otherwise (cron, CI)."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("spectralmoe")
LOG_EVERY = 20


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
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

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
