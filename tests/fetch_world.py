"""A small Sentinel-2-like world for the fetch tests: real COGs written with rasterio, STAC
collections and items describing them, as a STAC API would serve them.

Two adjacent items (west, east) on one UTM grid, 10 m bands B02/B03/B04/B08 and a 20 m B11,
uint16 DN with nodata 0 and a block of nodata. The west item declares the baseline offset in
``raster:bands`` (baseline 04.00); the east one only states baseline 05.09, so fetch must add
the offset itself. Other collections hold items with various cloud covers, broken assets
(missing, truncated) and unsafe ids or hrefs.
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
from rasterio.warp import transform_bounds

CRS = "EPSG:32633"
X0, Y0 = 500000.0, 5000000.0
SIZE = 512  # 10 m pixels per side: 5120 m
BANDS_10M = {"blue": ("B02", 0.49), "green": ("B03", 0.56), "red": ("B04", 0.665),
             "nir": ("B08", 0.842)}
BAND_20M = {"swir16": ("B11", 1.61)}
# the AOI in UTM metres: across both items, off their pixel grid on purpose
AOI_UTM = (503003.0, 4996004.0, 507497.0, 4997996.0)


def aoi_lonlat() -> tuple[float, float, float, float]:
    return transform_bounds(CRS, "EPSG:4326", *AOI_UTM, densify_pts=21)


def write_cog(path: Path, data: np.ndarray, transform, nodata: float | None = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs=CRS, transform=transform, nodata=nodata,
                       blocksize=128, compress="deflate") as dst:
        dst.write(data, 1)


def footprint(left: float, bottom: float, right: float, top: float) -> dict[str, Any]:
    xs = [left, right, right, left, left]
    ys = [top, top, bottom, bottom, top]
    lons, lats = transform_points(CRS, "EPSG:4326", xs, ys)
    return {"type": "Polygon", "coordinates": [[[x, y] for x, y in zip(lons, lats)]]}


def _asset(href: str, key: str, name: str, wavelength: float, gsd: int,
           raster: dict[str, Any]) -> dict[str, Any]:
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"], "gsd": gsd,
            "eo:bands": [{"name": name, "common_name": key, "center_wavelength": wavelength}],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", **raster}]}


def item(item_id: str, collection: str, bounds: tuple[float, float, float, float],
         assets: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    geometry = footprint(*bounds)
    ring = geometry["coordinates"][0]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "geometry": geometry,
        "bbox": [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring),
                 max(p[1] for p in ring)],
        "properties": {"platform": "sentinel-2b", "constellation": "sentinel-2", **properties},
        "links": [], "assets": assets,
    }


def collection(collection_id: str, item_assets: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = {"type": "Collection", "stac_version": "1.0.0", "id": collection_id,
           "description": f"test collection {collection_id}", "license": "CC-BY-4.0",
           "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                      "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}},
           "summaries": {"platform": ["sentinel-2b"]}, "links": []}
    if item_assets is not None:
        doc["item_assets"] = item_assets
        doc["stac_extensions"] = [
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"]
    return doc


@dataclass
class World:
    root: Path
    assets: Path
    stac_files: list[Path] = field(default_factory=list)
    sources: dict[str, dict[str, Path]] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)


def _scene(rng: np.random.Generator, size: int) -> np.ndarray:
    data = rng.integers(1001, 9000, size=(size, size), dtype=np.uint16)
    data[size // 3: size // 3 + size // 16, :] = 0  # a nodata stripe crossing the AOI
    return data


def build(root: Path, asset_url: str, flaky_url: str) -> World:
    """Write the COGs and the STAC JSON; hrefs point at ``asset_url`` (nginx) or ``flaky_url``."""
    world = World(root=root, assets=root / "assets")
    rng = np.random.default_rng(7)
    items: dict[str, list[dict[str, Any]]] = {"s2-test": [], "clouds": [], "broken": [],
                                              "unsafe-id": [], "unsafe-href": [], "flaky": []}
    specs = {
        "S2T_WEST": (X0, {"s2:processing_baseline": "04.00", "eo:cloud_cover": 10.0,
                          "datetime": "2024-05-02T10:00:00Z"}, {"scale": 1e-4, "offset": -0.1}),
        "S2T_EAST": (X0 + SIZE * 10, {"s2:processing_baseline": "05.09", "eo:cloud_cover": 12.5,
                                      "datetime": "2024-05-03T10:00:00Z"}, {"scale": 1e-4}),
    }
    for item_id, (left, props, raster) in specs.items():
        top = Y0
        bounds = (left, top - SIZE * 10, left + SIZE * 10, top)
        assets, paths = {}, {}
        for key, (name, wl) in {**BANDS_10M, **BAND_20M}.items():
            gsd = 20 if key in BAND_20M else 10
            n = SIZE * 10 // gsd
            path = world.assets / item_id / f"{name}.tif"
            write_cog(path, _scene(rng, n), from_origin(left, top, gsd, gsd))
            paths[key] = path
            assets[key] = _asset(f"{asset_url}/{item_id}/{name}.tif", key, name, wl, gsd, raster)
        world.sources[item_id] = paths
        doc = item(item_id, "s2-test", bounds, assets, props)
        world.items[item_id] = doc
        items["s2-test"].append(doc)
        flaky = json.loads(json.dumps(doc).replace(asset_url, flaky_url))
        flaky["id"] = item_id + "_FLAKY"
        flaky["collection"] = "flaky"
        items["flaky"].append(flaky)

    west = world.items["S2T_WEST"]
    for n, cover in enumerate([5.0, 15.0, 45.0, 80.0, None, 19.99]):
        props = {"datetime": f"2024-05-{10 + n:02d}T10:00:00Z"}
        if cover is not None:
            props["eo:cloud_cover"] = cover
        doc = json.loads(json.dumps(west))
        doc.update(id=f"CLOUD_{n}", collection="clouds")
        doc["properties"] = {**doc["properties"], **props}
        if cover is None:
            del doc["properties"]["eo:cloud_cover"]
        items["clouds"].append(doc)

    truncated = world.assets / "BROKEN_TRUNC" / "B04.tif"
    truncated.parent.mkdir(parents=True)
    full = world.sources["S2T_WEST"]["red"].read_bytes()
    truncated.write_bytes(full[: len(full) // 3])
    for item_id, href in (("BROKEN_404", f"{asset_url}/BROKEN_404/B04.tif"),
                          ("BROKEN_TRUNC", f"{asset_url}/BROKEN_TRUNC/B04.tif"),
                          ("BROKEN_OK", f"{asset_url}/S2T_WEST/B04.tif")):
        doc = item(item_id, "broken", (X0, Y0 - SIZE * 10, X0 + SIZE * 10, Y0),
                   {"red": _asset(href, "red", "B04", 0.665, 10, {"scale": 1e-4})},
                   {"datetime": "2024-05-05T10:00:00Z", "s2:processing_baseline": "02.14"})
        items["broken"].append(doc)

    good_red = {"red": west["assets"]["red"]}
    items["unsafe-id"].append(item("../../escaped", "unsafe-id",
                                   (X0, Y0 - SIZE * 10, X0 + SIZE * 10, Y0), good_red,
                                   {"datetime": "2024-05-05T10:00:00Z"}))
    for item_id, href in (("HREF_UP", "../../../etc/B04.tif"), ("HREF_LOCAL", "/etc/hostname")):
        asset = dict(west["assets"]["red"], href=href)
        items["unsafe-href"].append(item(item_id, "unsafe-href",
                                         (X0, Y0 - SIZE * 10, X0 + SIZE * 10, Y0),
                                         {"red": asset}, {"datetime": "2024-05-05T10:00:00Z"}))

    stac = root / "stac"
    stac.mkdir()
    item_assets = {k: {kk: vv for kk, vv in v.items() if kk != "href"}
                   for k, v in west["assets"].items()}
    for cid, docs in items.items():
        col = collection(cid, item_assets if cid in ("s2-test", "flaky", "clouds") else None)
        (stac / f"{cid}.collection.json").write_text(json.dumps(col))
        (stac / f"{cid}.items.json").write_text(
            json.dumps({"type": "FeatureCollection", "features": docs}))
        world.stac_files += [stac / f"{cid}.collection.json", stac / f"{cid}.items.json"]
    return world
