"""predict's SCENE arguments and STAC options, turned into the scenes a run segments.

A SCENE is a raster (kept as given) or a STAC item file or URL; ``--stac`` adds every item a
search finds. Items become ``StacSource``s, opened only when their turn comes, so one bad item
fails alone (the others are done, exit 4) just as a bad raster does. An AOI clips each item to
it on fetch's grid; without one, an item is predicted whole. The model's bands are asked of the
item by name: items name their own bands, so ``--bands`` does not apply to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

import pystac

from ...bands import Band, resolve_all
from ...checkpoint import CheckpointMeta
from ...errors import UsageError
from ...io.masks import MaskSpec
from ...io.scene import Origin, Scene, is_remote, open_scene
from ...io.stac_scene import open_item_scene
from ...net import RetryPolicy
from ...stac import (
    Aoi,
    SearchRequest,
    band_sources,
    check_collection,
    get_collection,
    is_item_ref,
    item_href,
    load_intersects,
    load_item,
    open_catalog,
    parse_bbox,
    parse_datetime,
    search,
)
from ...stac.item_ref import is_url
from ...stac.local import check_item_id
from ..options import no_match
from .masking import attach_mask
from .mosaic import MosaicGrid, MosaicSource, RasterMosaic, mosaic_sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StacOptions:
    """A search (``catalog`` + ``request``) or none, the AOI items are clipped to, retries."""

    catalog: str | None = None
    request: SearchRequest | None = None
    aoi: Aoi | None = None
    policy: RetryPolicy = RetryPolicy()
    allow_local: bool = False  # --allow-local-assets: items from the network may name local files

    def no_match(self) -> str:
        return no_match(self.request)


def stac_options(catalog: str | None, collection: str | None,
                 bbox: str | None, intersects: str | Path | None,
                 datetime: str | None, max_cloud: float | None, max_items: int | None,
                 policy: RetryPolicy, allow_local: bool = False) -> StacOptions:
    """Check that the options make one request: a search needs a collection, an AOI, a time."""
    if bbox is not None and intersects is not None:
        raise UsageError("give at most one of --bbox W,S,E,N and --intersects FILE.geojson")
    aoi = parse_bbox(bbox) if bbox is not None else (
        load_intersects(intersects) if intersects is not None else None)
    if catalog is None:
        stray = [name for name, value in (("--collection", collection), ("--datetime", datetime),
                                          ("--max-cloud", max_cloud), ("--max-items", max_items))
                 if value is not None]
        if stray:
            raise UsageError(f"{', '.join(stray)} describe a search: give --stac URL too")
        return StacOptions(aoi=aoi, policy=policy, allow_local=allow_local)
    missing = [name for name, value in (("--collection", collection), ("--datetime", datetime),
                                        ("--bbox or --intersects", aoi)) if value is None]
    if missing:
        raise UsageError(f"--stac searches a catalog and needs {' and '.join(missing)}")
    request = SearchRequest(collection=collection, aoi=aoi, datetime=parse_datetime(datetime),
                            max_cloud=max_cloud, max_items=max_items)
    return StacOptions(catalog=catalog, request=request, aoi=aoi, policy=policy,
                       allow_local=allow_local)


@dataclass(frozen=True)
class StacSource:
    """One item to segment: a search result, or an item file or URL read when its turn comes."""

    ref: str
    item: pystac.Item | None
    aoi: Aoi | None
    policy: RetryPolicy
    allow_local: bool = False

    def __str__(self) -> str:
        return self.ref

    def open(self, meta: CheckpointMeta, mask: MaskSpec | None = None) -> Scene | None:
        """The model's bands of the item (and its mask), as a scene; ``None`` if the AOI holds
        none of it. Local asset paths: for an item that is a local file, or when allowed."""
        item = self.item or load_item(self.ref, self.policy)
        check_item_id(item.id)
        local = self.allow_local or (self.item is None and not is_url(self.ref))
        sources = band_sources(item, [b.name for b in meta.bands], allow_local=local)
        scene = open_item_scene(sources, self.aoi.bbox if self.aoi else None, self.policy,
                                self.ref)
        if scene is None:
            log.info("%s: the AOI holds no pixel of item %s, nothing to predict", self.ref, item.id)
            return None
        scene = attach_mask(scene, mask, item, local)
        href = item.get_self_href() or self.ref
        identity = (item.id, href, scene.crs.to_wkt() if scene.crs else None,
                    list(scene.transform)[:6], scene.height, scene.width,
                    [[s.href, s.band_index, s.scale, s.offset] for s in sources])
        return replace(scene, origin=Origin(name=item.id, href=href, identity=identity))


@dataclass(frozen=True)
class RemoteRaster:
    """A raster URL, opened and read under the run's ``--timeout`` and ``--retries``."""

    ref: str
    policy: RetryPolicy

    def __str__(self) -> str:
        return self.ref

    def open(self, meta: CheckpointMeta, mask: MaskSpec | None = None) -> Scene:
        return attach_mask(open_scene(self.ref, self.policy), mask)


Source = Union[str, StacSource, RemoteRaster, MosaicSource, RasterMosaic]


def open_source(source: Source, meta: CheckpointMeta,
                mask: MaskSpec | None = None) -> Scene | None:
    """A raster opened lazily, an item's bands (``None``: the AOI holds none of its pixels) or a
    mosaic, with the mask ``--mask`` gives it."""
    if not isinstance(source, str):
        return source.open(meta, mask)
    return attach_mask(open_scene(source), mask)


def _search(options: StacOptions, bands: list[Band]) -> list[StacSource]:
    client = open_catalog(options.catalog, options.policy)
    check_collection(get_collection(client, options.request.collection), bands)
    found = search(client, options.request)
    log.info("%d item(s) found; cloud filter %s, order %s", len(found.items), found.filtering,
             found.sorting)
    return [StacSource(item_href(item, options.catalog, options.request.collection), item,
                       options.aoi, options.policy, options.allow_local) for item in found.items]


def scene_sources(scenes: list[str], options: StacOptions, bands_option: list[str] | None,
                  meta: CheckpointMeta, mosaic: MosaicGrid | None = None) -> list[Source]:
    """Rasters as given (a raster URL with the run's retry policy), item files and URLs as
    sources, then the items the search finds; with ``--mosaic``, one mosaic per collection and
    solar day (and one of the rasters)."""
    sources: list[Source] = [
        StacSource(ref, None, options.aoi, options.policy, options.allow_local)
        if is_item_ref(ref) else RemoteRaster(ref, options.policy) if is_remote(ref) else ref
        for ref in scenes]
    items = options.catalog is not None or any(isinstance(s, StacSource) for s in sources)
    if not scenes and options.catalog is None:
        raise UsageError("nothing to segment: give SCENE files or URLs, or search with --stac URL")
    if bands_option is not None and items:
        raise UsageError("--bands names a raster's bands in file order; STAC items name their "
                         "own, so drop --bands when predicting items")
    if options.aoi is not None and not items and mosaic is None:
        raise UsageError("--bbox/--intersects clip STAC items; rasters are predicted whole "
                         "(give an item file or URL, or --stac)")
    if options.catalog is not None:
        sources += _search(options, resolve_all([b.name for b in meta.bands]))
    if mosaic is None:
        return sources
    if any(isinstance(s, RemoteRaster) for s in sources):
        raise UsageError("--mosaic takes raster files and STAC items; a raster URL is mapped on "
                         "its own (drop --mosaic, or give its STAC item)")
    return mosaic_sources(
        [(s.ref, s.item or load_item(s.ref, s.policy), s.allow_local or
          (s.item is None and not is_url(s.ref))) for s in sources if isinstance(s, StacSource)],
        [s for s in sources if isinstance(s, str)], options.aoi, mosaic, options.policy)
