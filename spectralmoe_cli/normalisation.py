"""The one rule for per-band normalisation statistics (mean, std), wherever they come from.

``train --stats`` files, checkpoints being saved and checkpoints being loaded are all checked
here, so a value refused by one is refused by all. Kept free of torch: ``stats`` uses it too.
"""

from __future__ import annotations

import math

MIN_STD = 1e-6  # below this a one-unit step normalises past 1e6: not the statistics of data


def normalisation_problem(mean: list[float], std: list[float]) -> str | None:
    """What is wrong with per-band normalisation statistics, or None: the one rule for
    ``train --stats``, a saved checkpoint and a loaded one (a NaN or 1e-30 std with a valid hash
    would otherwise predict one class everywhere and exit 0)."""
    if not all(math.isfinite(v) for v in [*mean, *std]):
        return "every mean and std must be a finite number"
    if any(s < MIN_STD for s in std):
        return f"every std must be at least {MIN_STD:g} (got {min(std):g})"
    return None
