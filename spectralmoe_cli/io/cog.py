"""Cloud-Optimized GeoTIFFs, written atomically and validated: class maps and fetched clips.

Blocks go to a tiled scratch GeoTIFF first (memory bounded by a block, whatever the raster's
size), then GDAL's COG driver copies it with internal overviews. The copy is checked with
``rio_cogeo.cog_validate`` and re-opened to confirm grid, band count and type before it
appears under its final name; a failure leaves nothing there. What differs between a class map
and a fetched clip (type, nodata, colour table, compression, predictor, overview resampling,
band descriptions and tags) is a ``CogSpec`` field.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import rasterio
import rasterio.shutil
import zarr
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from ..errors import OutputValidationError
from ..files import write_atomic
from ..labels import CLASS_MAP_NODATA
from .gdal_cache import block_cache

BLOCK = 512
# GDAL's block cache while building overviews (its default grows with RAM); in bytes, as
# GDALSetCacheMax64 takes it: a bare 128 would be 128 bytes, not 128 MB
COG_CACHE_BYTES = 128 * 2**20
COMPRESSIONS = ("DEFLATE", "ZSTD")
OVERVIEW_RESAMPLINGS = ("MODE", "NEAREST")  # a class map's: classes are never averaged

Blocks = Iterable[tuple[Window, np.ndarray]]  # (window, bands x rows x cols)


@dataclass(frozen=True)
class CogSpec:
    """What one COG holds and how it is encoded."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int
    dtype: str
    nodata: float | None
    descriptions: Sequence[str]  # one per band
    band_tags: Sequence[dict[str, str]]  # one per band
    tags: dict[str, str] = field(default_factory=dict)  # the dataset's
    colormap: dict[int, tuple[int, int, int, int]] | None = None  # single-band palette
    compress: str = "DEFLATE"
    predictor: bool = False  # horizontal differencing: smaller files for continuous values
    overview_resampling: str = "NEAREST"

    @property
    def count(self) -> int:
        return len(self.descriptions)


def write_cog(path: Path, spec: CogSpec, blocks: Blocks) -> None:
    """Write ``blocks`` as a validated COG at ``path``, atomically."""
    write_atomic(path, lambda tmp: _build(tmp, path.name, spec, blocks))


def _build(tmp: Path, name: str, spec: CogSpec, blocks: Blocks) -> None:
    staging = tmp.with_name(f"{tmp.name}.staging.tif")
    profile = {
        "driver": "GTiff", "width": spec.width, "height": spec.height, "count": spec.count,
        "dtype": spec.dtype, "crs": spec.crs, "transform": spec.transform,
        "nodata": spec.nodata, "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK,
        "compress": "DEFLATE", "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS",
    }
    if spec.colormap is not None:
        profile["photometric"] = "palette"
    options = {"PREDICTOR": "YES"} if spec.predictor else {}
    try:
        # threads compress the scratch file's blocks; a process-wide GDAL_NUM_THREADS here would
        # also change how the blocks' sources are read (more range requests for remote ones)
        with rasterio.open(staging, "w", **profile) as out:
            if spec.colormap is not None:
                out.write_colormap(1, spec.colormap)
            for index, (description, tags) in enumerate(
                    zip(spec.descriptions, spec.band_tags), start=1):
                out.set_band_description(index, description)
                out.update_tags(index, **tags)
            if spec.tags:
                out.update_tags(**spec.tags)
            for window, data in blocks:
                out.write(data, window=window)
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), block_cache(COG_CACHE_BYTES):
            rasterio.shutil.copy(
                staging, tmp, driver="COG", COMPRESS=spec.compress, **options, BLOCKSIZE=BLOCK,
                OVERVIEWS="AUTO", OVERVIEW_RESAMPLING=spec.overview_resampling,
                RESAMPLING="NEAREST", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
    finally:
        staging.unlink(missing_ok=True)
    _validate(tmp, name, spec)


def _validate(path: Path, name: str, spec: CogSpec) -> None:
    valid, errors, _ = cog_validate(str(path), quiet=True)
    if not valid:
        raise OutputValidationError(f"{name} is not a valid COG: {'; '.join(errors)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as check:
            same = (check.crs == spec.crs and check.transform == spec.transform
                    and (check.width, check.height, check.count)
                    == (spec.width, spec.height, spec.count)
                    and check.dtypes[0] == spec.dtype)
    if not same:
        raise OutputValidationError(f"{name}: written grid, band count or type differ "
                                    f"from what was read")


def write_class_cog(store: Path, dst: Path, crs: CRS | None, transform: Affine,
                    classes: list[tuple[int, str, tuple[int, int, int]]],
                    compress: str = "DEFLATE", overview_resampling: str = "MODE") -> None:
    """The class map of ``store`` (Zarr) as a COG: nodata ``CLASS_MAP_NODATA``, the classes'
    colours as its colour table, their names as band metadata, read strip by strip."""
    array = zarr.open_group(str(store), mode="r", zarr_format=2)["classes"]
    height, width = array.shape
    colormap = {value: (*rgb, 255) for value, _, rgb in classes}
    colormap[CLASS_MAP_NODATA] = (0, 0, 0, 0)
    names = {"CLASS_NAMES": json.dumps({str(v): n for v, n, _ in classes}),
             **{f"CLASS_{v}": n for v, n, _ in classes}}
    spec = CogSpec(crs=crs, transform=transform, width=width, height=height, dtype="uint8",
                   nodata=CLASS_MAP_NODATA, descriptions=["class"], band_tags=[names],
                   colormap=colormap, compress=compress, overview_resampling=overview_resampling)

    def strips() -> Iterator[tuple[Window, np.ndarray]]:
        for y in range(0, height, BLOCK):
            rows = np.asarray(array[y:min(y + BLOCK, height), :])
            yield Window(0, y, width, rows.shape[0]), rows[None]

    write_cog(dst, spec, strips())
