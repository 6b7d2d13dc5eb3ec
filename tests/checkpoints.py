"""Tiny real checkpoints for tests, written with the project's own save path."""

from __future__ import annotations

from pathlib import Path

import torch

from spectralmoe_cli.checkpoint import BandInfo, CheckpointMeta, ClassInfo, TileDefaults
from spectralmoe_cli.config import load_config
from spectralmoe_cli.engine.runtime.models import build_model, save_model

RGBN = ["red", "green", "blue", "nir"]
COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b"]


def make_checkpoint(path: Path, bands: list[str] = RGBN, num_classes: int = 3,
                    model: str = "spectralmoe_tiny", seed: int = 0, constant_class: int | None = None,
                    mean: float = 100.0, std: float = 50.0, tile: int = 64, overlap: int = 16,
                    class_names: list[str] | None = None) -> Path:
    """A random tiny model; with ``constant_class`` its head always predicts that class."""
    torch.manual_seed(seed)
    net = build_model(load_config(model).with_data(bands, num_classes))
    torch.nn.init.normal_(net.plugin.experts_b, std=0.05) if hasattr(net.plugin, "experts_b") else None
    classifier = getattr(net.head, "classifier", None)
    if classifier is not None and constant_class is None:
        torch.nn.init.normal_(classifier.weight, std=0.5)  # logits that follow the input: varied maps
    if constant_class is not None:
        torch.nn.init.zeros_(net.head.classifier.weight)
        with torch.no_grad():
            net.head.classifier.bias.copy_(torch.arange(num_classes) == constant_class)
    meta = CheckpointMeta(
        model=net.cfg, bands=[BandInfo(name=b) for b in bands], mean=[mean] * len(bands),
        std=[std] * len(bands),
        classes=[ClassInfo(value=i, name=(class_names or [])[i] if class_names else f"class{i}",
                           color=COLORS[i % len(COLORS)]) for i in range(num_classes)],
        tile=TileDefaults(size=tile, overlap=overlap), contains=[],
        provenance={"note": "random tiny model written by the tests"},
    )
    save_model(path, net, meta)
    return path


def reflectance_checkpoint(folder: Path, bands: list[str], **options) -> Path:
    """``folder/s2.safetensors`` for the served Sentinel-2 worlds: reflectance there is ~0..0.8,
    so the inputs are normalised around it and the random model draws regions, not one class."""
    return make_checkpoint(folder / "s2.safetensors", bands=bands, mean=0.4, std=0.25, **options)
