"""``spectralmoe train``: options in, one engine call, the final checkpoint's path out."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..engine.train.options import TrainOptions
from . import options as opt
from .config_file import command_settings

S = TrainOptions  # the schema each option below reads its default from, and is checked by


def _training(field: str, name: str, help: str) -> Any:
    return opt.option(S, field, name, help=help, panel=opt.TRAINING)


def train(
    ctx: typer.Context,
    model: Optional[str] = opt.option(S, "model", "--model", "-m", panel=opt.INPUT,
                                      help="Zoo name (spectralmoe_dinov3_vitl16, rein_tiny, "
                                           "frozen_tiny...) or a TOML config."),
    train_dir: Optional[Path] = opt.option(S, "train", "--train", panel=opt.INPUT,
                                           help="Labelled folder (images/ + labels/, matching names) "
                                                "or an image,label CSV."),
    val_dir: Optional[Path] = opt.option(S, "val", "--val", panel=opt.INPUT,
                                         help="Labelled folder scored (mIoU) at every checkpoint."),
    bands: Optional[str] = opt.bands(S, opt.BANDS_HELP),
    classes: Optional[Path] = opt.option(S, "classes", "--classes", panel=opt.INPUT,
                                         help="Class file (TOML/YAML): value, name, color of each "
                                              "class; optional ignore."),
    reduce_zero_label: Optional[bool] = opt.switch(
        S, "reduce_zero_label", "--reduce-zero-label", panel=opt.INPUT,
        help="Benchmark labels (ISPRS, LoveDA): 0 -> ignore, k -> k-1."),
    stats_file: Optional[Path] = opt.option(S, "stats", "--stats", panel=opt.INPUT,
                                            help="Normalisation from 'spectralmoe stats --json' "
                                                 "instead of computing it."),
    nodata: Optional[float] = opt.nodata(S, "A value marking invalid pixels (replaces the files' "
                                            "nodata)."),
    out: Optional[Path] = opt.out(S, "Run directory: checkpoints, metrics, final model.safetensors."),
    steps: Optional[int] = _training("steps", "--steps", "Optimiser steps (the poly schedule ends here)."),
    batch_size: Optional[int] = _training("batch_size", "--batch-size", "Crops per micro-batch."),
    crop: Optional[int] = _training("crop", "--crop", "Crop size in pixels; also the checkpoint's "
                                                      "tile size."),
    lr: Optional[float] = _training("lr", "--lr", "Peak learning rate (AdamW, poly decay, no warm-up)."),
    accumulate: Optional[int] = _training("accumulate", "--accumulate", "Micro-batches per optimiser "
                                                                        "step."),
    seed: Optional[int] = _training("seed", "--seed", "Seed of initialisation, sampling and "
                                                      "augmentation."),
    checkpoint_every: Optional[int] = opt.option(
        S, "checkpoint_every", "--checkpoint-every", panel=opt.RUN,
        help="Steps between checkpoints (and validations); 0: only at the end."),
    keep: Optional[int] = opt.option(S, "keep", "--keep", panel=opt.RUN,
                                     help="Periodic checkpoints kept (0: all)."),
    resume: Optional[bool] = opt.switch(S, "resume", "--resume", panel=opt.RUN,
                                        help="Continue the run in --out exactly where its last "
                                             "checkpoint left it (or start it)."),
    force: Optional[bool] = opt.switch(S, "force", "--force", panel=opt.RUN,
                                       help="Start over in an existing --out (deletes its run files)."),
    device: Optional[str] = opt.device(S, "auto, cpu, cuda or cuda:N (bf16 autocast on GPU)."),
    deterministic: Optional[bool] = opt.switch(
        S, "deterministic", "--deterministic", panel=opt.COMPUTE,
        help="Deterministic kernels: bit-identical reruns and resumes on CPU."),
    workers: Optional[int] = opt.option(S, "workers", "--workers", panel=opt.COMPUTE,
                                        help="Data-loading processes (0: in the main process)."),
    label_field: Optional[str] = opt.label_field(S),
    background: Optional[str] = opt.background(S),
    image_glob: Optional[str] = opt.image_glob(S),
    label_glob: Optional[str] = opt.label_glob(S),
    config: Optional[Path] = opt.config(),
) -> None:
    """Fine-tune a model's plugin and head on labelled tiles; the backbones stay frozen.

    Every comparison method trains with the same command (--model frozen_tiny, rein_..., lora_...,
    depthforge_..., spectralmoe_...). Statistics, bands, classes and provenance go into the
    checkpoint, so predict and evaluate need nothing else. Kill it at any time: --resume
    continues from the last checkpoint. Example (ISPRS Potsdam tiles, mmseg label convention):

        spectralmoe train --model spectralmoe_dinov3_vitl16
            --train potsdam/train --val potsdam/val --bands red,green,blue
            --classes isprs.toml --reduce-zero-label --out runs/potsdam
            --steps 20000 --batch-size 8

    isprs.toml, one table per class (YAML works too; values after --reduce-zero-label;
    'ignore' lists values never scored, 255 always is):

        ignore = [255]
        \\[\\[classes]]
        value = 1
        name = "building"
        color = "#0000ff"
    """
    from ..engine.train.command import train as run

    options = command_settings(ctx, TrainOptions, command=shlex.join(["spectralmoe", *sys.argv[1:]]))
    final = run(options)
    typer.echo(f"{options.out} has finished training; nothing to do" if final is None else str(final))
