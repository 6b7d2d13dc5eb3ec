"""THE pixel rule: which pixels are valid and what their stored values mean physically.

Predict (``scene``), fetch (``fetch_read``) and training/evaluation reads (``rasters``) all call
these functions, so a pixel the model is trained on is a pixel it predicts, and a fetched clip
holds the values predict would read from the source:

- a pixel is invalid when any of its bands equals that band's nodata (a NaN nodata matches NaN)
  or its physical value is not finite (NaN, infinite, or overflowing when scaled);
- a band that declares no nodata has none: 0 (or any other value) is never assumed;
- nodata is per band; a user's ``--nodata`` (or a STAC asset's declared nodata) overrides it;
- physical value = stored value * scale + offset, per band, computed in the caller's float type.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import DTypeLike


def band_nodata(declared: Sequence[float | None], override: float | None) -> list[float | None]:
    """Each band's nodata: ``override`` for every band when given, else each band's own."""
    return [override] * len(declared) if override is not None else list(declared)


def nodata_mask(stored: np.ndarray, nodata: float | None) -> np.ndarray:
    """Where one band's stored values equal its nodata (NaN matches NaN); none without one."""
    if nodata is None:
        return np.zeros(stored.shape, dtype=bool)
    return np.isnan(stored) if math.isnan(nodata) else stored == nodata


def to_physical(stored: np.ndarray, scales: Sequence[float], offsets: Sequence[float],
                dtype: DTypeLike = np.float64) -> np.ndarray:
    """Bands [C, ...] as ``dtype``, each times its scale plus its offset.

    Every float band goes through the arithmetic, even at scale 1 and offset 0, so a stored -0.0
    reads as 0.0 wherever it is read; whole numbers are exact in floating point, so for them an
    identity scale is skipped (nothing to compute)."""
    values = stored.astype(dtype, copy=True)
    whole = stored.dtype.kind in "biu"
    for band, (scale, offset) in enumerate(zip(scales, offsets)):
        if not (whole and scale == 1.0 and offset == 0.0):
            values[band] = values[band] * scale + offset
    return values


def physical_pixels(stored: np.ndarray, nodata: Sequence[float | None], scales: Sequence[float],
                    offsets: Sequence[float], dtype: DTypeLike = np.float64
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Physical values [C, H, W] of stored bands [C, H, W] and the [H, W] mask of invalid pixels
    (the rule above); ``nodata``, ``scales`` and ``offsets`` hold one entry per band."""
    values = to_physical(stored, scales, offsets, dtype)
    invalid = ~np.isfinite(values).all(axis=0)
    for band, value in zip(stored, nodata):
        if value is not None:
            invalid |= nodata_mask(band, value)
    return values, invalid
