"""A cloudy day across a UTM zone border, for the nightly tests (masks, mosaics, local assets).

Two Sentinel-2-like items of one day whose footprints meet across 12°E: WEST in EPSG:32632,
EAST in EPSG:32633, overlapping by about 400 m. Each has 10 m band COGs (B02, B03, B04, B08,
uint16 DN, scale 1e-4) and a 20 m ``scl`` COG: vegetation (4) everywhere but for a cloud block
(9) and a cloud-shadow block (3), both outside the overlap. The ``onprem`` collection holds the
same WEST item with absolute local paths as hrefs (an on-premise catalog on a shared disk), and
one whose href climbs out of its folder. ``CloudServers`` serves it on 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import stac_docs
from rasterio.transform import from_origin
from stac_servers import Nginx, Rustac

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
PLATFORM = "sentinel-2a"


@dataclass
class CloudWorld:
    root: Path
    assets: Path
    stac_files: list[Path] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)


def scl_array(item_id: str) -> np.ndarray:
    scl = np.full((SIZE // 2, SIZE // 2), 4, np.uint8)
    for value, rows, cols in ITEMS[item_id][3]:
        scl[rows, cols] = value
    return scl


def cloud_pixels(item_id: str) -> np.ndarray:
    """The item's masked pixels (SCL 3, 8, 9, 10) on its own 10 m grid."""
    masked = np.isin(scl_array(item_id), (0, 1, 3, 8, 9, 10))
    return masked.repeat(2, axis=0).repeat(2, axis=1)


def _item(item_id: str, collection: str, assets: dict[str, Any]) -> dict[str, Any]:
    crs, left, cover, _ = ITEMS[item_id]
    return stac_docs.item(item_id, collection, crs, (left, TOP - SIZE * 10, left + SIZE * 10, TOP),
                          assets, {"platform": PLATFORM, "datetime": DATETIMES[item_id],
                                   "eo:cloud_cover": cover, "proj:code": crs,
                                   "s2:processing_baseline": "04.00"})


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
            stac_docs.write_cog(path, data, crs, from_origin(left, TOP, 10, 10), 0, 64)
            asset = stac_docs.band_asset(f"{asset_url}/{item_id}/{name}.tif", key, name,
                                         wavelength, 10, {"scale": 1e-4, "offset": -0.1})
            assets[key] = asset
            local[key] = dict(asset, href=str(path))
        scl_path = world.assets / item_id / "SCL.tif"
        stac_docs.write_cog(scl_path, scl_array(item_id), crs, from_origin(left, TOP, 20, 20), 0,
                            64)
        scl = {"href": f"{asset_url}/{item_id}/SCL.tif", "type": stac_docs.COG_TYPE,
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
    collections = {cid: stac_docs.collection(cid, PLATFORM) for cid in docs}
    world.stac_files += stac_docs.write_stac(root / "stac", docs, collections)
    return world


class CloudServers:
    """The world served for real: nginx for the COGs, rustac for the STAC API (a context manager
    that stops both). ``block`` as in ``build``."""

    def __init__(self, root: Path, block: int = 0):
        self.nginx = Nginx(root / "assets", root / "nginx")
        self.world = build(root, self.nginx.url, block=block)
        self.rustac = Rustac(self.world.stac_files)
        self.url = self.rustac.url

    def item_url(self, item_id: str, collection: str = "s2-clouds") -> str:
        return f"{self.url}/collections/{collection}/items/{item_id}"

    def bbox(self) -> str:
        """Both items' footprints, whole: the clouds lie inside."""
        boxes = [doc["bbox"] for doc in self.world.items.values()]
        return ",".join(f"{v:.6f}" for v in (min(b[0] for b in boxes), min(b[1] for b in boxes),
                                               max(b[2] for b in boxes), max(b[3] for b in boxes)))

    def stop(self) -> None:
        self.rustac.stop()
        self.nginx.stop()

    def __enter__(self) -> CloudServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
