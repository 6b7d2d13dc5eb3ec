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
    from .engine.stats import folder_stats

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

    from .engine.train import train as run_training
    from .engine.train_plan import TrainOptions

    final = run_training(TrainOptions(
        model=model, train=train_dir, val=val_dir, bands=bands, classes=classes, out=out,
        steps=steps, batch_size=batch_size, crop=crop, lr=lr, accumulate=accumulate,
        checkpoint_every=checkpoint_every, keep=keep, resume=resume, force=force, seed=seed,
        deterministic=deterministic, device=device, reduce_zero_label=reduce_zero_label,
        stats=stats_file, nodata=nodata, workers=workers,
        command=shlex.join(["spectralmoe", *sys.argv[1:]])))
    typer.echo(f"{out} has finished training; nothing to do" if final is None else str(final))


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
