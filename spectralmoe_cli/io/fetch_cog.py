"""Writing a fetched clip as a validated Cloud-Optimized GeoTIFF, plus its checksum.

Strips are written to a tiled scratch GeoTIFF first (bounded memory), then GDAL's COG driver
copies it with internal overviews. The result is checked with ``rio_cogeo.cog_validate`` and
re-opened to confirm grid, band count and type before anyone may rename it into place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from ..errors import OutputValidationError
from .fetch_read import Encoding, Grid

BLOCK = 512


def write_cog(path: Path, grid: Grid, encoding: Encoding, descriptions: Sequence[str],
              band_tags: Sequence[dict[str, str]], tags: dict[str, str],
              blocks: Iterable[tuple[Window, np.ndarray]]) -> None:
    """Write ``blocks`` (window, bands x rows x cols) to a COG at ``path``, then validate it."""
    scratch = path.with_name(path.name + ".scratch.tif")
    profile = {
        "driver": "GTiff", "width": grid.width, "height": grid.height,
        "count": len(descriptions), "dtype": encoding.dtype, "crs": grid.crs,
        "transform": grid.transform, "nodata": encoding.nodata, "tiled": True,
        "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }
    try:
        with rasterio.open(scratch, "w", **profile) as dst:
            for index, (name, extra) in enumerate(zip(descriptions, band_tags), start=1):
                dst.set_band_description(index, name)
                dst.update_tags(index, **extra)
            dst.update_tags(**tags)
            for window, data in blocks:
                dst.write(data, window=window)
        rasterio.shutil.copy(
            scratch, path, driver="COG", COMPRESS="DEFLATE",
            PREDICTOR="YES", BLOCKSIZE=BLOCK, OVERVIEWS="AUTO", OVERVIEW_RESAMPLING="AVERAGE",
            BIGTIFF="IF_SAFER")
    finally:
        scratch.unlink(missing_ok=True)
    _validate(path, grid, encoding, len(descriptions))


def _validate(path: Path, grid: Grid, encoding: Encoding, count: int) -> None:
    valid, errors, _ = cog_validate(str(path), quiet=True)
    if not valid:
        raise OutputValidationError(f"{path.name} is not a valid COG: {'; '.join(errors)}")
    with rasterio.open(path) as check:
        same = (check.crs == grid.crs and check.transform == grid.transform
                and (check.width, check.height, check.count) == (grid.width, grid.height, count)
                and check.dtypes[0] == encoding.dtype)
    if not same:
        raise OutputValidationError(f"{path.name}: written grid, band count or type differ "
                                    f"from what was read")
