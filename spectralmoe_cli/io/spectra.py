"""Per-pixel spectral resampling: a scene's spectrum interpolated onto a model's band centres.

A second hyperspectral sensor rarely shares the training sensor's band centres. Linear
interpolation between the two scene bands that bracket each model wavelength gives the model the
bands it was trained on. It is a fixed linear map over bands, so it runs on raw physical values,
before normalisation, and a pixel is valid only where all the bands it reads are. No
extrapolation: a model wavelength outside the scene's range is an error, never a guess. Band
response functions (FWHM) are not modelled; only centres are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import BandError


@dataclass(frozen=True)
class SpectralMix:
    """Model band k = sum_j weights[k][j] * (scene band ``sources[j]``), per pixel."""

    sources: tuple[int, ...]
    weights: tuple[tuple[float, ...], ...]

    def apply(self, data: np.ndarray) -> np.ndarray:
        """[len(sources), H, W] scene bands (in ``sources`` order) -> [model bands, H, W]."""
        matrix = np.asarray(self.weights, dtype=np.float32)
        return np.tensordot(matrix, data, axes=1).astype(np.float32, copy=False)


def interpolation_mix(scene_nm: Sequence[tuple[int, float]], model_nm: Sequence[float]) -> SpectralMix:
    """Linear interpolation from scene bands (index, centre nm) onto ``model_nm``; BandError on a
    model wavelength outside the scene's range (the message names it and the range)."""
    if len(scene_nm) < 2:
        raise BandError("--resample-spectra needs a scene with at least two bands of known wavelength")
    ordered = sorted(scene_nm, key=lambda item: item[1])
    centres = np.array([nm for _, nm in ordered])
    if np.any(np.diff(centres) <= 0):
        raise BandError("--resample-spectra: two scene bands share a centre wavelength")
    low, high = centres[0], centres[-1]
    sources: list[int] = []
    rows: list[dict[int, float]] = []
    for target in model_nm:
        if not low - 1e-6 <= target <= high + 1e-6:
            raise BandError(f"--resample-spectra: the model's band at {target:g} nm lies outside the "
                            f"scene's range {low:g}-{high:g} nm (no extrapolation)")
        right = int(min(max(np.searchsorted(centres, target), 1), len(centres) - 1))
        left = right - 1
        t = float((target - centres[left]) / (centres[right] - centres[left]))
        row = {ordered[left][0]: 1.0 - t, ordered[right][0]: t}
        rows.append({k: v for k, v in row.items() if v != 0.0})
        sources += [k for k in rows[-1] if k not in sources]
    column = {index: j for j, index in enumerate(sources)}
    weights = []
    for row in rows:
        dense = [0.0] * len(sources)
        for index, w in row.items():
            dense[column[index]] = w
        weights.append(tuple(dense))
    return SpectralMix(tuple(sources), tuple(weights))
