"""evaluate: a checkpoint against a labelled folder, through the tiled predict engine.

Each image is predicted exactly as ``spectralmoe predict`` would (same grid, blending, nodata
handling; seams and edges count), then one confusion matrix is pooled over every labelled pixel of
the folder and scored with mmseg IoUMetric's definitions. Map and label are compared window by
window (one store chunk at a time), so a scene-sized label raster is scored in bounded memory.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...bands import parse_band_list
from ...errors import ConfigError, InputDataError, PartialFailure
from ...files import json_float
from ...io.rasters import open_raster
from ..labelled.classes import ClassSpec, load_classes
from ..labelled.folders import label_window, open_labelled
from ..labelled.pairs import find_pairs
from ..predict.scene import ScenePredictor, check_output_dir
from ..predict.settings import PredictSettings
from ..runtime.models import load_tile_model
from ..runtime.progress import Progress
from .metrics import ConfusionMatrix, Metrics, compute_metrics
from .options import EvaluateOptions
from .reports import write_report

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """The scores, and the error to raise once they are printed (below ``--min-miou``)."""

    metrics: Metrics
    error: PartialFailure | None = None


def _class_spec(opts: EvaluateOptions, meta) -> ClassSpec:
    """The class file given, else the one the training run stored in the checkpoint."""
    stored = meta.provenance.get("labels")
    trained = bool(stored and stored.get("reduce_zero_label"))
    reduce = trained if opts.reduce_zero_label is None else opts.reduce_zero_label
    if opts.classes is not None:
        spec = load_classes(opts.classes, reduce)
    elif stored:
        spec = ClassSpec.from_json({**stored, "reduce_zero_label": reduce},
                                   f"{opts.checkpoint} (provenance)")
    else:
        raise ConfigError(f"{opts.checkpoint} records no class file; give --classes FILE")
    names = [c.name for c in meta.classes]
    if list(spec.names) != names:
        raise ConfigError(f"class file {spec.source} names {', '.join(spec.names)}; the checkpoint's "
                          f"classes are {', '.join(names)}")
    return spec


def min_miou_fraction(value: float) -> float:
    """``--min-miou`` as a fraction: 0.6 and 60 both mean 60 %."""
    return value / 100.0 if value > 1.0 else value


def run_evaluate(opts: EvaluateOptions) -> Metrics:
    """Score the folder (and write the report when ``out`` is given)."""
    if opts.out is not None:
        check_output_dir(opts.out)  # before the work, not after it, as predict and fetch do
    tile_model = load_tile_model(opts.checkpoint, opts.device, opts.batch_size, opts.deterministic)
    meta = tile_model.meta
    tile, overlap = opts.tiling(meta)  # a checkpoint's absurd tile is refused before any file is read
    spec = _class_spec(opts, meta)
    labels = opts.label_options()
    found = find_pairs(opts.source, labels)
    if not found:
        raise InputDataError(f"{opts.source} holds no image/label pairs")
    bands = parse_band_list(opts.bands) if opts.bands else None
    if bands:
        band_count = len(bands)
    else:
        with open_raster(found[0][0]) as first:
            band_count = first.count
    pairs = open_labelled(opts.source, band_count, spec, opts.nodata, options=labels)
    settings = PredictSettings(bands=bands, tile=tile, overlap=overlap, blend=opts.blend,
                               nodata=opts.nodata, formats=("zarr",))
    settings.validate()
    matrix = ConfusionMatrix(spec.num_classes)
    progress = Progress(enabled=False)
    with tempfile.TemporaryDirectory(prefix="spectralmoe-evaluate-") as work:
        predictor = ScenePredictor(meta, tile_model, settings, Path(work), progress)
        images = 0
        for pair in pairs:
            for window, predicted in predictor.class_blocks(str(pair.image)):
                matrix.update(predicted, label_window(pair, spec, window))
            images += 1
            log.info("%s: scored (%d/%d)", pair.image.name, images, len(pairs))
    metrics = compute_metrics(matrix, list(spec.names))
    if opts.out is not None:
        write_report(metrics, opts.out, extra={
            "checkpoint": str(opts.checkpoint), "checkpoint_hash": meta.content_hash,
            "model": meta.model.name, "source": str(opts.source), "images": images,
            "settings": {"tile": settings.tile, "overlap": settings.overlap, "blend": settings.blend,
                         "bands": bands, "nodata": json_float(opts.nodata)},
        })
    return metrics


def below_min_miou(metrics: Metrics, bar: float | None) -> PartialFailure | None:
    """PartialFailure (exit 4) when mIoU is below the bar, so cron and CI can gate on quality."""
    if bar is not None and not metrics.miou >= min_miou_fraction(bar):
        return PartialFailure(f"mIoU {metrics.miou * 100:.2f} % is below --min-miou "
                              f"{min_miou_fraction(bar) * 100:.2f} %")
    return None


def evaluate(opts: EvaluateOptions) -> Evaluation:
    """Score the folder, write the report, and judge the score against ``--min-miou``."""
    metrics = run_evaluate(opts)
    return Evaluation(metrics, below_min_miou(metrics, opts.min_miou))
