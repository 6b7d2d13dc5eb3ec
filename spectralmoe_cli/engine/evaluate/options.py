"""What ``spectralmoe evaluate`` is asked for: one schema for its command-line and ``--config`` values.

Kept apart from the scoring so the CLI can show the defaults without importing torch.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, StrictBool, StrictFloat

from ..options import CommaText, ComputeFields, LabelFields
from ..predict.settings import TileFields


class EvaluateOptions(TileFields, ComputeFields, LabelFields):
    """A checkpoint, a labelled folder, how to read and tile it, and the quality bar."""

    checkpoint: Path
    source: Path
    out: Path | None = None
    bands: CommaText | None = None
    classes: Path | None = None
    reduce_zero_label: StrictBool | None = None
    deterministic: StrictBool | None = None
    min_miou: StrictFloat | None = Field(None, ge=0, le=100)
