"""The class-map Zarr store: chunked like the processing, georeferenced for rioxarray and GDAL.

Zarr format 2 (GDAL 3.10 reads v2 reliably), with CF ``spatial_ref`` + ``grid_mapping`` for
rioxarray, GDAL's ``_CRS`` attribute, x/y pixel-centre coordinates, and GeoZarr ``proj:`` /
``spatial:`` convention attributes. Chunk completion is recorded in a small array in the store,
one Zarr chunk per processing chunk, so a killed run resumes where it stopped;
the table is dropped when the store is complete.
"""

from __future__ import annotations

from pathlib import Path

import numcodecs
import numpy as np
import zarr
from affine import Affine
from rasterio.crs import CRS

from ..labels import CLASS_MAP_NODATA
from .proj import epsg_code, grid_bbox, transform_list

NODATA = CLASS_MAP_NODATA  # the store's fill value, for the probabilities as for the classes
_DONE = "_chunks_done"  # one uint8 per processing chunk, one Zarr chunk each
_MASKED = "_masked_pixels"  # int64 per processing chunk, while a masked scene is being written
_COMPRESSOR = numcodecs.Zstd(level=3)
MASKED_FRACTION = "spectralmoe:masked_fraction"


def geo_attributes(crs: CRS | None, transform: Affine, height: int, width: int) -> dict:
    """GeoZarr ``proj:`` and ``spatial:`` convention attributes."""
    attrs: dict = {
        "spatial:dimensions": ["y", "x"],
        "spatial:transform": transform_list(transform),
        "spatial:shape": [height, width],
        "spatial:bbox": grid_bbox(transform, height, width),
        "spatial:registration": "pixel",
        "zarr_conventions": ["spatial", "geo-proj"],
    }
    if crs is not None:
        code = epsg_code(crs)
        if code:
            attrs["proj:code"] = code
        attrs["proj:wkt2"] = crs.to_wkt()  # GeoZarr's geo-proj: always, beside any code
    return attrs


def create_store(path: Path, height: int, width: int, chunk: int, crs: CRS | None,
                 transform: Affine, num_classes: int, probabilities: bool, attrs: dict) -> zarr.Group:
    """An empty store (every pixel nodata) ready for region writes, with a chunk-done table."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    geo = geo_attributes(crs, transform, height, width)
    group.attrs.update({**geo, **attrs})
    classes = group.create_array("classes", shape=(height, width), chunks=(chunk, chunk),
                                 dtype="uint8", fill_value=NODATA, compressors=_COMPRESSOR)
    data_attrs = {"_ARRAY_DIMENSIONS": ["y", "x"], "grid_mapping": "spatial_ref",
                  "coordinates": "spatial_ref", "long_name": "land-cover class", **geo}
    if crs is not None:
        data_attrs["_CRS"] = {"wkt": crs.to_wkt()}
    classes.attrs.update(data_attrs)
    if probabilities:
        probs = group.create_array("probabilities", shape=(num_classes, height, width),
                                   chunks=(num_classes, chunk, chunk), dtype="uint8",
                                   fill_value=NODATA, compressors=_COMPRESSOR)
        probs.attrs.update({**data_attrs, "_ARRAY_DIMENSIONS": ["class", "y", "x"],
                            "long_name": "class probability x 250 (255 = nodata)",
                            "scale_factor": 1 / 250})
    x = group.create_array("x", shape=(width,), dtype="float64", compressors=None, fill_value=None)
    x[:] = transform.c + transform.a * (np.arange(width) + 0.5)
    x.attrs.update({"_ARRAY_DIMENSIONS": ["x"], "standard_name": "projection_x_coordinate"})
    y = group.create_array("y", shape=(height,), dtype="float64", compressors=None, fill_value=None)
    y[:] = transform.f + transform.e * (np.arange(height) + 0.5)
    y.attrs.update({"_ARRAY_DIMENSIONS": ["y"], "standard_name": "projection_y_coordinate"})
    ref = group.create_array("spatial_ref", shape=(), dtype="int32", fill_value=None)
    ref[...] = 0
    ref_attrs = {"_ARRAY_DIMENSIONS": [], "GeoTransform": " ".join(repr(v) for v in transform.to_gdal())}
    if crs is not None:
        ref_attrs.update({"crs_wkt": crs.to_wkt(), "spatial_ref": crs.to_wkt()})
    ref.attrs.update(ref_attrs)
    rows, cols = -(-height // chunk), -(-width // chunk)
    done = group.create_array(_DONE, shape=(rows, cols), chunks=(1, 1), dtype="uint8",
                              fill_value=0, compressors=None)
    done.attrs["_ARRAY_DIMENSIONS"] = ["chunk_row", "chunk_col"]
    return group


def open_store(path: Path) -> zarr.Group:
    return zarr.open_group(str(path), mode="r+", zarr_format=2)


def is_resumable(path: Path) -> bool:
    """Whether a partial store was made whole: its chunk-done table, created last, opens. A
    store whose creation a full disk or a kill cut short is not, and is made again."""
    try:
        open_store(path)[_DONE]
    except Exception:
        return False
    return True


def chunk_done(group: zarr.Group, i: int, j: int) -> bool:
    """Whether chunk (i, j) was written; a marker damaged by a kill counts as not done."""
    try:
        return bool(group[_DONE][i, j])
    except Exception:
        return False


def mark_chunk_done(group: zarr.Group, i: int, j: int) -> None:
    group[_DONE][i, j] = 1


def add_masked_table(group: zarr.Group) -> None:
    """A per-chunk count of masked pixels (``--mask``), kept until the store is finalized."""
    rows, cols = group[_DONE].shape
    table = group.create_array(_MASKED, shape=(rows, cols), chunks=(1, 1), dtype="int64",
                               fill_value=0, compressors=None)
    table.attrs["_ARRAY_DIMENSIONS"] = ["chunk_row", "chunk_col"]


def record_masked(group: zarr.Group, i: int, j: int, count: int) -> None:
    group[_MASKED][i, j] = count


def settle_masked_fraction(path: Path) -> None:
    """Turn the per-chunk counts into the store's ``spectralmoe:masked_fraction`` attribute."""
    group = open_store(path)
    if _MASKED not in group:
        return
    height, width = group["classes"].shape
    masked = int(np.asarray(group[_MASKED][:]).sum())
    group.attrs[MASKED_FRACTION] = round(masked / max(height * width, 1), 6)
    del group[_MASKED]


def masked_fraction(path: Path) -> float | None:
    """The finished store's masked fraction; ``None`` when no mask applied."""
    return zarr.open_group(str(path), mode="r", zarr_format=2).attrs.get(MASKED_FRACTION)


def is_finalized(path: Path) -> bool:
    """A store whose chunks are all written (its chunk-done table dropped, metadata consolidated)."""
    return (path / ".zmetadata").exists() and not (path / _DONE).exists()


def finalize_store(path: Path) -> None:
    """Drop the chunk-done table and consolidate metadata: the store is complete."""
    group = open_store(path)
    del group[_DONE]
    zarr.consolidate_metadata(str(path))
