"""Opening labelled-data rasters (GeoTIFF, PNG, anything GDAL reads) and reading them in blocks.

Every open goes through here so that an unreadable file is one clear input error, a PNG's
missing georeference is not a warning, and no caller ever reads more than a window.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from ..errors import InputDataError
from ..net import describe
from .pixels import physical_pixels


@contextmanager
def open_raster(path: Path) -> Iterator[rasterio.io.DatasetReader]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                yield ds
    except RasterioError as exc:
        raise InputDataError(f"cannot read raster {path}: {describe(exc)}") from exc


@dataclass(frozen=True)
class Georef:
    """Size and georeference of a raster; crs and transform are None for plain images (PNG)."""

    width: int
    height: int
    crs: str | None
    transform: tuple[float, ...] | None

    @classmethod
    def of(cls, ds: rasterio.io.DatasetReader) -> "Georef":
        placed = ds.crs is not None or not ds.transform.is_identity
        return cls(ds.width, ds.height, ds.crs.to_string() if ds.crs else None,
                   tuple(ds.transform)[:6] if placed else None)

    def same_place(self, other: "Georef") -> bool:
        """Same CRS and grid (offsets within 1% of a pixel); True if either is not georeferenced."""
        if self.transform is None or other.transform is None:
            return True
        if self.crs != other.crs:
            return False
        a, b, c, d, e, f = self.transform
        a2, b2, c2, d2, e2, f2 = other.transform
        pixel = max(abs(a), abs(e), abs(b), abs(d))
        scales_match = all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12 * pixel)
                           for x, y in ((a, a2), (b, b2), (d, d2), (e, e2)))
        return scales_match and abs(c - c2) <= 0.01 * pixel and abs(f - f2) <= 0.01 * pixel


def block_windows(width: int, height: int, block: int) -> Iterator[Window]:
    """Square windows of ``block`` pixels covering the raster, edge windows clipped."""
    for row in range(0, height, block):
        for col in range(0, width, block):
            yield Window(col, row, min(block, width - col), min(block, height - row))


def read_physical(ds: rasterio.io.DatasetReader, nodata: list[float | None],
                  window: Window | None = None, indexes: list[int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Physical values [C, h, w] (float64) of bands ``indexes`` (1-based; all by default) over
    ``window``, and the [h, w] mask of invalid pixels, by the pixel rule predict reads scenes
    with; ``nodata`` lists every band's nodata (``pixels.band_nodata``)."""
    bands = indexes or list(range(1, ds.count + 1))
    return physical_pixels(ds.read(bands, window=window), [nodata[i - 1] for i in bands],
                           [ds.scales[i - 1] for i in bands], [ds.offsets[i - 1] for i in bands])
