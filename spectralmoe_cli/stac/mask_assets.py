"""A STAC item's quality asset: the raster that says where clouds and shadows are.

Sentinel-2 L2A items carry the scene classification as ``scl`` (Earth Search) or ``SCL``
(Planetary Computer); Landsat Collection 2 L2 items carry ``qa_pixel``. Keys are matched
case-insensitively; the href passes the same safety rules as the band assets.
"""

from __future__ import annotations

from dataclasses import dataclass

import pystac

from .assets import gdal_path

SCL_KEY = "scl"
QA_PIXEL_KEY = "qa_pixel"


@dataclass(frozen=True)
class MaskAsset:
    """Where an item's mask raster is (GDAL path) and its declared nodata."""

    key: str
    href: str
    nodata: float | None


def find_mask_asset(item: pystac.Item, key: str, *, allow_local: bool) -> MaskAsset | None:
    """The asset whose key is ``key`` (any case), or ``None``."""
    for asset_key, asset in item.assets.items():
        if asset_key.lower() != key.lower():
            continue
        doc = asset.to_dict()
        raster = (doc.get("raster:bands") or doc.get("bands") or [{}])[0]
        nodata = raster.get("nodata", doc.get("nodata")) if isinstance(raster, dict) else None
        href = gdal_path(doc["href"], item.get_self_href(), allow_local=allow_local,
                         what=f"item {item.id!r} asset {asset_key!r}")
        return MaskAsset(asset_key, href, None if nodata is None else float(nodata))
    return None
