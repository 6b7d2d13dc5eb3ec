"""``spectralmoe predict``: options in, one engine call, the run summary out."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer
from pydantic import Field, StrictBool

from ..engine.predict.settings import PredictOptions
from . import options as opt
from .config_file import command_settings

log = logging.getLogger(__name__)


class PredictCommand(PredictOptions):
    """predict's options, plus how the summary is printed."""

    as_json: StrictBool = Field(False, alias="json")


S = PredictCommand  # the schema each option below reads its default from, and is checked by


def predict(
    ctx: typer.Context,
    scenes: Optional[list[str]] = typer.Argument(
        None, show_default=False, help="Scenes: GeoTIFF/COG/VRT/any GDAL raster, Zarr stores, or STAC "
                                       "item JSON files or URLs."),
    checkpoint: Optional[Path] = opt.option(S, "checkpoint", "--checkpoint", "-c", panel=opt.INPUT,
                                            help="A .safetensors checkpoint.", default="the bundled model"),
    bands: Optional[str] = opt.bands(S, "The scene's bands in file order, e.g. B4,B3,B2,B8 or "
                                        "red,green,blue,nir.", default="the file's band descriptions"),
    nodata: Optional[float] = opt.nodata(S, "Override every band's nodata value."),
    wavelength_tolerance: Optional[float] = opt.option(
        S, "wavelength_tolerance", "--wavelength-tolerance", panel=opt.SPECTRA,
        help="A model band the scene lacks by name matches the scene band nearest in centre "
             "wavelength within NM nanometres."),
    resample_spectra: Optional[bool] = opt.switch(
        S, "resample_spectra", "--resample-spectra", panel=opt.SPECTRA,
        help="Linearly interpolate each pixel's spectrum onto the checkpoint's band wavelengths "
             "(no extrapolation beyond the scene's range)."),
    mask: Optional[str] = opt.option(
        S, "mask", "--mask", panel=opt.INPUT,
        help="Pixels to leave out (255 in the map): auto (a STAC item's SCL classes 0,1,3,8,9,10 "
             "or QA_PIXEL cloud bits), none, scl[:V,..], qa_pixel[:BIT,..], band:NAME[:V,..] or "
             "FILE[:V,..] (a mask raster: those values, or any nonzero value)."),
    tile: Optional[int] = opt.tile(S),
    overlap: Optional[int] = opt.overlap(S),
    blend: Optional[str] = opt.blend(S),
    tta: Optional[str] = opt.option(S, "tta", "--tta", panel=opt.TILING,
                                    help="Test-time augmentation: none, flip (3 passes) or d4 "
                                         "(8 passes), probabilities averaged per tile."),
    chunk: Optional[int] = opt.option(S, "chunk", "--chunk", panel=opt.TILING,
                                      help="Processing chunk in pixels (memory ~ chunk², rounded to the "
                                           "tile stride)."),
    out: Optional[Path] = opt.out(S, "Output folder (created if missing)."),
    formats: Optional[str] = opt.option(S, "format", "--format", panel=opt.OUTPUTS,
                                        help="Comma list of cog, zarr, gpkg and parquet (class "
                                             "polygons merged across chunks: GeoPackage, "
                                             "GeoParquet)."),
    min_area: Optional[float] = opt.option(S, "min_area", "--min-area", panel=opt.OUTPUTS,
                                           help="Polygons: drop those smaller than this (squared "
                                                "map units, m² in a projected CRS)."),
    simplify: Optional[float] = opt.option(S, "simplify", "--simplify", panel=opt.OUTPUTS,
                                           help="Polygons: simplify with this tolerance (map units), "
                                                "keeping each valid."),
    probabilities: Optional[bool] = opt.switch(
        S, "probabilities", "--probabilities/--no-probabilities", panel=opt.OUTPUTS,
        help="Also store blended class probabilities (uint8 x250) in the Zarr."),
    force: Optional[bool] = opt.switch(S, "force", "--force", panel=opt.OUTPUTS,
                                       help="Recompute outputs that already exist."),
    as_json: Optional[bool] = opt.as_json("Print the run summary as JSON on stdout."),
    compress: Optional[str] = opt.option(S, "compress", "--compress", panel=opt.COG,
                                         help="COG compression: DEFLATE or ZSTD."),
    overview_resampling: Optional[str] = opt.option(S, "overview_resampling", "--overview-resampling",
                                                    panel=opt.COG, help="COG overviews: MODE or NEAREST."),
    device: Optional[str] = opt.device(S),
    batch_size: Optional[int] = opt.batch_size(S),
    deterministic: Optional[bool] = opt.switch(
        S, "deterministic", "--deterministic/--fast", panel=opt.COMPUTE,
        help="Bit-identical maps for any --chunk.", default="on for CPU, off for GPU"),
    compile_model: Optional[bool] = opt.switch(
        S, "compile", "--compile/--no-compile", panel=opt.COMPUTE,
        help="torch.compile the model (worth it for long GPU runs)."),
    scheduler: Optional[str] = opt.option(
        S, "scheduler", "--scheduler", panel=opt.CLUSTER,
        help="Run the chunks on an existing dask.distributed cluster, e.g. tcp://10.0.0.5:8786 "
             "(outputs on a shared filesystem)."),
    cluster: Optional[str] = opt.option(
        S, "cluster", "--cluster", panel=opt.CLUSTER,
        help="Start a local dask cluster: local:N (N worker processes; one GPU each where there "
             "are GPUs)."),
    stac: Optional[str] = opt.option(
        S, "stac", "--stac", panel=opt.SEARCH,
        help="STAC API root URL: also segment every item a search finds (needs --collection, "
             "--datetime, an AOI)."),
    allow_local_assets: Optional[bool] = opt.switch(
        S, "allow_local_assets", "--allow-local-assets", panel=opt.SEARCH,
        help="Let items from a catalog on the network name local files (an on-premise catalog "
             "over a shared filesystem); '..' escapes stay refused."),
    mosaic: Optional[bool] = opt.switch(
        S, "mosaic", "--mosaic", panel=opt.MOSAIC,
        help="One map per collection and solar day over the AOI (or one over several SCENE "
             "rasters): items warped onto one grid, the least cloudy valid pixel wins."),
    crs: Optional[str] = opt.option(
        S, "crs", "--crs", panel=opt.MOSAIC,
        help="The mosaic's CRS, e.g. EPSG:32633 (any CRS string rasterio accepts).",
        default="the UTM zone of the AOI's centre"),
    resolution: Optional[float] = opt.option(
        S, "resolution", "--resolution", panel=opt.MOSAIC,
        help="The mosaic's pixel size in units of --crs; its edges align to multiples of it.",
        default="the finest band's"),
    collection: Optional[str] = opt.collection(S),
    bbox: Optional[str] = opt.bbox(S, "AOI W,S,E,N in degrees: STAC items are clipped to it on the "
                                      "finest band's grid, as fetch does."),
    intersects: Optional[Path] = opt.intersects(S, "AOI as a GeoJSON file (searched as given, items "
                                                   "clipped to its bounding box)."),
    datetime_range: Optional[str] = opt.datetime(S),
    max_cloud: Optional[float] = opt.max_cloud(S),
    max_items: Optional[int] = opt.max_items(S),
    retries: Optional[int] = opt.retries(S),
    retry_backoff: Optional[float] = opt.retry_backoff(S),
    timeout: Optional[float] = opt.timeout(S),
    config: Optional[Path] = opt.config(),
) -> None:
    """Segment whole scenes into land-cover maps: Zarr + COG + STAC item + quicklook per scene.

    Scenes are streamed chunk by chunk (memory does not grow with scene size) over a fixed global
    tile grid; overlapping tiles are blended with edge-aware Hann weights. Outputs get a
    deterministic name, appear by atomic rename, and a rerun resumes a killed run. Example:

        spectralmoe predict scene.tif --bands B4,B3,B2,B8 --out maps/

    STAC items stream straight in (range reads of the model's bands, by band name, scaled to
    physical units as fetch does), clipped to --bbox/--intersects when given. Every night:

        spectralmoe predict --stac https://earth-search.aws.element84.com/v1
          --collection sentinel-2-l2a --bbox 11.30,48.05,11.45,48.15
          --datetime P1D --max-cloud 20 --out maps/

    A failed scene does not stop the others; the run ends with a summary (also written to
    OUT/spectralmoe-summary.json) and exit 4 if any scene failed (a single scene's own code, e.g.
    3 for a missing band, when it was the only scene). A search that finds nothing is exit 0;
    a catalog that stays unreachable, exit 75.
    """
    from ..engine.predict.command import predict as run

    options = command_settings(ctx, PredictCommand)
    result = run(options, progress=log.isEnabledFor(logging.INFO))  # bars follow -q as the log does
    if options.as_json:
        typer.echo(json.dumps(result.summary, indent=2))
    elif result.nothing:
        typer.echo(f"nothing to do: {result.nothing}")
    else:
        typer.echo(_render(result.summary), err=True)
    if result.error is not None:
        raise result.error


def _render(summary: dict) -> str:
    split = summary["time_split_s"]
    return (f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed; "
            f"{summary['pixels'] / 1e6:.2f} Mpix in {summary['seconds']:.1f} s "
            f"({summary['mpix_per_s'] or 0:.2f} Mpix/s), peak RSS {summary['peak_rss_mb']:.0f} MB; "
            f"read/infer/write {split['read']:.1f}/{split['infer']:.1f}/{split['write']:.1f} s; "
            f"{_masked(summary['results'])}summary: {summary['summary_file']}")


def _masked(results: list[dict]) -> str:
    """``masked 12.3%; `` for the summary line, when a mask applied."""
    fractions = [r["masked_fraction"] for r in results if r.get("masked_fraction") is not None]
    if not fractions:
        return ""
    if len(fractions) > 1:
        return f"masked {100 * max(fractions):.1f}% at most; "
    return f"masked {100 * fractions[0]:.1f}%; "
