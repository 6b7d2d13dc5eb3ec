"""The STAC item describing one predicted map: where it is, what it holds, where it came from."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as transform_points

from ..files import file_checksum, write_json_atomic
from ..labels import CLASS_MAP_NODATA
from .polygons import VECTOR_FORMATS
from .proj import proj_properties

EXTENSIONS = [
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
]


def footprint(crs: CRS, transform: Affine, height: int, width: int
              ) -> tuple[list[list[float]], list[float]]:
    """A grid's outline in lon/lat (edges densified, so projected grids stay right) and bbox.

    The outline walks the grid's four edges in pixel space and maps each point through the
    transform, so a rotated or sheared grid gives its true (rotated) polygon.
    """
    steps = np.linspace(0.0, 1.0, 10, endpoint=False)
    cols = np.concatenate([width * steps, np.full(10, width), width - width * steps,
                           np.zeros(10)])
    rows = np.concatenate([np.zeros(10), height * steps, np.full(10, height),
                           height - height * steps])
    xs, ys = transform @ (cols, rows)
    lons, lats = transform_points(crs, "EPSG:4326", xs.tolist(), ys.tolist())
    ring = [[round(x, 9), round(y, 9)] for x, y in zip(lons, lats)]
    ring.append(ring[0])
    return ring, [min(lons), min(lats), max(lons), max(lats)]


def build_item(name: str, source: str, crs: CRS | None, transform: Affine, height: int,
               width: int, classes: list[tuple[int, str, tuple[int, int, int]]],
               assets: dict[str, Path], model: dict, settings: dict, version: str,
               source_items: Sequence[str] = (), extra_properties: dict | None = None) -> dict:
    """A STAC 1.1 item; asset hrefs are relative to the item's folder. It is
    ``derived_from`` each of ``source_items`` (STAC items: one, or a mosaic's every item), else
    from the raster ``source``.

    ``extra_properties`` (e.g. ``spectralmoe:masked_fraction``) are added only when given, so an
    item without them is the same as before."""
    geometry, bbox = None, None
    if crs is not None:
        ring, bbox = footprint(crs, transform, height, width)
        geometry = {"type": "Polygon", "coordinates": [ring]}
    proj = proj_properties(crs, transform, height, width)
    wkt2 = proj.pop("proj:wkt2", None)  # listed after the spectralmoe: properties
    classification = [{"value": v, "name": n, "color_hint": "%02X%02X%02X" % rgb}
                      for v, n, rgb in classes]
    properties = {
        "datetime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **proj,
        "processing:software": {"spectralmoe": version},
        "spectralmoe:model": model,
        "spectralmoe:settings": settings,
        **(extra_properties or {}),
    }
    if wkt2 is not None:
        properties["proj:wkt2"] = wkt2
    out_assets: dict[str, dict] = {}
    for key, path in assets.items():
        asset: dict = {"href": f"./{path.name}"}
        if key == "classes":
            checksum, size = file_checksum(path)
            asset.update({
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"], "title": "land-cover classes",
                "raster:bands": [{"nodata": CLASS_MAP_NODATA, "data_type": "uint8"}],
                "classification:classes": classification,
                "file:checksum": checksum, "file:size": size,
            })
        elif key == "zarr":
            asset.update({"type": "application/vnd+zarr", "roles": ["data"],
                          "title": "classes (and probabilities) as Zarr",
                          "classification:classes": classification})
        elif key.startswith("polygons_"):
            asset.update({"type": VECTOR_FORMATS[key.removeprefix("polygons_")], "roles": ["data"],
                          "title": "class polygons (class, name, area_m2)",
                          "classification:classes": classification})
        elif key == "quicklook":
            asset.update({"type": "image/png", "roles": ["thumbnail", "overview"],
                          "title": "quicklook with legend"})
        out_assets[key] = asset
    links = ([{"rel": "derived_from", "href": href,
               "type": "image/tiff" if href.lower().endswith((".tif", ".tiff"))
               else "application/geo+json"} for href in source_items]
             or [{"rel": "derived_from", "href": source, "type": "image/tiff"}])
    item = {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": EXTENSIONS, "id": name,
        "geometry": geometry, "properties": properties, "links": links, "assets": out_assets,
    }
    if bbox is not None:
        item["bbox"] = bbox
    return item


def write_item(item: dict, path: Path) -> None:
    write_json_atomic(path, item)
