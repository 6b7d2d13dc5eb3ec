"""``spectralmoe evaluate``: options in, one engine call, the scores out (exit 4 below the bar)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from pydantic import Field, StrictBool

from ..engine.evaluate.options import EvaluateOptions
from . import options as opt
from .config_file import command_settings


class EvaluateCommand(EvaluateOptions):
    """evaluate's options, plus how the scores are printed."""

    as_json: StrictBool = Field(False, alias="json")


S = EvaluateCommand  # the schema each option below reads its default from, and is checked by


def evaluate(
    ctx: typer.Context,
    checkpoint: Path = typer.Argument(..., help="The .safetensors checkpoint to score."),
    source: Path = typer.Argument(..., help="A labelled folder (images/ + labels/) or an image,label CSV."),
    bands: Optional[str] = opt.bands(S, "The images' bands in file order.",
                                     default="their band descriptions"),
    classes: Optional[Path] = opt.option(S, "classes", "--classes", panel=opt.INPUT,
                                         help="Class file (TOML/YAML).",
                                         default="the one the checkpoint was trained with"),
    reduce_zero_label: Optional[bool] = opt.switch(
        S, "reduce_zero_label", "--reduce-zero-label/--no-reduce-zero-label", panel=opt.LABELS,
        help="Labels 0 -> ignore, k -> k-1.", default="as trained"),
    nodata: Optional[float] = opt.nodata(S, "Override every band's nodata value."),
    tile: Optional[int] = opt.tile(S),
    overlap: Optional[int] = opt.overlap(S),
    blend: Optional[str] = opt.blend(S),
    out: Optional[Path] = opt.out(S, "Report folder: metrics.json, per_class.csv, confusion.csv, "
                                     "report.md, confusion.png."),
    min_miou: Optional[float] = opt.option(S, "min_miou", "--min-miou", panel=opt.OUTPUTS,
                                           help="Exit 4 below this mIoU (0.6 and 60 both mean 60%)."),
    as_json: Optional[bool] = opt.as_json("Print the metrics as JSON instead of a table."),
    device: Optional[str] = opt.device(S),
    batch_size: Optional[int] = opt.batch_size(S),
    label_field: Optional[str] = opt.label_field(S),
    background: Optional[str] = opt.background(S),
    image_glob: Optional[str] = opt.image_glob(S),
    label_glob: Optional[str] = opt.label_glob(S),
    config: Optional[Path] = opt.config(),
) -> None:
    """Score a checkpoint on a labelled folder with the paper's metrics (mmseg IoUMetric).

    Every image goes through the same tiled engine as predict (so seams and edges count); one
    confusion matrix is pooled over all labelled pixels: IoU = TP/(TP+FP+FN), Acc = TP/(TP+FN),
    mIoU/mAcc skip classes with neither ground truth nor prediction, aAcc = ΣTP/Σlabelled, label
    255 ignored; plus precision, recall, F1 and Cohen's kappa. Example:

        spectralmoe evaluate runs/potsdam/model.safetensors data/vaihingen
            --out report/ --min-miou 60
    """
    from ..engine.evaluate.reports import render_table
    from ..engine.evaluate.score import evaluate as run

    options = command_settings(ctx, EvaluateCommand)
    result = run(options)
    typer.echo(json.dumps(result.metrics.to_dict(), indent=2) if options.as_json
               else render_table(result.metrics))
    if result.error is not None:
        raise result.error
