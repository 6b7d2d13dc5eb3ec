"""A raster grid's projection in STAC ``proj:`` terms (projection extension v2): one rule for
the predicted map's item, the fetched clips' items and the Zarr store's GeoZarr attributes."""

from __future__ import annotations

from typing import Any

from affine import Affine
from rasterio.crs import CRS


def epsg_code(crs: CRS | None) -> str | None:
    """``EPSG:n`` when the CRS has an EPSG code, else None (``proj:wkt2`` then says what it is)."""
    epsg = crs.to_epsg() if crs is not None else None
    return f"EPSG:{epsg}" if epsg else None


def transform_list(transform: Affine) -> list[float]:
    """The six GDAL-order coefficients a, b, c, d, e, f (``proj:transform``)."""
    return [transform.a, transform.b, transform.c, transform.d, transform.e, transform.f]


def grid_bbox(transform: Affine, height: int, width: int) -> list[float]:
    """[min x, min y, max x, max y] of the grid's four outer corners, in its CRS, whichever way
    up: all four, because a rotated grid's extremes are not at two opposite corners."""
    xs, ys = zip(*(transform @ corner for corner in ((0, 0), (width, 0), (width, height),
                                                     (0, height))))
    return [min(xs), min(ys), max(xs), max(ys)]


def proj_properties(crs: CRS | None, transform: Affine, height: int, width: int
                    ) -> dict[str, Any]:
    """``proj:code`` (None without EPSG), ``proj:shape``, ``proj:transform``, ``proj:bbox``, and
    ``proj:wkt2`` for a CRS that has no EPSG code."""
    code = epsg_code(crs)
    properties: dict[str, Any] = {"proj:code": code, "proj:shape": [height, width],
                                  "proj:transform": transform_list(transform),
                                  "proj:bbox": grid_bbox(transform, height, width)}
    if crs is not None and code is None:
        properties["proj:wkt2"] = crs.to_wkt()
    return properties
