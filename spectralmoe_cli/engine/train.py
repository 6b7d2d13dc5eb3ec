"""``spectralmoe train``: fine-tune a plugin and its head on a labelled folder; backbones stay frozen.

Everything is checked before anything is written: options, the run directory, model, class
file, bands and every training pair. The result is a checkpoint that carries its bands,
normalisation statistics, classes and provenance, so predict needs nothing else. A run
resumes exactly: sample i is a function of (seed, i), and weights, optimiser moments and every
RNG state are saved together at optimiser-step boundaries.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..bands import Band, parse_band_list, reorder, resolve_all
from ..checkpoint import BandInfo, CheckpointMeta, TileDefaults, load_checkpoint
from ..config import ModelConfig, load_config
from ..errors import UsageError
from ..nn.segmentor import Segmentor
from .classes import ClassSpec, load_classes
from .data import Pair, manifest, open_labelled
from .metrics import ConfusionMatrix, Metrics, compute_metrics
from .models import build_model, save_model
from .optim import WEIGHT_DECAY, build_optimizer, poly_lr, set_lr
from .progress import StepProgress
from .run_dir import MetricsLog, RunDir, load_state, save_state, write_json_atomic
from .samples import CropDataset, SampleReader, validation_windows
from .stats import compute_stats, load_stats


@dataclass(frozen=True)
class TrainOptions:
    model: str
    train: Path
    bands: str
    classes: Path
    out: Path
    val: Path | None = None
    steps: int = 4000
    batch_size: int = 8
    crop: int = 512
    lr: float = 1e-4
    accumulate: int = 1
    checkpoint_every: int = 500
    keep: int = 5
    resume: bool = False
    force: bool = False
    seed: int = 42
    deterministic: bool = False
    device: str = "auto"
    reduce_zero_label: bool = False
    stats: Path | None = None
    nodata: float | None = None
    workers: int = 2
    command: str = ""

    def check(self) -> None:
        for name, low in (("steps", 1), ("batch_size", 1), ("crop", 16), ("accumulate", 1),
                          ("checkpoint_every", 0), ("keep", 0), ("workers", 0), ("seed", 0)):
            if getattr(self, name) < low:
                raise UsageError(f"--{name.replace('_', '-')} must be at least {low}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError("--lr must be a positive number")
        if self.resume and self.force:
            raise UsageError("give --resume (continue the run) or --force (start it over), not both")


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
    """The config's order when it names exactly these bands (so an RGB model keeps red, green,
    blue on its pretrained kernels whatever the file order), otherwise the file order."""
    wanted = resolve_all(config_bands)
    if sorted(b.name for b in wanted) == sorted(b.name for b in file_bands):
        return wanted
    return file_bands


def _check_run_dir(run: RunDir, opts: TrainOptions) -> None:
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
    base = load_config(opts.model)
    classes = load_classes(opts.classes, opts.reduce_zero_label)
    file_bands = resolve_all(parse_band_list(opts.bands))
    model_bands = model_band_order(file_bands, list(base.data.bands))
    order = reorder(file_bands, model_bands)
    cfg = base.with_data([b.name for b in model_bands], classes.num_classes)
    train_pairs = open_labelled(opts.train, len(file_bands), classes, opts.nodata)
    val_pairs = open_labelled(opts.val, len(file_bands), classes, opts.nodata) if opts.val else []
    data = {"train": manifest(train_pairs, _root(opts.train)),
            "val": manifest(val_pairs, _root(opts.val)) if opts.val else None}
    recipe = _recipe(opts, cfg, file_bands, classes, data)
    stored = run.read_json("run.json") if opts.resume and run.is_run() else None
    if stored is not None:
        changed = _differences(stored["recipe"], recipe)
        before = stored["recipe"]["model"]["name"]
        if before != cfg.name:
            raise UsageError(f"{run.root} is a run of model {before}, not {cfg.name}; resume it with "
                             f"its own options, or train into a new --out")
        if changed:
            raise UsageError(f"{run.root} was started with other {', '.join(changed)}; resume it "
                             f"with the same options, or train into a new --out")
    if opts.stats is not None:
        mean, std = load_stats(opts.stats, model_bands)
    elif stored is not None:
        mean, std = stored["mean"], stored["std"]
    else:
        stats = compute_stats([p.image for p in train_pairs], file_bands, opts.nodata)
        mean, std = [stats.mean[i] for i in order], [stats.std[i] for i in order]
    return Plan(cfg, model_bands, order, classes, train_pairs, val_pairs, data, mean, std, recipe)


def _root(source: Path) -> Path:
    return source.parent if source.is_file() else source


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: only cpu and cuda are supported")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is visible; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
    return device


def _seed(opts: TrainOptions, device: torch.device) -> None:
    if opts.deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # CUDA lacks deterministic kernels for a few ops (bilinear upsampling backward): warn there.
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = not opts.deterministic
    random.seed(opts.seed)
    np.random.seed(opts.seed)
    torch.manual_seed(opts.seed)


def _meta(plan: Plan, opts: TrainOptions, step: int) -> CheckpointMeta:
    provenance = {
        "command": opts.command, "spectralmoe": __version__, "step": step, "steps": opts.steps,
        "seed": opts.seed, "train": {"source": str(opts.train), "files": plan.data["train"]["count"],
                                     "sha256": plan.data["train"]["sha256"]},
        "val": None if not plan.data["val"] else {"source": str(opts.val), "files": plan.data["val"]["count"],
                                                  "sha256": plan.data["val"]["sha256"]},
        "label_values": list(plan.classes.values), "reduce_zero_label": plan.classes.reduce_zero_label,
        "stats": str(opts.stats) if opts.stats else "computed on the training images",
        "recipe": {k: plan.recipe[k] for k in ("batch_size", "accumulate", "crop", "lr", "weight_decay", "nodata")},
    }
    return CheckpointMeta(
        model=plan.cfg, bands=[BandInfo(name=b.name, wavelength=b.wavelength) for b in plan.model_bands],
        mean=plan.mean, std=plan.std, classes=plan.classes.infos(),
        tile=TileDefaults(size=opts.crop, overlap=opts.crop // 4), contains=[], provenance=provenance)


def _autocast(device: torch.device):
    """bf16 autocast where the GPU supports it; full precision on CPU."""
    enabled = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def validate(model: Segmentor, plan: Plan, reader: SampleReader, crop: int,
             device: torch.device) -> Metrics:
    """Score whole validation images on a non-overlapping crop grid."""
    matrix = ConfusionMatrix(plan.classes.num_classes)
    model.eval()
    with torch.no_grad():
        for pair, window in validation_windows(plan.val_pairs, crop):
            x, y = reader.read(pair, window)
            with _autocast(device):
                logits, _ = model(torch.from_numpy(x)[None].to(device))
            matrix.update(logits.argmax(1)[0].cpu().numpy(), y)
    model.train()
    return compute_metrics(matrix, list(plan.classes.names))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _start(run: RunDir, plan: Plan, opts: TrainOptions, model: Segmentor,
           optimizer: torch.optim.Optimizer, device: torch.device) -> int:
    """Restore the latest checkpoint of a resumed run, or lay out a new run; return the step."""
    if opts.resume and run.is_run():
        latest = run.latest()
        if latest is None:
            return 0
        tensors, _ = load_checkpoint(run.path(latest["checkpoint"]))
        model.load_state_dict(tensors, strict=False)
        return load_state(run.path(latest["state"]), optimizer, device)
    if opts.force:
        run.clear()
    run.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run.path("data.json"), plan.data)
    write_json_atomic(run.path("run.json"), {"recipe": plan.recipe, "mean": plan.mean, "std": plan.std,
                                             "command": opts.command, "spectralmoe": __version__})
    return 0


def _save(run: RunDir, plan: Plan, opts: TrainOptions, model: Segmentor,
          optimizer: torch.optim.Optimizer, device: torch.device, step: int) -> None:
    save_model(run.checkpoint_path(step), model, _meta(plan, opts, step))
    save_state(run.state_path(step), step, optimizer, device)
    write_json_atomic(run.path("latest.json"), {
        "step": step, "checkpoint": str(run.checkpoint_path(step).relative_to(run.root)),
        "state": str(run.state_path(step).relative_to(run.root)), "finished": False})
    run.prune(opts.keep, step)


def train(opts: TrainOptions) -> Path | None:
    """Run (or resume) training; return the final checkpoint, or None if the run had finished."""
    opts.check()
    run = RunDir(opts.out)
    _check_run_dir(run, opts)
    latest = run.latest() if opts.resume and run.is_run() else None
    plan = plan_run(opts, run)
    if latest is not None and latest.get("finished"):
        return None
    device = pick_device(opts.device)
    _seed(opts, device)
    model = build_model(plan.cfg).to(device).train()
    optimizer = build_optimizer(model, opts.lr)
    step = _start(run, plan, opts, model, optimizer, device)
    reader = SampleReader(plan.classes, tuple(plan.band_order), tuple(plan.mean), tuple(plan.std))
    per_step = opts.batch_size * opts.accumulate
    dataset = CropDataset(plan.train_pairs, reader, opts.crop, opts.seed, opts.steps * per_step)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=opts.batch_size, sampler=range(step * per_step, opts.steps * per_step),
        num_workers=opts.workers, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(opts.seed))
    batches = iter(loader)
    metrics = MetricsLog(run, validates=bool(plan.val_pairs))
    metrics.truncate(step)
    progress = StepProgress(step, opts.steps)
    progress.note(f"training {plan.cfg.name} on {len(plan.train_pairs)} image(s), {device}, "
                  f"steps {step + 1}..{opts.steps}")
    try:
        while step < opts.steps:
            began = time.perf_counter()
            lr = poly_lr(opts.lr, step, opts.steps)
            set_lr(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            for _ in range(opts.accumulate):
                x, y = next(batches)
                with _autocast(device):
                    losses = model.loss(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
                total = sum(losses.values())
                (total / opts.accumulate).backward()
                for key, value in {"loss": total, **losses}.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) / opts.accumulate
            if not math.isfinite(sums["loss"]):
                raise UsageError(f"training diverged: the loss is {sums['loss']} at step {step + 1}; "
                                 f"lower --lr, or check the data (resume from the last checkpoint)")
            optimizer.step()
            step += 1
            record = {"step": step, **sums, "lr": lr, "sec_per_step": time.perf_counter() - began}
            if step == opts.steps or (opts.checkpoint_every and step % opts.checkpoint_every == 0):
                if plan.val_pairs:
                    scores = validate(model, plan, reader, opts.crop, device)
                    record.update(val_mIoU=_finite(scores.miou), val_mAcc=_finite(scores.macc),
                                  val_aAcc=_finite(scores.aacc))
                    progress.note(f"step {step}: val mIoU {100 * scores.miou:.2f}")
                _save(run, plan, opts, model, optimizer, device, step)
            metrics.append(record)
            progress.step(step, sums["loss"], lr, record["sec_per_step"])
    finally:
        progress.close()
    final = run.path("model.safetensors")
    save_model(final, model, _meta(plan, opts, step))
    latest = run.latest() or {}
    write_json_atomic(run.path("latest.json"), {**latest, "finished": True})
    return final

