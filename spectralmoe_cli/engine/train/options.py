"""What ``spectralmoe train`` is asked for: one schema for its command-line and ``--config`` values.

Ranges are part of the schema, so a bad value is refused the same way from a flag or a file
before anything is read. Kept apart from the plan so the CLI can show the defaults without
importing torch.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from ...errors import UsageError
from ..options import MAX_TILE, CommaText, DeviceField, LabelFields


class TrainOptions(DeviceField, LabelFields):
    """A training run: model, labelled data, classes, run directory, schedule and seed."""

    model: str
    train: Path
    bands: CommaText
    classes: Path
    out: Path
    val: Path | None = None
    steps: StrictInt = Field(4000, ge=1)
    batch_size: StrictInt = Field(8, ge=1)
    crop: StrictInt = Field(512, ge=16, le=MAX_TILE)
    lr: StrictFloat = Field(1e-4, gt=0, allow_inf_nan=False)
    accumulate: StrictInt = Field(1, ge=1)
    checkpoint_every: StrictInt = Field(500, ge=0)
    keep: StrictInt = Field(5, ge=0)
    resume: StrictBool = False
    force: StrictBool = False
    seed: StrictInt = Field(42, ge=0)
    deterministic: StrictBool = False
    reduce_zero_label: StrictBool = False
    stats: Path | None = None
    nodata: StrictFloat | None = None
    workers: StrictInt = Field(2, ge=0)
    command: str = ""

    def check(self) -> None:
        """What one value alone cannot say: --resume and --force contradict each other."""
        if self.resume and self.force:
            raise UsageError("give --resume (continue the run) or --force (start it over), not both")
