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
import stac_docs
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from stac_docs import band_asset

CRS = "EPSG:32633"
PLATFORM = "sentinel-2b"
X0, Y0 = 500000.0, 5000000.0
SIZE = 512  # 10 m pixels per side: 5120 m
BANDS_10M = {"blue": ("B02", 0.49), "green": ("B03", 0.56), "red": ("B04", 0.665),
             "nir": ("B08", 0.842)}
BAND_20M = {"swir16": ("B11", 1.61)}
# the AOI in UTM metres: across both items, off their pixel grid on purpose
AOI_UTM = (503003.0, 4996004.0, 507497.0, 4997996.0)


def aoi_lonlat() -> tuple[float, float, float, float]:
    return transform_bounds(CRS, "EPSG:4326", *AOI_UTM, densify_pts=21)


def item(item_id: str, collection: str, bounds: tuple[float, float, float, float],
         assets: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return stac_docs.item(item_id, collection, CRS, bounds, assets,
                          {"platform": PLATFORM, **properties})


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
            stac_docs.write_cog(path, _scene(rng, n), CRS, from_origin(left, top, gsd, gsd), 0, 128)
            paths[key] = path
            assets[key] = band_asset(f"{asset_url}/{item_id}/{name}.tif", key, name, wl, gsd, raster)
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
                   {"red": band_asset(href, "red", "B04", 0.665, 10, {"scale": 1e-4})},
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

    item_assets = {k: {kk: vv for kk, vv in v.items() if kk != "href"}
                   for k, v in west["assets"].items()}
    collections = {cid: stac_docs.collection(cid, PLATFORM, item_assets if cid in (
        "s2-test", "flaky", "clouds") else None) for cid in items}
    world.stac_files += stac_docs.write_stac(root / "stac", items, collections)
    return world
