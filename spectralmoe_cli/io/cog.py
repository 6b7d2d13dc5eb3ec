"""A Cloud-Optimised GeoTIFF derived from the finished Zarr store, strip by strip.

Tiled 512, DEFLATE or ZSTD, overviews resampled with MODE (or NEAREST) so classes are never
averaged, nodata 255, an embedded colour table and the class names as band metadata. The file is
validated with rio-cogeo before it appears under its final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import zarr
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from ..errors import OutputValidationError
from .zarr_store import NODATA

BLOCK = 512
COG_CACHE_MB = 128  # GDAL's block cache while building overviews; its default grows with RAM
COMPRESSIONS = ("DEFLATE", "ZSTD")
OVERVIEW_RESAMPLINGS = ("MODE", "NEAREST")


def write_class_cog(store: Path, dst: Path, crs: CRS | None, transform: Affine,
                    classes: list[tuple[int, str, tuple[int, int, int]]],
                    compress: str = "DEFLATE", overview_resampling: str = "MODE") -> None:
    """Write ``dst`` atomically from ``store``'s class array and validate it as a COG."""
    array = zarr.open_group(str(store), mode="r", zarr_format=2)["classes"]
    height, width = array.shape
    staging = dst.with_name(f".{dst.name}.staging.tif")
    partial = dst.with_name(f".{dst.name}.partial")
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8",
        "crs": crs, "transform": transform, "nodata": NODATA, "tiled": True,
        "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "DEFLATE", "BIGTIFF": "IF_SAFER",
    }
    try:
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=COG_CACHE_MB):
            with rasterio.open(staging, "w", photometric="palette", **profile) as out:
                colormap = {value: (*rgb, 255) for value, _, rgb in classes}
                colormap[NODATA] = (0, 0, 0, 0)
                out.write_colormap(1, colormap)
                out.set_band_description(1, "class")
                out.update_tags(1, CLASS_NAMES=json.dumps({str(v): n for v, n, _ in classes}),
                                **{f"CLASS_{v}": n for v, n, _ in classes})
                for y in range(0, height, BLOCK):
                    rows = np.asarray(array[y:min(y + BLOCK, height), :])
                    out.write(rows, 1, window=Window(0, y, width, rows.shape[0]))
            rasterio.shutil.copy(
                staging, partial, driver="COG", COMPRESS=compress, BLOCKSIZE=BLOCK,
                OVERVIEW_RESAMPLING=overview_resampling, RESAMPLING="NEAREST",
                BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS",
            )
        is_valid, errors, _ = cog_validate(str(partial), quiet=True)
        if not is_valid:
            raise OutputValidationError(f"{dst.name} is not a valid COG: {'; '.join(errors)}")
        os.replace(partial, dst)
    finally:
        for leftover in (staging, partial):
            leftover.unlink(missing_ok=True)
