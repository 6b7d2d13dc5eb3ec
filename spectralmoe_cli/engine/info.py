"""What ``spectralmoe info`` reports: architecture, parameter counts by part, bands, classes."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..config import HeadConfig, ModelConfig, PluginConfig
from ..errors import UsageError
from ..nn.backbones import get_spec
from ..nn.catalog import HEADS, PLUGINS, check_model_config
from ..nn.segmentor import Segmentor
from ..text import shown
from .labelled.classes import ClassSpec
from .runtime.models import load_model_config


def describe(model: str | None = None, checkpoint: str | Path | None = None) -> dict:
    """A JSON-ready description; the model is built on the meta device (no memory, no weights)."""
    if model and checkpoint:
        raise UsageError("give --model or --checkpoint, not both")
    meta = None
    if checkpoint is not None:
        _, meta = load_checkpoint(checkpoint)
        cfg: ModelConfig = meta.model
        check_model_config(cfg, str(checkpoint))
    else:
        cfg = load_model_config(model or "spectralmoe_dinov3_vitl16")
    with torch.device("meta"):
        net = Segmentor(cfg)
    trainable = net.trainable_parameters()
    frozen = net.frozen_parameters()
    spec = get_spec(cfg.backbone.name)
    report = {
        "model": cfg.name,
        "description": cfg.description,
        "backbone": {
            "name": cfg.backbone.name, "timm": spec.timm_name, "blocks": net.backbone.depth,
            "embed_dim": net.backbone.embed_dim, "patch_size": net.backbone.patch_size,
            "weights": cfg.backbone.weights,
        },
        "depth_model": None if net.depth_model is None else {
            "name": cfg.depth.name, "blocks": net.depth_model.depth,
            "embed_dim": net.depth_model.embed_dim, "weights": cfg.depth.weights,
            "rgb_bands": net.rgb_bands,
        },
        "plugin": cfg.plugin.model_dump(),
        "head": cfg.head.model_dump(),
        "feature_layers": net.layers,
        "parameters": {
            "trainable": {**trainable, "total": sum(trainable.values())},
            "frozen": {**frozen, "total": sum(frozen.values())},
        },
        "bands": list(cfg.data.bands),
        "classes": None,
    }
    if meta is not None:
        report["classes"] = [c.model_dump() for c in meta.classes]
        report["bands"] = [b.model_dump() for b in meta.bands]
        report["normalization"] = {"mean": meta.mean, "std": meta.std}
        report["tile"] = meta.tile.model_dump()
        report["label_values"] = _renumbering(meta.provenance.get("labels"))
        report["checkpoint"] = {"path": str(checkpoint), "content_hash": meta.content_hash,
                                "contains": meta.contains, "provenance": meta.provenance}
    return report


def _renumbering(labels: object) -> str | None:
    """How training turned stored label values into class numbers (provenance ``labels``)."""
    try:
        return ClassSpec.from_json(labels, "checkpoint").renumbering()  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):  # an older or hand-made checkpoint: not recorded
        return None


def render(report: dict) -> str:
    """The human-readable form of ``describe``'s report."""
    p = report["parameters"]
    b = report["backbone"]
    lines = [
        f"model        {report['model']}",
        f"             {report['description']}",
        f"backbone     {b['name']} (timm {b['timm']}), {b['blocks']} blocks, {b['embed_dim']}-d, "
        f"patch {b['patch_size']}, weights: {b['weights']}",
    ]
    if report["depth_model"]:
        d = report["depth_model"]
        lines.append(f"depth model  {d['name']}, {d['blocks']} blocks, {d['embed_dim']}-d, weights: {d['weights']}, "
                     f"R,G,B from {','.join(d['rgb_bands'])}")
    plug = report["plugin"]
    method = PLUGINS.get(plug["method"])
    detail = method.summary(PluginConfig.model_validate(plug))
    lines.append(f"plugin       {plug['method']}: {detail}" if detail else f"plugin       {plug['method']}")
    head = report["head"]
    layers = ", ".join(str(i + 1) for i in report["feature_layers"])
    lines.append(f"head         {head['type']} ({head['channels']} channels), features from blocks {layers}")
    head_class = HEADS.get(head["type"])
    linked = head_class.uses_queries and method.has_tokens and plug["link_queries"]
    if detail := head_class.summary(HeadConfig.model_validate(head), linked):
        lines.append(f"             {detail}")
    lines.append("parameters")
    for kind in ("trainable", "frozen"):
        for part, count in p[kind].items():
            lines.append(f"  {kind:<10} {part:<9} {count:>13,}")
    bands = report["bands"]
    names = [x["name"] if isinstance(x, dict) else x for x in bands]
    lines.append(f"bands        {', '.join(names)}")
    if report["classes"]:
        lines.append("classes      " + ", ".join(f"{c['value']}={c['name']}" for c in report["classes"]))
    if report.get("label_values"):
        lines.append(f"labels       stored value -> class: {report['label_values']}")
    if "checkpoint" in report:
        lines.append(f"checkpoint   {report['checkpoint']['content_hash']}")
    return "\n".join(shown(line) for line in lines)  # names from a checkpoint: no forged lines
