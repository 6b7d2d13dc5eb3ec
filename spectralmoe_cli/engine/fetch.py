"""``spectralmoe fetch``: search a STAC API, clip each item's bands to the AOI, write COGs + STAC.

Cron-safe by construction:

- everything that can be checked from metadata (collection, bands, item ids, asset hrefs) is
  checked for every item before the first byte is downloaded, so a bad request writes nothing;
- each COG is built under a temporary name, validated, then renamed (``files.write_atomic``)
  and checksummed; the local item, written last and atomically, records ``file:checksum``/
  ``file:size`` and what was asked (bands, AOI, resampling). A rerun verifies those and skips
  finished items without a request;
- a lock file stops two runs writing into one folder at once;
- an item that cannot be read (404, corrupt or truncated file) fails alone, leaving nothing
  behind; the others go on and the run ends with exit 4 and ``fetch-summary.json``. A server
  that stays down after the bounded retries ends the run with exit 75: rerun later, finished
  items are kept.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pystac
import rasterio
from rasterio.enums import Resampling

from .. import __version__
from ..bands import Band, parse_band_list, resolve_all
from ..errors import InputDataError, PartialFailure, TransientError, UsageError
from ..files import PARTIAL, exclusive_lock, file_checksum, write_json_atomic
from ..io.cog import CogSpec, write_cog
from ..io.fetch_read import (
    BandReader,
    Encoding,
    Grid,
    NetworkReadError,
    encode,
    encoding_for,
    finest_grid,
    open_bands,
    strips,
)
from ..io.proj import proj_properties
from ..io.stac_item import footprint
from ..net import RetryPolicy
from ..stac import (
    BandSource,
    SearchRequest,
    band_sources,
    check_collection,
    get_collection,
    item_href,
    load_intersects,
    open_catalog,
    parse_bbox,
    parse_datetime,
    search,
)
from ..stac.local import check_item_id, local_item, write_catalog
from ..stac.radiometry import FETCHED
from .fetch_options import FetchOptions
from .options import no_match

log = logging.getLogger(__name__)

SUMMARY = "fetch-summary.json"
LOCK = ".fetch.lock"


@dataclass(frozen=True)
class FetchJob:
    """The options resolved: the search request, the bands, the retry policy, the resampling."""

    catalog: str
    request: SearchRequest
    bands: list[Band]
    out: Path
    policy: RetryPolicy = RetryPolicy()
    resampling: Resampling = Resampling.nearest


@dataclass
class Outcome:
    """What happened to one item: fetched, skipped (already done), empty (no pixels), failed."""

    id: str
    status: str
    detail: str = ""
    path: str | None = None


@dataclass
class FetchReport:
    outcomes: list[Outcome] = field(default_factory=list)
    filtering: str = ""
    sorting: str = ""
    catalog_path: Path | None = None
    summary_path: Path | None = None
    no_match: str = ""

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


@dataclass(frozen=True)
class _Plan:
    item: pystac.Item
    sources: list[BandSource]
    source_href: str


def _plan(options: FetchJob, items: list[pystac.Item]) -> list[_Plan]:
    """Map bands and check ids and hrefs of every item, before anything is written."""
    plans = []
    for item in items:
        check_item_id(item.id)
        sources = band_sources(item, options.bands)
        plans.append(_Plan(item, sources,
                           item_href(item, options.catalog, options.request.collection)))
    return plans


def _fingerprint(options: FetchJob) -> dict[str, Any]:
    return {"bands": [b.name for b in options.bands], "bbox": list(options.request.aoi.bbox),
            "resampling": options.resampling.name}


def _finished(item_json: Path, cog: Path, fingerprint: dict[str, Any]) -> bool:
    """A previous run's output that is complete and was made for the same request."""
    try:
        doc = json.loads(item_json.read_text())
        asset = doc["assets"]["data"]
        if doc["properties"].get(FETCHED) != fingerprint:
            return False
        if not cog.is_file() or cog.stat().st_size != asset["file:size"]:
            return False
        return file_checksum(cog)[0] == asset["file:checksum"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _band_tags(source: BandSource) -> dict[str, str]:
    return {"band": source.band.name, "wavelength": str(source.band.wavelength),
            "source_asset": source.asset_key, "source_href": source.href.removeprefix("/vsicurl/"),
            "radiometry": source.radiometry.rule, "scale_applied": repr(source.scale),
            "offset_applied": repr(source.offset)}


def _download(plan: _Plan, options: FetchJob, cog: Path) -> tuple[Grid, Encoding] | None:
    """One attempt: open the assets, read strip by strip, write and validate the COG."""
    what = f"item {plan.item.id!r}"
    try:
        with open_bands(plan.sources) as datasets, ExitStack() as stack:
            grid = finest_grid(datasets, options.request.aoi.bbox)
            if grid is None:
                return None
            encoding = encoding_for(plan.sources, datasets)
            readers = [BandReader(s, d, grid, options.resampling, stack)
                       for s, d in zip(plan.sources, datasets)]
            blocks = ((w, np.stack([encode(r.read(w), r.band, encoding) for r in readers]))
                      for w in strips(grid))
            write_cog(cog, _cog_spec(plan, grid, encoding), blocks)
            return grid, encoding
    except InputDataError as exc:
        raise type(exc)(f"{what}: {exc}") from exc  # a NetworkReadError stays one (retried)


def _cog_spec(plan: _Plan, grid: Grid, encoding: Encoding) -> CogSpec:
    """Measured values: stored type, predictor, overviews averaged (not a class map)."""
    return CogSpec(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                   dtype=encoding.dtype, nodata=encoding.nodata,
                   descriptions=[s.band.name for s in plan.sources],
                   band_tags=[_band_tags(s) for s in plan.sources],
                   tags={"stac_item": plan.item.id, "source_item": plan.source_href},
                   predictor=True, overview_resampling="AVERAGE")


def _raster_bands(grid: Grid, encoding: Encoding, count: int) -> list[dict[str, Any]]:
    nodata: Any = encoding.nodata
    if isinstance(nodata, float) and math.isnan(nodata):
        nodata = "nan"
    entry = {"data_type": encoding.dtype, "spatial_resolution": abs(grid.transform.a)}
    if nodata is not None:
        entry["nodata"] = nodata
    return [dict(entry) for _ in range(count)]


def _cleanup(item_dir: Path, created: bool) -> None:
    for partial in item_dir.glob(f".*{PARTIAL}*"):
        partial.unlink(missing_ok=True)
    if created and item_dir.is_dir() and not any(item_dir.iterdir()):
        item_dir.rmdir()


def _fetch_item(plan: _Plan, options: FetchJob) -> Outcome:
    item_id = plan.item.id
    item_dir = options.out / item_id
    cog, item_json = item_dir / f"{item_id}.tif", item_dir / f"{item_id}.json"
    fingerprint = _fingerprint(options)
    if item_json.exists() and _finished(item_json, cog, fingerprint):
        return Outcome(item_id, "skipped", "already fetched, checksum verified", str(cog))
    created = not item_dir.exists()
    item_dir.mkdir(parents=True, exist_ok=True)
    _cleanup(item_dir, created=False)
    try:
        done = options.policy.call(lambda: _download(plan, options, cog), f"item {item_id!r}",
                                   retry_also=lambda exc: isinstance(exc, NetworkReadError))
        if done is None:
            _cleanup(item_dir, created)
            return Outcome(item_id, "empty", "the AOI holds no pixel of this item")
        grid, encoding = done
        checksum, size = file_checksum(cog)
        outline, bbox = footprint(grid.crs, grid.transform, grid.height, grid.width)
        proj = proj_properties(grid.crs, grid.transform, grid.height, grid.width)
        document = local_item(plan.item, plan.sources, cog_name=cog.name, proj=proj,
                              footprint=outline, bbox=bbox,
                              raster_bands=_raster_bands(grid, encoding, len(plan.sources)),
                              checksum=checksum, size=size, source_href=plan.source_href)
        document["properties"][FETCHED] = fingerprint
        write_json_atomic(item_json, document)
    except InputDataError as exc:
        _cleanup(item_dir, created)
        return Outcome(item_id, "failed", str(exc))
    except BaseException:
        _cleanup(item_dir, created)
        raise
    return Outcome(item_id, "fetched", f"{grid.width}x{grid.height} px, {encoding.dtype}", str(cog))


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / LOCK).touch()
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror})") from None
    with exclusive_lock(out / LOCK, f"another spectralmoe fetch is writing to {out}; try again "
                                    f"when it has finished"):
        yield


def _write_summary(options: FetchJob, report: FetchReport, stopped: str | None) -> Path:
    summary = {
        "spectralmoe": __version__,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "catalog": options.catalog,
        "collection": options.request.collection,
        "datetime": options.request.datetime,
        "bbox": list(options.request.aoi.bbox),
        "bands": [b.name for b in options.bands],
        "cloud_filter": report.filtering,
        "ordering": report.sorting,
        "counts": {s: report.count(s) for s in ("fetched", "skipped", "empty", "failed")},
        "stopped": stopped,
        "items": [asdict(o) for o in report.outcomes],
    }
    path = options.out / SUMMARY
    write_json_atomic(path, summary)
    return path


def fetch_job(options: FetchOptions) -> FetchJob:
    """Check that the options make one search (exactly one AOI) and resolve them."""
    if (options.bbox is None) == (options.intersects is None):
        raise UsageError("give exactly one of --bbox W,S,E,N or --intersects FILE.geojson")
    aoi = parse_bbox(options.bbox) if options.bbox is not None else load_intersects(options.intersects)
    request = SearchRequest(collection=options.collection, aoi=aoi,
                            datetime=parse_datetime(options.datetime), max_cloud=options.max_cloud,
                            max_items=options.max_items)
    return FetchJob(catalog=options.catalog, request=request,
                    bands=resolve_all(parse_band_list(options.bands)), out=options.out,
                    policy=options.policy(), resampling=Resampling[options.resampling])


def run_fetch(options: FetchOptions, on_item: Callable[[Outcome], None] = lambda o: None
              ) -> FetchReport:
    """Search, then fetch every item found; raises ``PartialFailure`` if any item failed.

    A search that finds nothing is no error: the report has no outcomes and says why.
    """
    job = fetch_job(options)
    client = open_catalog(job.catalog, job.policy)
    collection = get_collection(client, job.request.collection)
    check_collection(collection, job.bands)
    result = search(client, job.request)
    report = FetchReport(filtering=result.filtering, sorting=result.sorting)
    if not result.items:
        report.no_match = no_match(job.request)
        return report
    plans = _plan(job, result.items)
    with _locked(job.out), rasterio.Env(**job.policy.gdal_env()):
        stopped = None
        try:
            for plan in plans:
                outcome = _fetch_item(plan, job)
                log.info("%s %s %s", outcome.status, outcome.id, outcome.detail)
                report.outcomes.append(outcome)
                on_item(outcome)
        except TransientError as exc:
            stopped = str(exc)
            raise
        finally:
            report.catalog_path = write_catalog(
                job.out, f"Items fetched by spectralmoe from {job.catalog}, collection "
                         f"{job.request.collection}")
            report.summary_path = _write_summary(job, report, stopped)
    failed = [o for o in report.outcomes if o.status == "failed"]
    if failed:
        first = failed[0]
        count = (f"all {len(failed)} items failed" if len(failed) == len(report.outcomes)
                 else f"{len(failed)} of {len(report.outcomes)} items failed")
        others = "" if len(failed) == len(report.outcomes) else f"the others are in {job.out}; "
        raise PartialFailure(f"{count} (first: {first.detail}); {others}summary in {report.summary_path}")
    return report
