"""``spectralmoe fetch``: options in, one engine call, a line per item and a summary line out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..engine.fetch_options import FetchOptions
from . import options as opt
from .config_file import command_settings

S = FetchOptions  # the schema each option below reads its default from, and is checked by


def fetch(
    ctx: typer.Context,
    catalog: Optional[str] = opt.option(S, "catalog", "--catalog", panel=opt.SEARCH,
                                        help="STAC API root URL (Earth Search, Planetary Computer, "
                                             "pgstac, ...)."),
    collection: Optional[str] = opt.collection(S, "Collection id, e.g. sentinel-2-l2a."),
    bbox: Optional[str] = opt.bbox(S, "AOI as W,S,E,N in degrees (EPSG:4326)."),
    intersects: Optional[Path] = opt.intersects(S, "AOI as a GeoJSON file (Polygon/MultiPolygon, "
                                                   "Feature or one-Feature collection); reads clip "
                                                   "to its bounding box."),
    datetime_range: Optional[str] = opt.datetime(S),
    max_cloud: Optional[float] = opt.max_cloud(S),
    max_items: Optional[int] = opt.max_items(S),
    bands: Optional[str] = opt.bands(S, "Bands to fetch, in output order: Sentinel-2 names, STAC "
                                        "common names (red, nir08) or sensor-prefixed names "
                                        "(landsat8:B5)."),
    resampling: Optional[str] = opt.option(S, "resampling", "--resampling", panel=opt.INPUT,
                                           help="How coarser bands are resampled onto the finest "
                                                "band's grid: nearest, bilinear, cubic, average."),
    out: Optional[Path] = opt.out(S, "Output folder: one COG + STAC item per item, catalog.json, "
                                     "fetch-summary.json."),
    retries: Optional[int] = opt.retries(S),
    retry_backoff: Optional[float] = opt.retry_backoff(S),
    timeout: Optional[float] = opt.timeout(S),
    config: Optional[Path] = opt.config(),
) -> None:
    """Search a STAC API; save each item's bands, clipped to the AOI, as COG + STAC item.

    Reads only the chosen bands, only over the AOI (HTTP range requests).
    Bands go on the grid of the finest chosen band; coarser ones are
    resampled (--resampling). Values are scaled to physical units
    (raster:bands scale/offset; Sentinel-2 baseline >= 04.00: (DN-1000)/10000)
    and written as float32, nodata NaN; bands that need no scaling keep their
    stored type and nodata. Band descriptions are canonical band names, as
    predict reads them. A rerun skips items already fetched (checksum
    verified), so one cron line can run every night.

    Examples:

        spectralmoe fetch --catalog https://earth-search.aws.element84.com/v1
          --collection sentinel-2-l2a --bbox 11.30,48.05,11.45,48.15
          --datetime P1D --max-cloud 20 --bands B04,B03,B02,B08
          --out /data/munich

        spectralmoe fetch --collection landsat-c2-l2
          --catalog https://planetarycomputer.microsoft.com/api/stac/v1
          --intersects field.geojson --datetime 2024-06-01/2024-06-30
          --bands red,green,blue,nir08 --out /data/field

    Exit codes: 0 done, or nothing to do (no item matches);
    2 bad option, unknown collection, not a STAC API;
    3 a band the collection or an item lacks, an unsafe item id or asset href
    (nothing written); 4 some items failed (404, corrupt): the others are
    done, fetch-summary.json lists all; 5 a written COG failed validation;
    75 catalog or assets unreachable after the retries: safe to rerun.
    """
    from ..engine.fetch import run_fetch

    report = run_fetch(command_settings(ctx, FetchOptions), on_item=lambda o: typer.echo(
        f"{o.status:8} {o.id}  {o.detail}" + (f"  -> {o.path}" if o.path else "")))
    if not report.outcomes:
        typer.echo(f"nothing to do: {report.no_match}")
        return
    typer.echo(f"done: {report.count('fetched')} fetched, {report.count('skipped')} already "
               f"there, {report.count('empty')} without pixels in the AOI; catalog: "
               f"{report.catalog_path}")
