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


def _config_defaults(path: Optional[Path]) -> dict:
    """Option defaults from a TOML or YAML file (keys are option names, '-' or '_')."""
    if path is None:
        return {}
    from .errors import ConfigError

    if not path.is_file():
        raise ConfigError(f"--config {path} does not exist")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text()) or {}
        else:
            import tomllib

            data = tomllib.loads(path.read_text())
    except Exception as exc:
        raise ConfigError(f"--config {path}: cannot parse it ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a table of option = value")
    return {str(k).replace("-", "_"): _option_value(v) for k, v in data.items()}


def _option_value(value):
    """A config value as the command line would give it: lists comma-joined, dates as text."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _pick(given, config: dict, key: str, default):
    return given if given is not None else config.pop(key, default)


@app.command()
def predict(
    scenes: Optional[list[str]] = typer.Argument(None, help="Scenes: GeoTIFF/COG/VRT/any GDAL raster, Zarr "
                                                 "stores, or STAC item JSON files or URLs."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if missing)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c",
                                              help="A .safetensors checkpoint [default: the bundled model]."),
    bands: Optional[str] = typer.Option(None, "--bands", "-b",
                                        help="The scene's bands in file order, e.g. B4,B3,B2,B8 or red,green,blue,nir "
                                             "[default: the file's band descriptions]."),
    formats: Optional[str] = typer.Option(None, "--format", help="Comma list of cog,zarr [default: cog,zarr]."),
    probabilities: Optional[bool] = typer.Option(None, "--probabilities/--no-probabilities",
                                                 help="Also store blended class probabilities (uint8 x250) "
                                                      "in the Zarr."),
    tile: Optional[int] = typer.Option(None, "--tile",
                                       help="Tile size in pixels [default: the checkpoint's]."),
    overlap: Optional[int] = typer.Option(None, "--overlap",
                                          help="Overlap between tiles [default: the checkpoint's]."),
    blend: Optional[str] = typer.Option(None, "--blend", help="hann | linear | none | center [default: hann]."),
    chunk: Optional[int] = typer.Option(None, "--chunk", help="Processing chunk in pixels (memory ~ chunk², rounded "
                                                               "to the tile stride) [default: 2048]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="Tiles per forward pass [default: 2 CPU, 16 GPU]."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda:N [default: auto]."),
    nodata: Optional[float] = typer.Option(None, "--nodata", help="Override every band's nodata value."),
    wavelength_tolerance: Optional[float] = typer.Option(
        None, "--wavelength-tolerance", min=0, help="A model band the scene lacks by name matches the "
        "scene band nearest in centre wavelength within NM nanometres [default: 5]."),
    resample_spectra: Optional[bool] = typer.Option(
        None, "--resample-spectra/--no-resample-spectra", help="Linearly interpolate each pixel's "
        "spectrum onto the checkpoint's band wavelengths (no extrapolation beyond the scene's range)."),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--fast",
                                                 help="Bit-identical maps for any --chunk "
                                                      "[default: on for CPU, off for GPU]."),
    compress: Optional[str] = typer.Option(None, "--compress",
                                           help="COG compression: DEFLATE or ZSTD [default: DEFLATE]."),
    overview_resampling: Optional[str] = typer.Option(None, "--overview-resampling",
                                                      help="COG overviews: MODE or NEAREST [default: MODE]."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile",
                                                 help="torch.compile the model (worth it for long GPU runs)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                            help="Run the chunks on an existing dask.distributed cluster, "
                                                 "e.g. tcp://10.0.0.5:8786 (outputs on a shared filesystem)."),
    cluster: Optional[str] = typer.Option(None, "--cluster",
                                          help="Start a local dask cluster: local:N (N worker processes; "
                                               "one GPU each where there are GPUs)."),
    stac: Optional[str] = typer.Option(None, "--stac", help="STAC API root URL: also segment every item "
                                        "a search finds (needs --collection, --datetime, an AOI)."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Collection to search, e.g. sentinel-2-l2a."),
    bbox: Optional[str] = typer.Option(None, "--bbox", help="AOI W,S,E,N in degrees: STAC items are clipped "
                                       "to it on the finest band's grid, as fetch does."),
    intersects: Optional[Path] = typer.Option(None, "--intersects", help="AOI as a GeoJSON file "
                                              "(searched as given, items clipped to its bounding box)."),
    datetime_range: Optional[str] = typer.Option(None, "--datetime", help="Search time: P1D, PT6H, yesterday, "
                                                 "2024-01-01/2024-01-31, 2024-01-01/.."),
    max_cloud: Optional[float] = typer.Option(None, "--max-cloud", min=0, max=100,
                                              help="Keep items with eo:cloud_cover <= PCT."),
    max_items: Optional[int] = typer.Option(None, "--max-items", min=1, help="At most N items, newest first."),
    retries: Optional[int] = typer.Option(None, "--retries", min=0, help="Retries of a transient HTTP error "
                                          "(catalog, item, asset reads) [default: 4]."),
    retry_backoff: Optional[float] = typer.Option(None, "--retry-backoff", min=0,
                                                  help="Seconds before the first retry, doubled each time "
                                                       "[default: 1]."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1, help="Seconds per HTTP request [default: 30]."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/YAML file with defaults for these options."),
    force: bool = typer.Option(False, "--force", help="Recompute outputs that already exist."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
) -> None:
    """Segment whole scenes into land-cover maps: Zarr + COG + STAC item + quicklook per scene.

    Scenes are streamed chunk by chunk (memory does not grow with scene size) over a fixed global
    tile grid; overlapping tiles are blended with edge-aware Hann weights. Outputs get a
    deterministic name, appear by atomic rename, and a rerun resumes a killed run. Example:

        spectralmoe predict scene.tif --bands B4,B3,B2,B8 --out maps/

    STAC items stream straight in (range reads of the model's bands, by band name, scaled to
    physical units as fetch does), clipped to --bbox/--intersects when given. Every night:

        spectralmoe predict --stac https://earth-search.aws.element84.com/v1
          --collection sentinel-2-l2a --bbox 11.30,48.05,11.45,48.15 --datetime P1D
          --max-cloud 20 --out maps/

    A failed scene does not stop the others; the run ends with a summary (also written to
    OUT/spectralmoe-summary.json) and exit 4 if any scene failed (a single scene's own code, e.g.
    3 for a missing band, when it was the only scene). A search that finds nothing is exit 0;
    a catalog that stays unreachable, exit 75.
    """
    from .bands import parse_band_list
    from .checkpoint import read_metadata
    from .config import zoo_dir
    from .engine.predict.distributed import parse_cluster
    from .engine.predict.runner import run_predict
    from .engine.predict.scene import PredictSettings
    from .engine.predict.sources import scene_sources, stac_options
    from .errors import ConfigError
    from .net import RetryPolicy

    conf = _config_defaults(config)
    checkpoint = _pick(checkpoint, conf, "checkpoint", None)
    checkpoint = Path(checkpoint) if checkpoint else zoo_dir() / "default.safetensors"
    meta = read_metadata(checkpoint)
    band_text = _pick(bands, conf, "bands", None)
    format_text = _pick(formats, conf, "format", "cog,zarr")
    settings = PredictSettings(
        bands=parse_band_list(band_text) if band_text else None,
        tile=int(_pick(tile, conf, "tile", meta.tile.size)),
        overlap=int(_pick(overlap, conf, "overlap", meta.tile.overlap)),
        blend=str(_pick(blend, conf, "blend", "hann")),
        nodata=_pick(nodata, conf, "nodata", None),
        probabilities=bool(_pick(probabilities, conf, "probabilities", False)),
        formats=tuple(f.strip().lower() for f in str(format_text).split(",") if f.strip()),
        chunk=int(_pick(chunk, conf, "chunk", 2048)),
        force=force or bool(conf.pop("force", False)),
        compress=str(_pick(compress, conf, "compress", "DEFLATE")).upper(),
        overview_resampling=str(_pick(overview_resampling, conf, "overview_resampling", "MODE")).upper(),
        wavelength_tolerance=float(_pick(wavelength_tolerance, conf, "wavelength_tolerance", 5.0)),
        resample_spectra=bool(_pick(resample_spectra, conf, "resample_spectra", False)),
    )
    run_device = str(_pick(device, conf, "device", "auto"))
    run_batch = _pick(batch_size, conf, "batch_size", None)
    run_deterministic = _pick(deterministic, conf, "deterministic", None)
    run_compile = bool(_pick(compile_model, conf, "compile", False))
    run_scheduler = _pick(scheduler, conf, "scheduler", None)
    run_cluster = _pick(cluster, conf, "cluster", None)
    if run_scheduler and run_cluster:
        raise typer.BadParameter("give --scheduler or --cluster, not both")
    policy = RetryPolicy(int(_pick(retries, conf, "retries", 4)),
                         float(_pick(retry_backoff, conf, "retry_backoff", 1.0)),
                         float(_pick(timeout, conf, "timeout", 30.0)))
    stac_opts = stac_options(
        _pick(stac, conf, "stac", None), _pick(collection, conf, "collection", None),
        _pick(bbox, conf, "bbox", None), _pick(intersects, conf, "intersects", None),
        _pick(datetime_range, conf, "datetime", None), _pick(max_cloud, conf, "max_cloud", None),
        _pick(max_items, conf, "max_items", None), policy)
    if conf:
        raise ConfigError(f"--config {config}: unknown option(s) {', '.join(sorted(conf))}")
    sources = scene_sources(scenes or [], stac_opts, settings.bands, meta)
    if not sources:
        typer.echo(f"nothing to do: {stac_opts.no_match()}")
        return
    summary = run_predict(sources, checkpoint, out, settings, device=run_device,
                          batch_size=run_batch, deterministic=run_deterministic,
                          progress=logging.getLogger("spectralmoe").level <= logging.INFO,
                          compile_model=run_compile, scheduler=run_scheduler,
                          local_workers=parse_cluster(run_cluster) if run_cluster else None)
    error = summary.pop("error", None)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(
            f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed; "
            f"{summary['pixels'] / 1e6:.2f} Mpix in {summary['seconds']:.1f} s "
            f"({summary['mpix_per_s'] or 0:.2f} Mpix/s), peak RSS {summary['peak_rss_mb']:.0f} MB; "
            f"read/infer/write {summary['time_split_s']['read']:.1f}/"
            f"{summary['time_split_s']['infer']:.1f}/{summary['time_split_s']['write']:.1f} s; "
            f"summary: {summary['summary_file']}", err=True)
    if error is not None:
        raise error


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


BANDS_HELP = ("The files' bands in file order, by name: red,green,blue for RGB PNGs, nir,red,green "
              "for IRRG, B04,B03,B02,B08 for a Sentinel-2 stack.")


@app.command()
def stats(
    source: Path = typer.Argument(..., help="A labelled folder (uses its images/), a folder of "
                                            "rasters, an image,label CSV, or one raster."),
    bands: str = typer.Option(..., "--bands", "-b", help=BANDS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (what train --stats reads)."),
    nodata: Optional[float] = typer.Option(None, "--nodata",
                                           help="A value marking invalid pixels in any band; "
                                                "replaces the files' own nodata."),
) -> None:
    """Per-band mean and std over the valid pixels of a folder: the normalisation statistics.

    Streams every raster block by block, so folders larger than memory work. A pixel is
    invalid where any band is NaN or nodata. train computes the same numbers itself; save
    them once for many runs with:

        spectralmoe stats data/train --bands red,green,blue --json > stats.json
        spectralmoe train ... --stats stats.json
    """
    from .engine.labelled.stats import folder_stats

    result = folder_stats(source, bands, nodata)
    typer.echo(json.dumps(result.to_json(), indent=2) if as_json else result.render())


@app.command()
def train(
    model: str = typer.Option(..., "--model", "-m", help="Zoo name (spectralmoe_dinov3_vitl16, "
                                                         "rein_tiny, frozen_tiny...) or a TOML config."),
    train_dir: Path = typer.Option(..., "--train", help="Labelled folder (images/ + labels/, "
                                                        "matching names) or an image,label CSV."),
    bands: str = typer.Option(..., "--bands", "-b", help=BANDS_HELP),
    classes: Path = typer.Option(..., "--classes", help="Class file (TOML/YAML): value, name, "
                                                        "color of each class; optional ignore."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory: checkpoints, metrics, "
                                                      "final model.safetensors."),
    val_dir: Optional[Path] = typer.Option(None, "--val", help="Labelled folder scored (mIoU) at "
                                                               "every checkpoint."),
    steps: int = typer.Option(4000, "--steps", help="Optimiser steps (the poly schedule ends here)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Crops per micro-batch."),
    crop: int = typer.Option(512, "--crop", help="Crop size in pixels; also the checkpoint's tile size."),
    lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate (AdamW, poly decay, no warm-up)."),
    accumulate: int = typer.Option(1, "--accumulate", help="Micro-batches per optimiser step."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every",
                                         help="Steps between checkpoints (and validations); 0: only at the end."),
    keep: int = typer.Option(5, "--keep", help="Periodic checkpoints kept (0: all)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where "
                                                        "its last checkpoint left it (or start it)."),
    force: bool = typer.Option(False, "--force", help="Start over in an existing --out (deletes its run files)."),
    seed: int = typer.Option(42, "--seed", help="Seed of initialisation, sampling and augmentation."),
    deterministic: bool = typer.Option(False, "--deterministic",
                                       help="Deterministic kernels: bit-identical reruns and resumes on CPU."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (bf16 autocast on GPU)."),
    reduce_zero_label: bool = typer.Option(False, "--reduce-zero-label",
                                           help="Benchmark labels (ISPRS, LoveDA): 0 -> ignore, k -> k-1."),
    stats_file: Optional[Path] = typer.Option(None, "--stats", help="Normalisation from 'spectralmoe "
                                                                    "stats --json' instead of computing it."),
    nodata: Optional[float] = typer.Option(None, "--nodata", help="A value marking invalid pixels "
                                                                  "(replaces the files' nodata)."),
    workers: int = typer.Option(2, "--workers", help="Data-loading processes (0: in the main process)."),
) -> None:
    """Fine-tune a model's plugin and head on labelled tiles; the backbones stay frozen.

    Every comparison method trains with the same command (--model frozen_tiny, rein_..., lora_...,
    depthforge_..., spectralmoe_...). Statistics, bands, classes and provenance go into the
    checkpoint, so predict and evaluate need nothing else. Kill it at any time: --resume
    continues from the last checkpoint. Example (ISPRS Potsdam tiles, mmseg label convention):

        spectralmoe train --model spectralmoe_dinov3_vitl16 --train potsdam/train
            --val potsdam/val --bands red,green,blue --classes isprs.toml --reduce-zero-label
            --out runs/potsdam --steps 20000 --batch-size 8

    isprs.toml, one table per class (YAML works too; values after --reduce-zero-label;
    'ignore' lists values never scored, 255 always is):

        ignore = [255]
        \\[\\[classes]]
        value = 1
        name = "building"
        color = "#0000ff"
    """
    import shlex

    from .engine.train.command import train as run_training
    from .engine.train.plan import TrainOptions

    final = run_training(TrainOptions(
        model=model, train=train_dir, val=val_dir, bands=bands, classes=classes, out=out,
        steps=steps, batch_size=batch_size, crop=crop, lr=lr, accumulate=accumulate,
        checkpoint_every=checkpoint_every, keep=keep, resume=resume, force=force, seed=seed,
        deterministic=deterministic, device=device, reduce_zero_label=reduce_zero_label,
        stats=stats_file, nodata=nodata, workers=workers,
        command=shlex.join(["spectralmoe", *sys.argv[1:]])))
    typer.echo(f"{out} has finished training; nothing to do" if final is None else str(final))


@app.command()
def evaluate(
    checkpoint: Path = typer.Argument(..., help="The .safetensors checkpoint to score."),
    source: Path = typer.Argument(..., help="A labelled folder (images/ + labels/) or an image,label CSV."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder: metrics.json, per_class.csv, "
                                                                "confusion.csv, report.md, confusion.png."),
    bands: Optional[str] = typer.Option(None, "--bands", "-b", help="The images' bands in file order "
                                                                     "[default: their band descriptions]."),
    classes: Optional[Path] = typer.Option(None, "--classes", help="Class file (TOML/YAML) [default: the one "
                                                                   "the checkpoint was trained with]."),
    reduce_zero_label: Optional[bool] = typer.Option(None, "--reduce-zero-label/--no-reduce-zero-label",
                                                     help="Labels 0 -> ignore, k -> k-1 [default: as trained]."),
    min_miou: Optional[float] = typer.Option(None, "--min-miou", help="Exit 4 below this mIoU "
                                                                      "(0.6 or 60 both mean 60 %)."),
    tile: Optional[int] = typer.Option(None, "--tile", help="Tile size [default: the checkpoint's]."),
    overlap: Optional[int] = typer.Option(None, "--overlap", help="Tile overlap [default: the checkpoint's]."),
    blend: str = typer.Option("hann", "--blend", help="hann | linear | none | center."),
    nodata: Optional[float] = typer.Option(None, "--nodata", help="Override every band's nodata value."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda:N."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Tiles per forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON instead of a table."),
) -> None:
    """Score a checkpoint on a labelled folder with the paper's metrics (mmseg IoUMetric).

    Every image goes through the same tiled engine as predict (so seams and edges count); one
    confusion matrix is pooled over all labelled pixels: IoU = TP/(TP+FP+FN), Acc = TP/(TP+FN),
    mIoU/mAcc skip classes with neither ground truth nor prediction, aAcc = ΣTP/Σlabelled, label
    255 ignored; plus precision, recall, F1 and Cohen's kappa. Example:

        spectralmoe evaluate runs/potsdam/model.safetensors data/vaihingen --out report/ --min-miou 60
    """
    from .bands import parse_band_list
    from .engine.evaluate.reports import render_table
    from .engine.evaluate.score import EvaluateOptions, check_min_miou, run_evaluate

    metrics = run_evaluate(EvaluateOptions(
        checkpoint=checkpoint, source=source, out=out,
        bands=parse_band_list(bands) if bands else None, classes=classes,
        reduce_zero_label=reduce_zero_label, tile=tile, overlap=overlap, blend=blend,
        nodata=nodata, device=device, batch_size=batch_size))
    typer.echo(json.dumps(metrics.to_dict(), indent=2) if as_json else render_table(metrics))
    check_min_miou(metrics, min_miou)


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
