"""What the served test worlds (``fetch_world``, ``cloud_world``) write alike: single-band COGs
and the STAC documents describing them, as a STAC API would serve them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.warp import transform as transform_points

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
EXTENSIONS = ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
              "https://stac-extensions.github.io/raster/v1.1.0/schema.json"]


def write_cog(path: Path, data: np.ndarray, crs: str, transform, nodata: float | None,
              blocksize: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
                       blocksize=blocksize, compress="deflate") as dst:
        dst.write(data, 1)


def footprint(crs: str, left: float, bottom: float, right: float, top: float) -> dict[str, Any]:
    """The bounds' outline in lon/lat: what a STAC item's geometry holds."""
    xs = [left, right, right, left, left]
    ys = [top, top, bottom, bottom, top]
    lons, lats = transform_points(crs, "EPSG:4326", xs, ys)
    return {"type": "Polygon", "coordinates": [[[x, y] for x, y in zip(lons, lats)]]}


def item(item_id: str, collection: str, crs: str, bounds: tuple[float, float, float, float],
         assets: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """A Sentinel-2 STAC item over ``bounds`` (in ``crs``); ``properties`` name the platform."""
    geometry = footprint(crs, *bounds)
    ring = geometry["coordinates"][0]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "stac_extensions": list(EXTENSIONS),
        "geometry": geometry,
        "bbox": [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring),
                 max(p[1] for p in ring)],
        "properties": {"platform": properties["platform"], "constellation": "sentinel-2",
                       **properties},
        "links": [], "assets": assets,
    }


def collection(collection_id: str, platform: str,
               item_assets: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = {"type": "Collection", "stac_version": "1.0.0", "id": collection_id,
           "description": f"test collection {collection_id}", "license": "CC-BY-4.0",
           "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                      "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}},
           "summaries": {"platform": [platform]}, "links": []}
    if item_assets is not None:
        doc["item_assets"] = item_assets
        doc["stac_extensions"] = [
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"]
    return doc


def write_stac(stac: Path, docs: dict[str, list[dict[str, Any]]],
               collections: dict[str, dict[str, Any]]) -> list[Path]:
    """Each collection and its items as the JSON files rustac serves; their paths."""
    stac.mkdir()
    files = []
    for cid, features in docs.items():
        (stac / f"{cid}.collection.json").write_text(json.dumps(collections[cid]))
        (stac / f"{cid}.items.json").write_text(
            json.dumps({"type": "FeatureCollection", "features": features}))
        files += [stac / f"{cid}.collection.json", stac / f"{cid}.items.json"]
    return files


def band_asset(href: str, key: str, name: str, wavelength: float, gsd: int,
               raster: dict[str, Any]) -> dict[str, Any]:
    """A uint16 band COG asset (nodata 0); ``raster`` adds its scale and offset, if any."""
    return {"href": href, "type": COG_TYPE, "roles": ["data"], "gsd": gsd,
            "eo:bands": [{"name": name, "common_name": key, "center_wavelength": wavelength}],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", **raster}]}
