"""The training loop: model, optimiser, batches, checkpoints, validation, metrics, progress.

Sample i is a function of (seed, i) and weights, optimiser moments and every RNG state are
saved together at optimiser-step boundaries, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ... import __version__
from ...checkpoint import BandInfo, CheckpointMeta, TileDefaults, load_checkpoint
from ...errors import UsageError
from ...files import write_json_atomic
from ...nn.segmentor import Segmentor
from ..evaluate.metrics import ConfusionMatrix, Metrics, compute_metrics
from ..runtime.devices import autocast, autocast_dtype
from ..runtime.models import build_model, save_model
from ..runtime.progress import StepProgress
from .optim import build_optimizer, poly_lr, set_lr
from .options import TrainOptions
from .plan import Plan
from .run_dir import MetricsLog, RunDir
from .samples import CropDataset, SampleReader, validation_windows
from .state import load_state, save_state


def _seed(opts: TrainOptions, device: torch.device) -> None:
    """Seed every generator; in deterministic mode also forbid non-deterministic kernels."""
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
        "labels": plan.classes.to_json(),
        "stats": str(opts.stats) if opts.stats else "computed on the training images",
        "recipe": {k: plan.recipe[k] for k in ("batch_size", "accumulate", "crop", "lr", "weight_decay", "nodata")},
    }
    return CheckpointMeta(
        model=plan.cfg, bands=[BandInfo(name=b.name, wavelength=b.wavelength) for b in plan.model_bands],
        mean=plan.mean, std=plan.std, classes=plan.classes.infos(),
        tile=TileDefaults(size=opts.crop, overlap=opts.crop // 4), contains=[], provenance=provenance)


def validate(model: Segmentor, plan: Plan, reader: SampleReader, crop: int,
             device: torch.device) -> Metrics:
    """Score whole validation images on a non-overlapping crop grid."""
    matrix = ConfusionMatrix(plan.classes.num_classes)
    model.eval()
    with torch.no_grad():
        for pair, window in validation_windows(plan.val_pairs, crop):
            x, y = reader.read(pair, window)
            with autocast(device, autocast_dtype(device)):
                logits, _ = model(torch.from_numpy(x)[None].to(device))
            matrix.update(logits.argmax(1)[0].cpu().numpy(), y)
    model.train()
    return compute_metrics(matrix, list(plan.classes.names))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _start(run: RunDir, plan: Plan, opts: TrainOptions, model: Segmentor,
           optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
           device: torch.device) -> int:
    """Restore the latest checkpoint of a resumed run, or lay out a new run; return the step."""
    if opts.resume and run.is_run():
        latest = run.latest()
        if latest is None:
            return 0
        tensors, _ = load_checkpoint(run.path(latest["checkpoint"]))
        model.load_state_dict(tensors, strict=False)
        return load_state(run.path(latest["state"]), optimizer, scaler, device)
    if opts.force:
        run.clear()
    run.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run.path("data.json"), plan.data)
    write_json_atomic(run.path("run.json"), {"recipe": plan.recipe, "mean": plan.mean, "std": plan.std,
                                             "command": opts.command, "spectralmoe": __version__})
    return 0


def _save(run: RunDir, plan: Plan, opts: TrainOptions, model: Segmentor,
          optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, device: torch.device,
          step: int) -> None:
    save_model(run.checkpoint_path(step), model, _meta(plan, opts, step))
    save_state(run.state_path(step), step, optimizer, scaler, device)
    write_json_atomic(run.path("latest.json"), {
        "step": step, "checkpoint": str(run.checkpoint_path(step).relative_to(run.root)),
        "state": str(run.state_path(step).relative_to(run.root)), "finished": False})
    run.prune(opts.keep, step)


def _batches(plan: Plan, opts: TrainOptions, reader: SampleReader, step: int,
             device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The run's samples from optimiser step ``step`` on; the loader's own generator keeps the
    global RNG untouched, so resuming does not shift the model's random stream."""
    per_step = opts.batch_size * opts.accumulate
    dataset = CropDataset(plan.train_pairs, reader, opts.crop, opts.seed, opts.steps * per_step)
    return iter(torch.utils.data.DataLoader(
        dataset, batch_size=opts.batch_size, sampler=range(step * per_step, opts.steps * per_step),
        num_workers=opts.workers, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(opts.seed)))


def _step(model: Segmentor, batches: Iterator, accumulate: int, scaler: torch.amp.GradScaler,
          device: torch.device) -> dict[str, float]:
    """Forward and backward over ``accumulate`` micro-batches; mean loss parts."""
    sums: dict[str, float] = {}
    for _ in range(accumulate):
        x, y = next(batches)
        with autocast(device, autocast_dtype(device)):
            losses = model.loss(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        total = sum(losses.values())
        scaler.scale(total / accumulate).backward()
        for key, value in {"loss": total, **losses}.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach()) / accumulate
    return sums


def fit(opts: TrainOptions, plan: Plan, run: RunDir, device: torch.device) -> Path:
    """Train from the run's last checkpoint (or from scratch) to ``opts.steps``; return the final checkpoint."""
    _seed(opts, device)
    model = build_model(plan.cfg).to(device).train()
    optimizer = build_optimizer(model, opts.lr)
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none (the scaler is off)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype(device) == torch.float16)
    step = _start(run, plan, opts, model, optimizer, scaler, device)
    reader = SampleReader(plan.classes, tuple(plan.band_order), tuple(plan.mean), tuple(plan.std))
    batches = _batches(plan, opts, reader, step, device)
    metrics = MetricsLog(run, validates=bool(plan.val_pairs))
    metrics.truncate(step)
    progress = StepProgress(step, opts.steps)
    progress.note(f"training {plan.cfg.name} on {len(plan.train_pairs)} image(s), {device}, "
                  f"steps {step + 1}..{opts.steps}")
    if model.rgb_bands:
        progress.note(f"depth model reads R, G, B from bands {', '.join(model.rgb_bands)}")
    try:
        while step < opts.steps:
            began = time.perf_counter()
            lr = poly_lr(opts.lr, step, opts.steps)
            set_lr(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            sums = _step(model, batches, opts.accumulate, scaler, device)
            if not math.isfinite(sums["loss"]):
                raise UsageError(f"training diverged: the loss is {sums['loss']} at step {step + 1}; "
                                 f"lower --lr or check the data, then --resume from the last checkpoint")
            scaler.step(optimizer)  # optimizer.step(), unless fp16 gradients overflowed
            scaler.update()
            step += 1
            record = {"step": step, **sums, "lr": lr, "sec_per_step": time.perf_counter() - began}
            checkpoint = step == opts.steps or bool(opts.checkpoint_every
                                                    and step % opts.checkpoint_every == 0)
            if checkpoint and plan.val_pairs:
                scores = validate(model, plan, reader, opts.crop, device)
                record.update(val_mIoU=_finite(scores.miou), val_mAcc=_finite(scores.macc),
                              val_aAcc=_finite(scores.aacc))
                progress.note(f"step {step}: val mIoU {100 * scores.miou:.2f}")
            metrics.append(record)  # before the checkpoint: a checkpoint implies its records
            if checkpoint:
                _save(run, plan, opts, model, optimizer, scaler, device, step)
            progress.step(step, sums["loss"], lr, record["sec_per_step"])
    finally:
        progress.close()
    final = run.path("model.safetensors")
    save_model(final, model, _meta(plan, opts, step))
    write_json_atomic(run.path("latest.json"), {**(run.latest() or {}), "finished": True})
    return final
