"""Vector labels: polygons with a class field (GeoPackage, GeoJSON, shapefile, GeoParquet, anything
pyogrio reads), reprojected to an image's CRS and burnt onto its pixel grid window by window.

Rasterising follows GDAL's default pixel-centre rule: a pixel takes a polygon's value when the
polygon contains the pixel's centre (``all_touched=False``); where polygons overlap, the one later
in the file wins. Pixels whose centre lies in no polygon get the fill value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import rasterio.features
import rasterio.warp
import shapely
from affine import Affine
from pyogrio.errors import DataSourceError, FieldError
from rasterio.windows import Window, bounds as window_bounds, transform as window_transform

from ..errors import InputDataError



@dataclass(frozen=True)
class VectorFile:
    """Every feature of a vector file: polygons, their field values as text, and the file's CRS."""

    path: Path
    field: str
    geometries: np.ndarray  # shapely geometries
    values: tuple[str, ...]
    crs: str

    def within(self, crs: str, bounds: tuple[float, float, float, float]) -> "VectorFile":
        """The features whose envelope meets ``bounds`` (given in ``crs``), reprojected to ``crs``."""
        box = rasterio.warp.transform_bounds(crs, self.crs, *bounds, densify_pts=21)
        envelopes = shapely.bounds(self.geometries)
        near = ((envelopes[:, 0] <= box[2]) & (envelopes[:, 2] >= box[0])
                & (envelopes[:, 1] <= box[3]) & (envelopes[:, 3] >= box[1]))
        index = np.flatnonzero(near)
        return VectorFile(self.path, self.field, reproject(self.geometries[index], self.crs, crs),
                          tuple(self.values[i] for i in index), crs)


def read_vector(path: Path, field: str) -> VectorFile:
    """All polygons of ``path`` with ``field`` as text; InputDataError on a missing field, no CRS,
    an empty value or a geometry that is not a polygon."""
    try:
        info = pyogrio.read_info(path)
        fields = [str(f) for f in info["fields"]]
        if field not in fields:
            raise InputDataError(f"{path} has no field {field!r} (fields: {', '.join(fields) or 'none'}); "
                                 f"name the class field with --label-field")
        meta, _, wkb, columns = pyogrio.raw.read(path, columns=[field])
    except (DataSourceError, FieldError) as exc:
        raise InputDataError(f"cannot read vector labels {path}: {exc}") from exc
    if not meta.get("crs"):
        raise InputDataError(f"{path} declares no CRS; vector labels need one to meet the images")
    geometries = shapely.from_wkb(wkb)
    kept = ~shapely.is_missing(geometries) & ~shapely.is_empty(geometries)
    kinds = set(shapely.get_type_id(geometries[kept]).tolist()) - {3, 6}
    if kinds:
        raise InputDataError(f"{path} holds non-polygon geometries; label polygons only "
                             f"(Polygon, MultiPolygon)")
    raw = columns[0][kept]
    empty = [i for i, v in enumerate(raw) if v is None or (isinstance(v, float) and np.isnan(v))
             or str(v).strip() == ""]
    if empty:
        raise InputDataError(f"{path}: {len(empty)} polygon(s) have no value in field {field!r}")
    values = tuple(_text(v) for v in raw)
    return VectorFile(path, field, geometries[kept], values, str(meta["crs"]))


def _text(value: object) -> str:
    """A field value as text: whole floats as integers (a class value stored as 3.0 is 3)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def reproject(geometries: np.ndarray, src_crs: str, dst_crs: str) -> np.ndarray:
    """Every vertex transformed from ``src_crs`` to ``dst_crs`` (no densification)."""
    if src_crs == dst_crs or len(geometries) == 0:
        return geometries

    def move(coords: np.ndarray) -> np.ndarray:
        xs, ys = rasterio.warp.transform(src_crs, dst_crs, coords[:, 0], coords[:, 1])
        return np.column_stack([xs, ys])

    return shapely.transform(geometries, move)


def burn(geometries: np.ndarray, numbers: np.ndarray, grid: Affine, window: Window,
         fill: int) -> np.ndarray:
    """uint8 [h, w] of ``window`` on the grid ``grid``: each pixel the number of the last polygon
    containing its centre, else ``fill``."""
    height, width = int(window.height), int(window.width)
    left, bottom, right, top = window_bounds(window, grid)
    envelopes = shapely.bounds(geometries) if len(geometries) else np.zeros((0, 4))
    lo_x, hi_x = min(left, right), max(left, right)
    lo_y, hi_y = min(bottom, top), max(bottom, top)
    near = np.flatnonzero((envelopes[:, 0] <= hi_x) & (envelopes[:, 2] >= lo_x)
                          & (envelopes[:, 1] <= hi_y) & (envelopes[:, 3] >= lo_y))
    if not len(near):
        return np.full((height, width), fill, dtype=np.uint8)
    return rasterio.features.rasterize(
        zip(geometries[near], numbers[near].tolist()), out_shape=(height, width),
        transform=window_transform(window, grid), fill=fill, dtype="uint8", all_touched=False)
