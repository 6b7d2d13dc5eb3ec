"""``--mosaic``: the items of one collection and solar day (or several rasters) as one scene.

Items are grouped by collection and *local solar* date at the AOI's centre (UTC + lon/15 h), so a
pass that crosses midnight UTC stays one day where the sun says it is. Each group becomes a
``MosaicSource``, opened when its turn comes like any other source: its grid is the AOI in
``--crs`` (default: the UTM zone of the AOI's centre) at ``--resolution`` (default: the finest
band's), and its parts are the items, least cloudy first (ties: newest first), each with its own
cloud mask (``--mask``). The output name is ``<collection>_<YYYY-MM-DD>_<aoi hash>`` plus the
usual model and settings hash; the identity holds every item's id and version, so a reprocessed
item makes a new map, and the map's STAC item links every item as ``derived_from``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Sequence

import pystac
import rasterio
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from ...checkpoint import CheckpointMeta
from ...errors import InputDataError, UsageError
from ...io.fetch_read import Grid
from ...io.masks import MaskSpec
from ...io.mosaic import (
    Footprint,
    Part,
    aoi_bounds,
    grid_hash,
    open_mosaic,
    parse_crs,
    snapped_grid,
    union,
    utm_crs,
)
from ...io.scene import Origin, Scene
from ...net import RetryPolicy, describe
from ...stac import Aoi, band_sources
from ...stac.local import check_item_id
from ...stac.search import order
from .masking import attach_mask, item_mask

CLOUD = "eo:cloud_cover"


@dataclass(frozen=True)
class MosaicGrid:
    """``--crs`` and ``--resolution`` as given (``None``: the defaults)."""

    crs: str | None = None
    resolution: float | None = None

    def grid(self, bounds_lonlat: tuple[float, float, float, float],
             footprints: Sequence[Footprint], native: Sequence[tuple[CRS, tuple]] = ()) -> Grid:
        """The AOI (lon/lat bbox) on the target grid; ``native`` bounds, if given, are unioned
        in their own CRS instead of the lon/lat box (rasters without an AOI)."""
        west, south, east, north = bounds_lonlat
        crs = CRS.from_user_input(self.crs) if self.crs else utm_crs((west + east) / 2,
                                                                     (south + north) / 2)
        resolution = self.resolution or min(f.resolution_in(crs) for f in footprints)
        if native:
            bounds = union([transform_bounds(c, crs, *b, densify_pts=21) for c, b in native])
        else:
            bounds = aoi_bounds(bounds_lonlat, crs)
        grid = snapped_grid(bounds, crs, resolution)
        if grid is None:
            raise InputDataError("the mosaic's AOI holds no pixel at this resolution")
        return grid


def mosaic_target(mosaic: bool, crs: str | None, resolution: float | None) -> MosaicGrid | None:
    """``--mosaic --crs --resolution`` checked together: the grid options need the mosaic."""
    if not mosaic:
        if crs is not None or resolution is not None:
            raise UsageError("--crs and --resolution set a mosaic's grid: add --mosaic")
        return None
    return MosaicGrid(parse_crs(crs).to_string() if crs else None, resolution)


def solar_day(item: pystac.Item, lon: float) -> str:
    """The local solar date of an item at longitude ``lon`` (UTC + lon/15 hours)."""
    moment = item.datetime or item.common_metadata.start_datetime
    if moment is None:
        raise InputDataError(f"item {item.id!r} has no datetime: it belongs to no day's mosaic")
    return (moment + timedelta(hours=lon / 15)).date().isoformat()


def least_cloudy_first(items: Sequence[pystac.Item]) -> list[pystac.Item]:
    """Lowest ``eo:cloud_cover`` first (unknown last); ties newest first, then by id."""
    def cover(item: pystac.Item) -> float:
        value = item.properties.get(CLOUD)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) else math.inf

    return sorted(order(list(items)), key=cover)


@dataclass(frozen=True)
class MosaicSource:
    """One collection's items of one solar day over the AOI, mapped as one scene."""

    collection: str
    day: str
    items: tuple[pystac.Item, ...]
    refs: tuple[str, ...]
    aoi: Aoi
    target: MosaicGrid
    policy: RetryPolicy
    allow_local: tuple[bool, ...]

    def __str__(self) -> str:
        return f"{self.collection}_{self.day} ({len(self.items)} items)"

    def open(self, meta: CheckpointMeta, mask: MaskSpec | None = None) -> Scene:
        names = [b.name for b in meta.bands]
        parts, described = [], []
        for item, ref, local in zip(self.items, self.refs, self.allow_local):
            check_item_id(item.id)
            sources = band_sources(item, names, allow_local=local)
            parts.append(Part(sources, item.id, self.policy))
            described.append([item.id, item.get_self_href() or ref,
                              item.properties.get("updated"), str(item.datetime),
                              [[s.href, s.band_index, s.scale, s.offset] for s in sources]])
        grid = self.target.grid(self.aoi.bbox, [p.footprint() for p in parts])
        rules = []
        for part, item, local in zip(parts, self.items, self.allow_local):
            part.mask = item_mask(grid, self.policy, mask, item, local)
            if part.mask is not None:
                rules.append(part.mask.rule.describe())
        stem = f"{self.collection}_{self.day}_{grid_hash(grid, [self.aoi.bbox, self.aoi.geometry])}"
        scene = open_mosaic(parts, grid, stem, names, rules)
        identity = ("mosaic", grid.crs.to_wkt(), list(grid.transform)[:6], grid.height,
                    grid.width, described)
        hrefs = tuple(d[1] for d in described)
        return replace(scene, origin=Origin(stem, hrefs[0], identity, hrefs))


@dataclass(frozen=True)
class RasterMosaic:
    """Several rasters (same bands, in the same order) as one map, over their union or the AOI."""

    paths: tuple[str, ...]
    aoi: Aoi | None
    target: MosaicGrid
    policy: RetryPolicy

    def __str__(self) -> str:
        return f"mosaic of {len(self.paths)} rasters"

    def open(self, meta: CheckpointMeta, mask: MaskSpec | None = None) -> Scene:
        parts, native, described, descriptions = [], [], [], None
        for path in self.paths:
            bands, crs, bounds, names = _raster_bands(path)
            if descriptions is None:
                descriptions = names
            elif len(names) != len(descriptions):
                raise InputDataError(f"--mosaic: {path} has {len(names)} bands, "
                                     f"{self.paths[0]} has {len(descriptions)}: the rasters of "
                                     f"a mosaic need the same bands in the same order")
            stat = Path(path).stat()
            described.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
            parts.append(Part(bands, path, self.policy))
            native.append((crs, bounds))
        lonlat = [transform_bounds(c, "EPSG:4326", *b, densify_pts=21) for c, b in native]
        if self.aoi is not None:
            west, south, east, north = self.aoi.bbox
            if not any(b[0] < east and west < b[2] and b[1] < north and south < b[3]
                       for b in lonlat):
                raise InputDataError(f"the AOI ({', '.join(f'{v:g}' for v in self.aoi.bbox)}) "
                                     f"touches none of the {len(self.paths)} rasters")
            grid = self.target.grid(self.aoi.bbox, [p.footprint() for p in parts])
        else:
            grid = self.target.grid(union(lonlat), [p.footprint() for p in parts], native)
        aoi = [self.aoi.bbox, self.aoi.geometry] if self.aoi else described
        stem = f"mosaic_{grid_hash(grid, aoi)}"
        scene = open_mosaic(parts, grid, stem, descriptions or [])
        identity = ("mosaic", grid.crs.to_wkt(), list(grid.transform)[:6], grid.height,
                    grid.width, described)
        scene = replace(scene, origin=Origin(stem, self.paths[0], identity,
                                             tuple(d[0] for d in described)))
        return attach_mask(scene, mask)


@dataclass(frozen=True)
class _FileBand:
    """One band of a raster (``ReadableBand``): its own nodata, scale and offset apply."""

    href: str
    band_index: int
    nodata: float | None
    scale: float
    offset: float


def _raster_bands(path: str) -> tuple[list[_FileBand], CRS, tuple, list[str | None]]:
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputDataError(f"--mosaic: {path} has no CRS, so it cannot be placed")
            bands = [_FileBand(path, i, None, float(src.scales[i - 1]),
                               float(src.offsets[i - 1])) for i in src.indexes]
            return bands, src.crs, tuple(src.bounds), list(src.descriptions)
    except rasterio.errors.RasterioIOError as exc:
        raise InputDataError(f"cannot open {path}: {describe(exc)}") from exc


def mosaic_sources(items: Sequence[tuple[str, pystac.Item, bool]], rasters: Sequence[str],
                   aoi: Aoi | None, target: MosaicGrid, policy: RetryPolicy
                   ) -> list[MosaicSource | RasterMosaic]:
    """One ``MosaicSource`` per collection and solar day, one ``RasterMosaic`` for the rasters."""
    if items and aoi is None:
        raise UsageError("--mosaic over STAC items needs an AOI: give --bbox or --intersects")
    groups: dict[tuple[str, str], list[tuple[str, pystac.Item, bool]]] = {}
    if items:
        lon = (aoi.bbox[0] + aoi.bbox[2]) / 2
        for ref, item, local in items:
            key = (item.collection_id or "items", solar_day(item, lon))
            groups.setdefault(key, []).append((ref, item, local))
    sources: list[MosaicSource | RasterMosaic] = []
    for (collection, day), members in sorted(groups.items()):
        ranked = least_cloudy_first([m[1] for m in members])
        by_item = {id(m[1]): m for m in members}
        chosen = [by_item[id(item)] for item in ranked]
        sources.append(MosaicSource(collection, day, tuple(c[1] for c in chosen),
                                    tuple(c[0] for c in chosen), aoi, target, policy,
                                    tuple(c[2] for c in chosen)))
    if rasters:
        sources.append(RasterMosaic(tuple(rasters), aoi, target, policy))
    return sources
