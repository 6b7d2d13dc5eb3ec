"""A cloudy day across a UTM zone border, for the nightly tests (masks, mosaics, local assets).

Two Sentinel-2-like items of one day whose footprints meet across 12°E: WEST in EPSG:32632,
EAST in EPSG:32633, overlapping by about 400 m. Each has 10 m band COGs (B02, B03, B04, B08,
uint16 DN, scale 1e-4) and a 20 m ``scl`` COG: vegetation (4) everywhere but for a cloud block
(9) and a cloud-shadow block (3), both outside the overlap. The ``onprem`` collection holds the
same WEST item with absolute local paths as hrefs (an on-premise catalog on a shared disk), and
one whose href climbs out of its folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as transform_points

SIZE = 192  # 10 m pixels per side
TOP = 5321500.0
E12 = {"EPSG:32632": 723775.9153967793, "EPSG:32633": 276224.0846032221}  # 12°E at 48°N
BANDS = {"blue": ("B02", 0.49), "green": ("B03", 0.56), "red": ("B04", 0.665),
         "nir": ("B08", 0.842)}
# item -> (CRS, left edge, eo:cloud_cover, SCL blocks as (value, rows, cols) on the 20 m grid)
ITEMS = {
    "S2C_WEST": ("EPSG:32632", round(E12["EPSG:32632"] - 1500, -1), 5.0,
                 [(9, slice(30, 45), slice(20, 35)), (3, slice(50, 56), slice(20, 30))]),
    "S2C_EAST": ("EPSG:32633", round(E12["EPSG:32633"] - 420, -1), 20.0,
                 [(9, slice(40, 55), slice(62, 78)), (3, slice(60, 66), slice(70, 80))]),
}
DATETIMES = {"S2C_WEST": "2024-06-01T10:30:00Z", "S2C_EAST": "2024-06-01T10:30:05Z"}
# AOI: 1 km either side of 12°E, within both items' rows
BBOX = (11.9866, 47.9985, 12.0134, 48.0045)


@dataclass
class CloudWorld:
    root: Path
    assets: Path
    stac_files: list[Path] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)


def write_cog(path: Path, data: np.ndarray, crs: str, transform, nodata: float | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
                       blocksize=64, compress="deflate") as dst:
        dst.write(data, 1)


def scl_array(item_id: str) -> np.ndarray:
    scl = np.full((SIZE // 2, SIZE // 2), 4, np.uint8)
    for value, rows, cols in ITEMS[item_id][3]:
        scl[rows, cols] = value
    return scl


def cloud_pixels(item_id: str) -> np.ndarray:
    """The item's masked pixels (SCL 3, 8, 9, 10) on its own 10 m grid."""
    masked = np.isin(scl_array(item_id), (0, 1, 3, 8, 9, 10))
    return masked.repeat(2, axis=0).repeat(2, axis=1)


def _footprint(crs: str, left: float, bottom: float, right: float, top: float) -> dict[str, Any]:
    xs = [left, right, right, left, left]
    ys = [top, top, bottom, bottom, top]
    lons, lats = transform_points(crs, "EPSG:4326", xs, ys)
    return {"type": "Polygon", "coordinates": [[[x, y] for x, y in zip(lons, lats)]]}


def _item(item_id: str, collection: str, assets: dict[str, Any]) -> dict[str, Any]:
    crs, left, cover, _ = ITEMS[item_id]
    geometry = _footprint(crs, left, TOP - SIZE * 10, left + SIZE * 10, TOP)
    ring = geometry["coordinates"][0]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "geometry": geometry,
        "bbox": [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring),
                 max(p[1] for p in ring)],
        "properties": {"platform": "sentinel-2a", "constellation": "sentinel-2",
                       "datetime": DATETIMES[item_id], "eo:cloud_cover": cover,
                       "proj:code": crs, "s2:processing_baseline": "04.00"},
        "links": [], "assets": assets,
    }


def _collection(collection_id: str) -> dict[str, Any]:
    return {"type": "Collection", "stac_version": "1.0.0", "id": collection_id,
            "description": f"test collection {collection_id}", "license": "CC-BY-4.0",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                       "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}},
            "summaries": {"platform": ["sentinel-2a"]}, "links": []}


def block_field(rng: np.random.Generator, block: int) -> np.ndarray:
    """Uniform ``block``-pixel squares of random values: a tile inside one sees one spectrum."""
    side = -(-SIZE // block)
    values = rng.integers(1001, 9000, (side, side)).astype(np.uint16)
    return values.repeat(block, axis=0).repeat(block, axis=1)[:SIZE, :SIZE]


def build(root: Path, asset_url: str, block: int = 0) -> CloudWorld:
    """Write the COGs (under ``root/assets``, served at ``asset_url``) and the STAC JSON; with
    ``block``, band values are uniform squares of that many pixels instead of smooth fields."""
    world = CloudWorld(root=root, assets=root / "assets")
    rng = np.random.default_rng(11)
    docs: dict[str, list[dict[str, Any]]] = {"s2-clouds": [], "onprem": []}
    for item_id, (crs, left, _, _) in ITEMS.items():
        assets, local = {}, {}
        for key, (name, wavelength) in BANDS.items():
            path = world.assets / item_id / f"{name}.tif"
            # smooth fields plus noise: regions the random model tells apart
            yy, xx = np.mgrid[0:SIZE, 0:SIZE]
            field_ = 4000 + 2500 * np.sin(yy / (17 + len(name))) * np.cos(xx / 23)
            data = (field_ + rng.normal(0, 300, field_.shape)).clip(1001, 9000).astype(np.uint16)
            if block:
                data = block_field(rng, block)
            write_cog(path, data, crs, from_origin(left, TOP, 10, 10), 0)
            asset = {"href": f"{asset_url}/{item_id}/{name}.tif",
                     "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                     "roles": ["data"], "gsd": 10,
                     "eo:bands": [{"name": name, "common_name": key,
                                   "center_wavelength": wavelength}],
                     "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 1e-4,
                                       "offset": -0.1}]}
            assets[key] = asset
            local[key] = dict(asset, href=str(path))
        scl_path = world.assets / item_id / "SCL.tif"
        write_cog(scl_path, scl_array(item_id), crs, from_origin(left, TOP, 20, 20), 0)
        scl = {"href": f"{asset_url}/{item_id}/SCL.tif",
               "type": "image/tiff; application=geotiff; profile=cloud-optimized",
               "roles": ["data"], "gsd": 20, "title": "Scene classification map",
               "raster:bands": [{"nodata": 0, "data_type": "uint8"}]}
        assets["scl"] = scl
        local["scl"] = dict(scl, href=f"file://{scl_path}")
        doc = _item(item_id, "s2-clouds", assets)
        world.items[item_id] = doc
        docs["s2-clouds"].append(doc)
        if item_id == "S2C_WEST":
            docs["onprem"].append(_item(item_id, "onprem", local))
            escape = dict(local, red=dict(local["red"], href=f"{world.assets}/../assets/x.tif"))
            onprem_up = _item(item_id, "onprem", escape)
            onprem_up["id"] = "S2C_UP"
            onprem_up["properties"]["datetime"] = "2024-06-02T10:30:00Z"
            docs["onprem"].append(onprem_up)
    stac = root / "stac"
    stac.mkdir()
    for cid, features in docs.items():
        (stac / f"{cid}.collection.json").write_text(json.dumps(_collection(cid)))
        (stac / f"{cid}.items.json").write_text(
            json.dumps({"type": "FeatureCollection", "features": features}))
        world.stac_files += [stac / f"{cid}.collection.json", stac / f"{cid}.items.json"]
    return world
