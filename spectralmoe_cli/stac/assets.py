"""Which asset (and which band inside it) holds each requested band, and how to read it.

Band names in catalogs are inconsistent: Planetary Computer labels B05, B06, B07 and B8A all
``common_name: rededge``; Landsat's ``B5`` is near-infrared while Sentinel-2's is red edge;
Earth Search v0 has no ``eo:bands`` at all, only asset keys. So each asset band is resolved to
a canonical band (``bands.resolve``) from, in order: a specific eo common name, the eo band name
read with the item's sensor, then the asset key. This is the one place that mapping happens;
``fetch`` and ``predict --stac`` both call ``band_sources``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import urljoin, urlparse

import pystac

from ..bands import Band, resolve, resolve_all
from ..errors import BandError, InputDataError
from .radiometry import Radiometry, band_radiometry, platform_family

_GENERIC_COMMON = {"rededge"}
_SKIP_ROLES = {"thumbnail", "overview", "metadata", "visual"}
_COG = "profile=cloud-optimized"


@dataclass(frozen=True)
class BandSource:
    """Where one canonical band lives and how to turn its values into physical units."""

    band: Band
    asset_key: str
    href: str
    band_index: int
    radiometry: Radiometry
    nodata: float | None
    data_type: str | None
    eo_band: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        return self.radiometry.scale

    @property
    def offset(self) -> float:
        return self.radiometry.offset


def _entries(asset: dict[str, Any]) -> list[dict[str, Any]]:
    """The asset's bands in one shape, from STAC 1.0 (eo:/raster:bands) or 1.1 (bands)."""
    if asset.get("bands"):
        return [{"name": b.get("name"), "common_name": b.get("eo:common_name"),
                 "center_wavelength": b.get("eo:center_wavelength"),
                 "scale": b.get("raster:scale", asset.get("raster:scale")),
                 "offset": b.get("raster:offset", asset.get("raster:offset")),
                 "nodata": b.get("nodata", asset.get("nodata")),
                 "data_type": b.get("data_type", asset.get("data_type")),
                 "eo": {k.removeprefix("eo:"): v for k, v in b.items()
                        if k == "name" or k.startswith("eo:")}}
                for b in asset["bands"]]
    eo = asset.get("eo:bands") or []
    raster = asset.get("raster:bands") or []
    count = max(len(eo), len(raster), 1)
    out = []
    for i in range(count):
        e = eo[i] if i < len(eo) and isinstance(eo[i], dict) else {}
        r = raster[i] if i < len(raster) and isinstance(raster[i], dict) else {}
        out.append({"name": e.get("name"), "common_name": e.get("common_name"),
                    "center_wavelength": e.get("center_wavelength"),
                    "scale": r.get("scale"), "offset": r.get("offset"), "nodata": r.get("nodata"),
                    "data_type": r.get("data_type"), "eo": dict(e)})
    return out


def _tails(text: str) -> list[str]:
    """``nbart_swir_1`` -> ``swir_1``, ``swir1``, ``1``: product prefixes dropped (DEA style)."""
    parts = text.split("_")
    tails = ["_".join(parts[i:]) for i in range(1, len(parts))]
    return [t for tail in tails for t in (tail, tail.replace("_", ""))]


def _resolve_entry(key: str, entry: dict[str, Any], sensor: str | None) -> Band | None:
    common = entry.get("common_name")
    candidates: list[tuple[str, str | None]] = []
    if common and str(common).lower() not in _GENERIC_COMMON:
        candidates.append((str(common), None))
    if entry.get("name"):
        candidates.append((str(entry["name"]), sensor))
    candidates.append((key, sensor))
    candidates += [(tail, None) for text in (entry.get("name"), key) if text
                   for tail in _tails(str(text))]
    for name, hint in candidates:
        try:
            return resolve(name, hint)
        except BandError:
            continue
    return None


def _is_raster(asset: dict[str, Any]) -> bool:
    roles = set(asset.get("roles") or [])
    if roles & _SKIP_ROLES and "data" not in roles:
        return False
    media = str(asset.get("type") or "").lower()
    return not media or "tiff" in media or "jp2" in media or "geotiff" in media


def asset_bands(assets: dict[str, dict[str, Any]], sensor: str | None
                ) -> list[tuple[Band, str, int, dict[str, Any], int]]:
    """Every (canonical band, asset key, 1-based index, entry, bands in asset) found."""
    found = []
    for key, asset in assets.items():
        if not _is_raster(asset):
            continue
        entries = _entries(asset)
        for index, entry in enumerate(entries, start=1):
            if len(entries) > 1 and not entry.get("name") and not entry.get("common_name"):
                continue
            band = _resolve_entry(key, entry, sensor)
            if band is not None:
                found.append((band, key, index, entry, len(entries)))
    return found


def _preference(found: tuple, assets: dict[str, dict[str, Any]]) -> tuple:
    """Single-band over multi-band assets, COG over other formats, then by key (stable)."""
    _, key, _, _, count = found
    media = str(assets[key].get("type") or "")
    return (count > 1, _COG not in media, key)


def _check_href(raw: str, what: str) -> None:
    path = urlparse(raw).path if "://" in raw else raw
    if ".." in path.replace("\\", "/").split("/"):
        raise InputDataError(f"{what}: href {raw!r} climbs out of its folder ('..'); refused")


def gdal_path(raw: str, base: str | None, *, allow_local: bool, what: str) -> str:
    """A GDAL-readable path: ``/vsicurl/`` for http(s), ``/vsis3/`` for s3.

    A catalog on the network may not point us at local files (``/etc/...``, ``file://``,
    ``/vsi...``): that would copy the machine's own data into the output. Local paths are
    allowed only for an item that itself is a local file (``allow_local``).
    """
    _check_href(raw, what)
    scheme = urlparse(raw).scheme.lower()
    if scheme in ("http", "https"):
        return "/vsicurl/" + raw
    if scheme == "s3":
        parsed = urlparse(raw)
        return f"/vsis3/{parsed.netloc}{parsed.path}"
    if scheme and len(scheme) > 1 and scheme != "file":
        raise InputDataError(f"{what}: href {raw!r} uses the unsupported scheme {scheme!r}")
    base_scheme = urlparse(base).scheme.lower() if base else ""
    if not scheme and not raw.startswith(("/", "\\")) and base_scheme in ("http", "https"):
        return "/vsicurl/" + urljoin(base, raw)
    if not allow_local:
        raise InputDataError(f"{what}: href {raw!r} is a local path in an item from the network; "
                             f"refused (asset hrefs must be http(s) or s3 URLs)")
    local = urlparse(raw).path if scheme == "file" else raw
    if not posixpath.isabs(local) and base:
        local = posixpath.join(posixpath.dirname(urlparse(base).path if "://" in base else base),
                               local)
    return local


def item_sensor(item: pystac.Item) -> str | None:
    return platform_family(item.properties)


def available_bands(assets: dict[str, dict[str, Any]], sensor: str | None) -> list[Band]:
    """The canonical bands the assets provide, in first-seen order."""
    seen: dict[str, Band] = {}
    for band, *_ in asset_bands(assets, sensor):
        seen.setdefault(band.name, band)
    return list(seen.values())


def band_sources(item: pystac.Item, bands: Sequence[str | Band], *,
                 allow_local: bool = False) -> list[BandSource]:
    """The asset band, GDAL path, scale/offset and nodata for each requested band, in order.

    Raises ``BandError`` naming every band the item lacks, ``InputDataError`` for an href that
    is unsafe to read.
    """
    wanted_bands = [b for b in bands if isinstance(b, Band)]
    if len(wanted_bands) != len(bands):
        wanted_bands = resolve_all([str(b) for b in bands])
    assets = {k: a.to_dict() for k, a in item.assets.items()}
    sensor = item_sensor(item)
    found = asset_bands(assets, sensor)
    missing = [b.name for b in wanted_bands if all(f[0] != b for f in found)]
    if missing:
        have = ", ".join(b.name for b in available_bands(assets, sensor)) or "none"
        raise BandError(f"item {item.id!r} has no band {', '.join(missing)} "
                        f"(it has: {have})")
    base = item.get_self_href()
    sources = []
    for band in wanted_bands:
        _, key, index, entry, _ = min((f for f in found if f[0] == band),
                                      key=lambda f: _preference(f, assets))
        what = f"item {item.id!r} asset {key!r}"
        href = gdal_path(assets[key]["href"], base, allow_local=allow_local, what=what)
        rad = band_radiometry(item.properties, item.id, band, _float(entry.get("scale")),
                              _float(entry.get("offset")))
        sources.append(BandSource(band=band, asset_key=key, href=href, band_index=index,
                                  radiometry=rad, nodata=_float(entry.get("nodata")),
                                  data_type=entry.get("data_type"), eo_band=entry.get("eo") or {}))
    return sources


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_collection_bands(item_assets: dict[str, dict[str, Any]], properties: dict[str, Any],
                           bands: Iterable[Band], collection: str) -> None:
    """Fail before any search if the collection's ``item_assets`` lack a requested band."""
    if not item_assets:
        return
    sensor = platform_family(properties)
    offered = available_bands(item_assets, sensor)
    names = {b.name for b in offered}
    missing = [b.name for b in bands if b.name not in names]
    if missing:
        raise BandError(f"collection {collection!r} has no band {', '.join(missing)} "
                        f"(its item_assets offer: {', '.join(sorted(names)) or 'none'})")


def check_collection(collection: pystac.Collection, bands: Iterable[Band]) -> None:
    """``check_collection_bands`` for a collection as an API serves it: the sensor (which
    tells what ``B5`` means) comes from its ``platform`` or ``constellation`` summary."""
    summaries = collection.summaries.to_dict() if collection.summaries else {}
    platform = (summaries.get("platform") or summaries.get("constellation") or [None])[0]
    check_collection_bands(collection.extra_fields.get("item_assets") or {},
                           {"platform": platform}, bands, collection.id)
