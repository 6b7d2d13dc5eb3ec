"""Real GeoTIFF scenes written for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

UTM = CRS.from_epsg(32633)
UTM_TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5200000.0)


def smooth_field(height: int, width: int, bands: int, seed: int = 0) -> np.ndarray:
    """Spatially coherent values around 100 (blobs), so a random model makes real regions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((bands, height, width), np.float32)
    for b in range(bands):
        fy, fx, py, px = rng.uniform(0.01, 0.06, 2).tolist() + rng.uniform(0, 6, 2).tolist()
        out[b] = 100 + 60 * np.sin(fy * yy + py) * np.cos(fx * xx + px) + rng.normal(0, 3, (height, width))
    return out


def write_scene(path: Path, data: np.ndarray, crs: CRS | None = UTM,
                transform: Affine = UTM_TRANSFORM, nodata: float | None = None,
                descriptions: list[str] | None = None, dtype: str | None = None) -> Path:
    bands, height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": bands,
               "dtype": dtype or str(data.dtype), "transform": transform, "nodata": nodata}
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(profile["dtype"]))
        for i, name in enumerate(descriptions or []):
            dst.set_band_description(i + 1, name)
    return path
