"""A training run's directory: identity, resumable state, metrics logs. Nothing is pickled.

Layout::

    run.json                 what defines the run (model, data digest, bands, classes, stats, recipe)
    data.json                training/validation file lists with SHA-256 of every file
    metrics.jsonl, metrics.csv   one record per optimiser step
    checkpoints/step-NNNNNNN.safetensors   periodic model checkpoints (project format)
    state/step-NNNNNNN.safetensors         optimiser moments + RNG states (safetensors; scalars,
                                           parameter groups and numpy/python RNG as JSON metadata)
    latest.json              the last complete checkpoint + state; written last, atomically
    model.safetensors        the final checkpoint, all predict needs

A kill at any moment leaves ``latest.json`` pointing at a complete pair of files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ...errors import UsageError
from ...files import csv_text, write_text_atomic

RUN_FILES = ("run.json", "data.json", "metrics.jsonl", "metrics.csv", "latest.json",
             "model.safetensors")
RUN_DIRS = ("checkpoints", "state")


class RunDir:
    """Paths and housekeeping of one run directory (the layout above)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def checkpoint_path(self, step: int) -> Path:
        return self.root / "checkpoints" / f"step-{step:07d}.safetensors"

    def state_path(self, step: int) -> Path:
        return self.root / "state" / f"step-{step:07d}.safetensors"

    def is_empty(self) -> bool:
        return not self.root.exists() or not any(self.root.iterdir())

    def is_run(self) -> bool:
        return self.path("run.json").is_file()

    def read_json(self, name: str) -> dict:
        try:
            return json.loads(self.path(name).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.path(name)} is unreadable ({exc}); this run cannot be resumed, "
                             f"start over with --force") from exc

    def latest(self) -> dict | None:
        return self.read_json("latest.json") if self.path("latest.json").is_file() else None

    def clear(self) -> None:
        """Remove this tool's run files (only those: anything else the user put here stays)."""
        for name in RUN_FILES:
            self.path(name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(self.path(name), ignore_errors=True)

    def prune(self, keep_checkpoints: int, latest_step: int) -> None:
        """Keep the newest ``keep_checkpoints`` model checkpoints (0: all) and only the latest state."""
        for path in (self.root / "state").glob("step-*.safetensors"):
            if path != self.state_path(latest_step):
                path.unlink()
        if keep_checkpoints > 0:
            for path in sorted((self.root / "checkpoints").glob("step-*.safetensors"))[:-keep_checkpoints]:
                path.unlink()


class MetricsLog:
    """metrics.jsonl (every field) and metrics.csv, one record per step; the CSV's columns are
    step, loss, the loss parts of the first record, lr, sec_per_step and the validation scores."""

    VAL_COLUMNS = ("val_mIoU", "val_mAcc", "val_aAcc")

    def __init__(self, run: RunDir, validates: bool) -> None:
        self.jsonl, self.csv, self.validates = run.path("metrics.jsonl"), run.path("metrics.csv"), validates

    def truncate(self, step: int) -> None:
        """Forget records after ``step`` (a killed run may have logged past its last checkpoint,
        or been killed halfway through writing a line)."""
        lines = self.jsonl.read_text().splitlines() if self.jsonl.is_file() else []
        records = [r for r in map(_parse, lines) if r is not None and r["step"] <= step]
        write_text_atomic(self.jsonl, "".join(json.dumps(r) + "\n" for r in records))
        if records:
            write_text_atomic(self.csv, csv_text([self._columns(records[0]),
                                                  *map(self._row, records)]))
        else:
            self.csv.unlink(missing_ok=True)

    def append(self, record: dict) -> None:
        with self.jsonl.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        header = [] if self.csv.is_file() else [self._columns(record)]
        with self.csv.open("a", newline="") as handle:
            handle.write(csv_text([*header, self._row(record)]))

    def _columns(self, record: dict) -> list[str]:
        parts = sorted(k for k in record if k.startswith("loss_"))
        return ["step", "loss", *parts, "lr", "sec_per_step", *(self.VAL_COLUMNS if self.validates else ())]

    def _row(self, record: dict) -> list:
        return ["" if record.get(c) is None else record[c] for c in self._columns(record)]


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None
