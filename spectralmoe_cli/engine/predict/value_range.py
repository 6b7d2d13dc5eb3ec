"""A scene whose values are on another scale than the checkpoint's training data.

A float reflectance scene (0-1) given to a model trained on 8-bit images (0-255) normalises to
values near -2 everywhere and maps one class with exit 0. The first chunk read is compared with
the checkpoint's per-band statistics, and a scale that is off by orders of magnitude is warned
about once: the map is still made (the user may know better), but the log says why it may be wrong.
"""

from __future__ import annotations

import logging

import numpy as np

from ...checkpoint import CheckpointMeta

log = logging.getLogger(__name__)

ORDERS = 100.0  # a typical value this many times larger or smaller than the training data's


def scale_warning(data: np.ndarray, valid: np.ndarray, meta: CheckpointMeta) -> str | None:
    """Why ``data`` ([bands, H, W], model band order) looks off-scale for ``meta``, or None."""
    if not valid.any():
        return None
    pixels = data[:, valid]
    seen = np.percentile(np.abs(pixels), 99, axis=1)
    trained = np.abs(np.asarray(meta.mean)) + 3 * np.asarray(meta.std)
    off = (seen * ORDERS < trained) | (seen > trained * ORDERS)
    if not off.sum() * 2 > len(off):  # most bands, not one dark or saturated band
        return None
    return (f"the scene's values reach about {float(np.median(seen)):.3g} but the checkpoint was "
            f"trained on values up to about {float(np.median(trained)):.3g}: check the scaling "
            f"(reflectance 0-1 against 8-bit 0-255?); the map may be one class")


def warn_if_off_scale(data: np.ndarray, valid: np.ndarray, meta: CheckpointMeta, source: str) -> None:
    """Log ``scale_warning`` once for this scene (called on its first chunk)."""
    if warning := scale_warning(data, valid, meta):
        log.warning("%s: %s", source, warning)
