"""The local STAC written next to fetched rasters: one item per COG and a catalog linking them.

Self-contained (relative hrefs, no ``self`` links), so the folder can be moved or synced and
still opened by pystac, QGIS or ``spectralmoe predict``. The item is written last and
atomically: its presence, with ``file:checksum``/``file:size`` matching the COG, is what marks
an item as finished for the next run.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pystac

from ..bands import resolve
from ..errors import BandError, InputDataError
from ..files import write_json_atomic
from .assets import BandSource

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
CATALOG_ID = "spectralmoe-fetch"
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
]
_PER_ASSET = {"eo:bands", "raster:bands", "bands"}  # the source's, for all of its assets
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=@-]{0,199}")


def check_item_id(item_id: str) -> str:
    """An item id we may use as a file and folder name: no separators, no '..', no leading dot."""
    if not _SAFE_ID.fullmatch(item_id or "") or ".." in item_id:
        raise InputDataError(
            f"item id {item_id!r} cannot be used as a file name (path separators, '..', a leading "
            f"dot or unusual characters); refused so nothing is written outside --out")
    return item_id


def _eo_band(source: BandSource) -> dict[str, Any]:
    entry = dict(source.eo_band) or {"name": source.band.name}
    try:
        common = resolve(source.band.name).name == source.band.name
    except BandError:
        common = False
    if common and not source.band.name.startswith("wl"):
        entry["common_name"] = source.band.name
    if source.band.wavelength is not None:
        entry.setdefault("center_wavelength", source.band.wavelength)
    return entry


def local_item(source: pystac.Item, bands: Sequence[BandSource], *, cog_name: str,
               proj: dict[str, Any], footprint: list[list[float]], bbox: Sequence[float],
               raster_bands: list[dict[str, Any]], checksum: str, size: int,
               source_href: str | None) -> dict[str, Any]:
    """The STAC item for one fetched COG (a dict ready for JSON)."""
    properties = {k: v for k, v in source.properties.items()
                  if not k.startswith("proj:") and k not in _PER_ASSET}
    properties.update(proj)
    properties["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
    links: list[dict[str, Any]] = [
        {"rel": "root", "href": "../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
    ]
    if source_href:
        links.append({"rel": "derived_from", "href": source_href, "type": "application/geo+json",
                      "title": f"source item {source.id}"})
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": EXTENSIONS,
        "id": source.id,
        "geometry": {"type": "Polygon", "coordinates": [footprint]},
        "bbox": list(bbox),
        "properties": properties,
        "links": links,
        "assets": {
            "data": {
                "href": f"./{cog_name}",
                "type": COG_MEDIA_TYPE,
                "title": "reflectance clipped to the AOI: " + ", ".join(b.band.name for b in bands),
                "roles": ["data"],
                "eo:bands": [_eo_band(b) for b in bands],
                "raster:bands": raster_bands,
                "file:checksum": checksum,
                "file:size": size,
            }
        },
    }


def write_catalog(out: Path, description: str) -> Path:
    """``catalog.json`` linking every finished item under ``out`` (this run's and earlier ones)."""
    links: list[dict[str, Any]] = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"}]
    for item_path in sorted(out.glob("*/*.json")):
        if item_path.stem == item_path.parent.name:
            links.append({"rel": "item", "href": f"./{item_path.parent.name}/{item_path.name}",
                          "type": "application/geo+json"})
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": CATALOG_ID,
               "description": description, "links": links}
    path = out / "catalog.json"
    write_json_atomic(path, catalog)
    return path
