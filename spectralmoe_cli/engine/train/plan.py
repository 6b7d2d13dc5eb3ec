"""What a training run is, decided and checked before anything is written or any model is built.

Options, the run directory, model config, class file, bands and every training pair are
validated here (the model config against the registries too); the normalisation statistics are
computed (or read) here too. Nothing in this module builds a model, so bad input fails fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ...bands import SAME_BAND_NM, Band, match_bands, parse_band_list, resolve_all, rgb_indices
from ...config import ModelConfig
from ...errors import UsageError
from ..labelled.classes import ClassSpec, load_classes
from ...nn.catalog import PLUGINS
from ..labelled.folders import Pair, manifest, open_labelled
from ..labelled.stats import compute_stats, load_stats
from ..runtime.models import load_model_config
from .optim import WEIGHT_DECAY
from .options import TrainOptions
from .run_dir import RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a run is, decided before anything is written."""

    cfg: ModelConfig
    model_bands: list[Band]
    band_order: list[int]
    classes: ClassSpec
    train_pairs: list[Pair]
    val_pairs: list[Pair]
    data: dict
    mean: list[float]
    std: list[float]
    recipe: dict


def model_band_order(file_bands: list[Band], config_bands: list[str]) -> list[Band]:
    """The model's band order: the config's when it names exactly these bands; otherwise red,
    green, blue first (band i gets pretrained RGB kernel i mod 3, so they land on their own
    kernels) and the other bands after them in file order."""
    wanted = resolve_all(config_bands)
    if sorted(b.name for b in wanted) == sorted(b.name for b in file_bands):
        return wanted
    by_name = {b.name: b for b in file_bands}
    rgb = [by_name[n] for n in ("red", "green", "blue") if n in by_name]
    if len(rgb) < 3:
        return file_bands
    return rgb + [b for b in file_bands if b.name not in ("red", "green", "blue")]


def check_run_dir(run: RunDir, opts: TrainOptions) -> None:
    """Never train over a run by accident: an existing --out needs --resume or --force."""
    if opts.resume and not run.is_empty() and not run.is_run():
        raise UsageError(f"{run.root} is not a training run (no run.json); nothing to resume")
    if not opts.resume and not opts.force and not run.is_empty():
        raise UsageError(f"{run.root} already exists; continue that run with --resume or start "
                         f"it over with --force")


def _recipe(opts: TrainOptions, cfg: ModelConfig, file_bands: list[Band], classes: ClassSpec,
            data: dict) -> dict:
    return {
        "model": cfg.model_dump(mode="json"), "bands": [b.name for b in file_bands],
        "classes": classes.to_json(), "train_data": data["train"]["sha256"],
        "val_data": data["val"]["sha256"] if data["val"] else None, "nodata": opts.nodata,
        "steps": opts.steps, "batch_size": opts.batch_size, "crop": opts.crop, "lr": opts.lr,
        "weight_decay": WEIGHT_DECAY, "accumulate": opts.accumulate, "seed": opts.seed,
    }


def _differences(stored: dict, recipe: dict) -> list[str]:
    return [key for key in sorted(set(stored) | set(recipe)) if stored.get(key) != recipe.get(key)]


def plan_run(opts: TrainOptions, run: RunDir) -> Plan:
    """Validate options, model, classes, bands and data; decide stats. Writes nothing."""
    base = load_model_config(opts.model)
    classes = load_classes(opts.classes, opts.reduce_zero_label)
    if mapping := classes.renumbering():  # recorded in the checkpoint; shown by info
        log.info("label values become class numbers: %s", mapping)
    file_bands = resolve_all(parse_band_list(opts.bands))
    model_bands = model_band_order(file_bands, list(base.data.bands))
    order = [m.index for m in match_bands(file_bands, model_bands, SAME_BAND_NM)]
    cfg = base.with_data([b.name for b in model_bands], classes.num_classes)
    stored = run.read_json("run.json") if opts.resume and run.is_run() else None
    if stored is not None and stored["recipe"]["model"]["name"] != cfg.name:
        raise UsageError(f"{run.root} is a run of model {stored['recipe']['model']['name']}, not "
                         f"{cfg.name}; resume it with its own options, or train into a new --out")
    train_pairs = open_labelled(opts.train, len(file_bands), classes, opts.nodata, options=opts.label_options())
    val_pairs = open_labelled(opts.val, len(file_bands), classes, opts.nodata,
                              options=opts.label_options()) if opts.val else []
    if cfg.depth is not None and PLUGINS.get(cfg.plugin.method).needs_depth:
        rgb_indices(model_bands)  # the depth model's R, G, B exist (exit 3 before any write)
    data = {"train": manifest(train_pairs, _root(opts.train)),
            "val": manifest(val_pairs, _root(opts.val)) if opts.val else None}
    recipe = _recipe(opts, cfg, file_bands, classes, data)
    if any(p.mode == "vector" for p in train_pairs + val_pairs):  # what the polygons were burnt as
        recipe["vector_labels"] = {"field": opts.label_field, "background": opts.background}
    changed = _differences(stored["recipe"], recipe) if stored is not None else []
    mean, std = _normalisation(opts, stored, train_pairs, file_bands, model_bands, order)
    if stored is not None and (mean, std) != (stored["mean"], stored["std"]):
        changed.append("normalisation statistics")
    if changed:
        raise UsageError(f"{run.root} was started with other {', '.join(changed)}; resume it "
                         f"with the same options, start it over with --force, or train into a "
                         f"new --out")
    return Plan(cfg, model_bands, order, classes, train_pairs, val_pairs, data, mean, std, recipe)


def _normalisation(opts: TrainOptions, stored: dict | None, pairs: list[Pair], file_bands: list[Band],
                   model_bands: list[Band], order: list[int]) -> tuple[list[float], list[float]]:
    """Per-band mean and std in model band order: --stats, else the resumed run's, else computed."""
    if opts.stats is not None:
        return load_stats(opts.stats, model_bands)
    if stored is not None:
        return stored["mean"], stored["std"]
    stats = compute_stats([p.image for p in pairs], file_bands, opts.nodata)
    return [stats.mean[i] for i in order], [stats.std[i] for i in order]


def _root(source: Path) -> Path:
    return source.parent if source.is_file() else source
