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
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _pick(given, config: dict, key: str, default):
    return given if given is not None else config.pop(key, default)


@app.command()
def predict(
    scenes: list[str] = typer.Argument(..., help="Scenes: GeoTIFF/COG/VRT/any GDAL raster, or Zarr stores."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if missing)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c",
                                              help="A .safetensors checkpoint [default: the bundled model]."),
    bands: Optional[str] = typer.Option(None, "--bands", "-b",
                                        help="The scene's bands in file order, e.g. B4,B3,B2,B8 or red,green,blue,nir "
                                             "[default: the file's band descriptions]."),
    formats: Optional[str] = typer.Option(None, "--format", help="Comma list of cog,zarr [default: cog,zarr]."),
    probabilities: Optional[bool] = typer.Option(None, "--probabilities/--no-probabilities",
                                                 help="Also store blended class probabilities (uint8 x250) in the Zarr."),
    tile: Optional[int] = typer.Option(None, "--tile", help="Tile size in pixels [default: the checkpoint's, 512]."),
    overlap: Optional[int] = typer.Option(None, "--overlap", help="Overlap between tiles [default: the checkpoint's, 128]."),
    blend: Optional[str] = typer.Option(None, "--blend", help="hann | linear | none | center [default: hann]."),
    chunk: Optional[int] = typer.Option(None, "--chunk", help="Processing chunk in pixels (memory ~ chunk², rounded "
                                                               "to the tile stride) [default: 2048]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Tiles per forward pass [default: 2 CPU, 16 GPU]."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda:N [default: auto]."),
    nodata: Optional[float] = typer.Option(None, "--nodata", help="Override every band's nodata value."),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--fast",
                                                 help="Bit-identical maps for any --chunk [default: on for CPU, off for GPU]."),
    compress: Optional[str] = typer.Option(None, "--compress", help="COG compression: DEFLATE or ZSTD [default: DEFLATE]."),
    overview_resampling: Optional[str] = typer.Option(None, "--overview-resampling",
                                                      help="COG overviews: MODE or NEAREST [default: MODE]."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile",
                                                 help="torch.compile the model (worth it for long GPU runs)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/YAML file with defaults for these options."),
    force: bool = typer.Option(False, "--force", help="Recompute outputs that already exist."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
) -> None:
    """Segment whole scenes into land-cover maps: Zarr + COG + STAC item + quicklook per scene.

    Scenes are streamed chunk by chunk (memory does not grow with scene size) over a fixed global
    tile grid; overlapping tiles are blended with edge-aware Hann weights. Outputs get a
    deterministic name, appear by atomic rename, and a rerun resumes a killed run. Example:

        spectralmoe predict scene.tif --bands B4,B3,B2,B8 --out maps/

    A failed scene does not stop the others; the run ends with a summary (also written to
    OUT/spectralmoe-summary.json) and exit 4 if any scene failed (a single scene's own code, e.g.
    3 for a missing band, when it was the only scene).
    """
    from .bands import parse_band_list
    from .checkpoint import read_metadata
    from .config import zoo_dir
    from .engine.batch import run_predict
    from .engine.predict import PredictSettings
    from .errors import ConfigError

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
    )
    run_device = str(_pick(device, conf, "device", "auto"))
    run_batch = _pick(batch_size, conf, "batch_size", None)
    run_deterministic = _pick(deterministic, conf, "deterministic", None)
    run_compile = bool(_pick(compile_model, conf, "compile", False))
    if conf:
        raise ConfigError(f"--config {config}: unknown option(s) {', '.join(sorted(conf))}")
    summary = run_predict(scenes, checkpoint, out, settings, device=run_device,
                          batch_size=run_batch, deterministic=run_deterministic,
                          progress=logging.getLogger("spectralmoe").level <= logging.INFO,
                          compile_model=run_compile)
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
