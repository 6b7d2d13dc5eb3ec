"""The ``spectralmoe`` command line: parse options, call the engine, map errors to exit codes.

Exit codes: 0 done or nothing to do; 1 internal error (a bug); 2 usage or configuration error;
3 input data error; 4 partial failure (summary written); 5 output validation failed;
75 transient error, safe to retry.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .errors import EXIT_CODES, SpectralMoEError

EXIT_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."

app = typer.Typer(
    name="spectralmoe",
    help="Land-cover maps from hyperspectral, multispectral and RGB scenes with SpectralMoE "
         "(frozen DINOv2/DINOv3 + depth foundation model, dual-gated mixture of experts).\n\n"
         + EXIT_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"verbose": False}
log = logging.getLogger("spectralmoe")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spectralmoe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging; show tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    _state["verbose"] = verbose
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S", stream=sys.stderr, force=True)
    logging.getLogger("spectralmoe").setLevel(level)


@app.command()
def info(
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="A model name from the zoo (see --list) or a TOML config path."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c",
                                              help="A trained .safetensors checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    list_models: bool = typer.Option(False, "--list", help="List the named models and exit."),
) -> None:
    """Describe a model: architecture, trainable and frozen parameters by part, bands, classes.

    Builds the architecture without weights (nothing is downloaded). Example:

        spectralmoe info --model spectralmoe_dinov3_vitl16 --json
    """
    from .config import available_models
    from .engine.info import describe, render

    if list_models:
        typer.echo("\n".join(available_models()))
        return
    if model and checkpoint:
        raise typer.BadParameter("give --model or --checkpoint, not both")
    report = describe(model=model, checkpoint=checkpoint)
    typer.echo(json.dumps(report, indent=2) if as_json else render(report))


@app.command()
def fetch(
    catalog: str = typer.Option(..., "--catalog", help="STAC API root URL (Earth Search, "
                                "Planetary Computer, pgstac, ...)."),
    collection: str = typer.Option(..., "--collection", help="Collection id, e.g. sentinel-2-l2a."),
    bbox: Optional[str] = typer.Option(None, "--bbox",
                                       help="AOI as W,S,E,N in degrees (EPSG:4326)."),
    intersects: Optional[Path] = typer.Option(None, "--intersects", help="AOI as a GeoJSON file "
                                              "(Polygon/MultiPolygon, Feature or one-Feature "
                                              "collection); reads clip to its bounding box."),
    datetime_range: str = typer.Option(..., "--datetime", help="P1D (last day), PT6H, P2W, "
                                       "today, yesterday (UTC), 2024-01-01/2024-01-31, "
                                       "2024-01-01/.. (open)."),
    max_cloud: Optional[float] = typer.Option(None, "--max-cloud", min=0, max=100,
                                              help="Keep items with eo:cloud_cover <= PCT."),
    bands: str = typer.Option("B04,B03,B02,B08", "--bands", help="Bands to fetch, in output "
                              "order: Sentinel-2 names, STAC common names (red, nir08) or "
                              "sensor-prefixed names (landsat8:B5)."),
    max_items: Optional[int] = typer.Option(None, "--max-items", min=1,
                                            help="At most N items, newest first (ties by id)."),
    out: Path = typer.Option(..., "--out", help="Output folder: one COG + STAC item per item, "
                             "catalog.json, fetch-summary.json."),
    resampling: str = typer.Option("nearest", "--resampling", help="How coarser bands are "
                                   "resampled onto the finest band's grid: nearest, bilinear, "
                                   "cubic, average."),
    retries: int = typer.Option(4, "--retries", min=0, help="Retries of a transient HTTP error "
                                "(5xx, 429, timeout, reset) before exit 75."),
    retry_backoff: float = typer.Option(1.0, "--retry-backoff", min=0, help="Seconds before the "
                                        "first retry; doubled each time (at most 60 s)."),
    timeout: float = typer.Option(30.0, "--timeout", min=1, help="Seconds per HTTP request."),
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
    from rasterio.enums import Resampling

    from .bands import parse_band_list, resolve_all
    from .engine.fetch import FetchOptions, run_fetch
    from .errors import UsageError
    from .net import RetryPolicy
    from .stac import SearchRequest, load_intersects, parse_bbox, parse_datetime

    if (bbox is None) == (intersects is None):
        raise UsageError("give exactly one of --bbox W,S,E,N or --intersects FILE.geojson")
    if resampling not in ("nearest", "bilinear", "cubic", "average"):
        raise UsageError(f"--resampling {resampling!r}: use nearest, bilinear, cubic or average")
    aoi = parse_bbox(bbox) if bbox is not None else load_intersects(intersects)
    request = SearchRequest(collection=collection, aoi=aoi, datetime=parse_datetime(datetime_range),
                            max_cloud=max_cloud, max_items=max_items)
    options = FetchOptions(catalog=catalog, request=request,
                           bands=resolve_all(parse_band_list(bands)), out=out,
                           policy=RetryPolicy(retries, retry_backoff, timeout),
                           resampling=Resampling[resampling])
    report = run_fetch(options, on_item=lambda o: typer.echo(
        f"{o.status:8} {o.id}  {o.detail}" + (f"  -> {o.path}" if o.path else "")))
    if not report.outcomes:
        cloud = f", eo:cloud_cover <= {max_cloud:g}" if max_cloud is not None else ""
        typer.echo(f"nothing to do: no item of collection {collection!r} matches the AOI and "
                   f"datetime {request.datetime}{cloud}")
        return
    typer.echo(f"done: {report.count('fetched')} fetched, {report.count('skipped')} already "
               f"there, {report.count('empty')} without pixels in the AOI; catalog: "
               f"{report.catalog_path}")


def main() -> None:
    """Console entry point: run the app, turn our errors into one line and an exit code."""
    try:
        app()
    except SpectralMoEError as exc:
        if _state["verbose"]:
            traceback.print_exc()
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        traceback.print_exc()
        typer.echo(f"error: internal error ({type(exc).__name__}: {exc}); this is a bug, please "
                   f"report it with the traceback above", err=True)
        sys.exit(1)
