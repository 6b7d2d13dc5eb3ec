"""Building models from configs and checkpoints: the one place nn meets files."""

from __future__ import annotations

from pathlib import Path

import torch

from ...checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from ...config import BackboneConfig, ModelConfig, load_config
from ...errors import CheckpointError
from ...nn.backbones import FrozenViT, get_spec, load_weights
from ...nn.catalog import PLUGINS, check_model_config
from ...nn.dofa import DOFAViT, load_dofa_weights
from ...nn.segmentor import Segmentor
from .weights import locate, read_state_dict
from .devices import pick_device
from .inference import TileModel

FROZEN_PARTS = {"backbone": "backbone.", "depth": "depth_model."}


def load_model_config(name_or_path: str) -> ModelConfig:
    """A zoo or file config, checked against the registries too (unknown names, a method that
    needs a depth model, query linking), so a bad config fails before anything is built."""
    cfg = load_config(name_or_path)
    check_model_config(cfg, str(name_or_path))
    return cfg


def _load_pretrained(vit: FrozenViT | DOFAViT, cfg: BackboneConfig) -> None:
    if cfg.weights == "random":
        return
    path, fmt = locate(get_spec(cfg.name), cfg.weights)
    if isinstance(vit, DOFAViT):
        load_dofa_weights(vit, read_state_dict(path))
    else:
        load_weights(vit, read_state_dict(path), fmt)


def build_model(cfg: ModelConfig, pretrained: bool = True) -> Segmentor:
    """A model with its frozen parts' pretrained weights loaded (unless ``pretrained=False``)."""
    model = Segmentor(cfg)
    if pretrained:
        _load_pretrained(model.backbone, cfg.backbone)
        if model.depth_model is not None and cfg.depth is not None:
            _load_pretrained(model.depth_model.encoder, cfg.depth)
    return model


def embedded_parts(cfg: ModelConfig) -> list[str]:
    """Parts a checkpoint must carry: trainable ones, plus frozen ones without a weight file."""
    parts = ["plugin", "head"]
    if cfg.backbone.weights == "random":
        parts.append("backbone")
    if cfg.depth is not None and cfg.depth.weights == "random" and \
            PLUGINS.get(cfg.plugin.method).needs_depth:
        parts.append("depth")
    return parts


def checkpoint_tensors(model: Segmentor, parts: list[str]) -> dict[str, torch.Tensor]:
    prefixes = tuple(FROZEN_PARTS.get(p, f"{p}.") for p in parts)
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}


def model_from_checkpoint(path: str | Path) -> tuple[Segmentor, CheckpointMeta]:
    """Rebuild a model from a checkpoint; frozen parts not embedded come from their weight files."""
    tensors, meta = load_checkpoint(path)
    cfg = meta.model
    check_model_config(cfg, str(path))
    parts = embedded_parts(cfg)
    if sorted(parts) != sorted(meta.contains):
        raise CheckpointError(f"checkpoint {path} holds {meta.contains}, its config needs {parts}")
    model = build_model(cfg, pretrained=False)
    expected = checkpoint_tensors(model, parts)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        detail = (missing and f"missing {missing[0]}") or (unexpected and f"unexpected {unexpected[0]}") \
            or f"{wrong[0]} has shape {tuple(tensors[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}"
        raise CheckpointError(f"checkpoint {path} does not fit its own architecture: {detail}")
    if "backbone" not in parts:
        _load_pretrained(model.backbone, cfg.backbone)
    if model.depth_model is not None and "depth" not in parts and cfg.depth is not None:
        _load_pretrained(model.depth_model.encoder, cfg.depth)
    model.load_state_dict(tensors, strict=False)
    model.eval()
    return model, meta


def save_model(path: str | Path, model: Segmentor, meta: CheckpointMeta) -> str:
    """Save a model's checkpoint parts with its metadata; return the content hash."""
    parts = embedded_parts(model.cfg)
    meta = meta.model_copy(update={"model": model.cfg, "contains": parts})
    return save_checkpoint(path, checkpoint_tensors(model, parts), meta)


def load_tile_model(checkpoint: Path, device: str, batch_size: int | None,
                    deterministic: bool | None, compile_model: bool = False,
                    tta: str = "none") -> TileModel:
    model, meta = model_from_checkpoint(checkpoint)
    dev = pick_device(device)
    if deterministic is None:
        deterministic = dev.type == "cpu"
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return TileModel(model, meta, dev, batch_size or (16 if dev.type == "cuda" else 2), deterministic,
                     compile_model, tta)
