"""CLIP, EVA02 and SAM backbones: timm-layout weights load strictly; SAM-H's wider tokens take
projected depth tokens. Tiny random shapes; the key names are the real timm ones."""

from __future__ import annotations

import pytest
import timm
import torch

from spectralmoe_cli.config import parse_config
from spectralmoe_cli.errors import WeightsError
from spectralmoe_cli.nn.backbones import FrozenViT, get_spec, load_weights
from spectralmoe_cli.nn.segmentor import Segmentor
from spectralmoe_cli.nn.vfm_timm import SamViT

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}


def _timm_state(name: str, **extra) -> dict:
    """A state dict as timm's pretrained copy holds it (patch 14 where the model has it)."""
    return timm.create_model(get_spec(name).timm_name, pretrained=False, **TINY, **extra).state_dict()


@pytest.mark.parametrize("name", ["clip_vitl14", "eva02_vitl14"])
def test_timm_copies_load_strictly_with_patch_14_resampled_to_16(name):
    vit = FrozenViT(get_spec(name), patch_size=16, img_size=64, **TINY)
    state = _timm_state(name, num_classes=24)  # CLIP's copies carry a projection head: not the encoder
    load_weights(vit, state, "timm")
    key = next(k for k in vit.vit.state_dict() if k.startswith("blocks.1.") and k.endswith("weight"))
    assert torch.equal(vit.vit.state_dict()[key], state[key])
    with torch.no_grad():
        out = vit.forward_all(torch.randn(1, 3, 64, 64))
    assert out[-1].shape == (1, vit.num_prefix_tokens + 16, 32)
    bad = {k: v for k, v in state.items() if not k.startswith("blocks.1.norm1")}
    with pytest.raises(WeightsError, match=r"missing key\(s\) blocks\.1\.norm1"):
        load_weights(vit, bad, "timm")


def test_sam_loads_strictly_and_keeps_its_token_grid():
    vit = SamViT(get_spec("sam_vith16"), **TINY)
    state = _timm_state("sam_vith16", img_size=1024)
    load_weights(vit, state, "timm")
    tokens, grid = vit.prepare(torch.randn(1, 3, 64, 64))
    assert grid == (4, 4) and tokens.shape == (1, 16, 32)
    with pytest.raises(WeightsError, match="blocks.0.attn.rel_pos_h has shape"):
        load_weights(vit, {**state, "blocks.0.attn.rel_pos_h": torch.zeros(7, 16)}, "timm")


def test_a_wider_vfm_projects_depth_tokens_in_a_trainable_plugin_linear():
    cfg = parse_config({
        "name": "sam_tiny", "backbone": {"name": "sam_vith16", "weights": "random", **TINY, "depth": 4},
        "depth": {"name": "dinov2_vits14", "weights": "random", "embed_dim": 24, "depth": 2, "num_heads": 2},
        "plugin": {"method": "spectralmoe", "num_experts": 2, "num_tokens": 8, "rank": 2, "query_dim": 16},
        "head": {"channels": 16}, "data": {"bands": ["red", "green", "blue"], "num_classes": 3}}, "test")
    model = Segmentor(cfg)
    projection = model.plugin.depth_projection
    assert (projection.in_features, projection.out_features) == (24, 32)
    assert model.depth_layers == [0, 0, 1, 1]
    assert model.trainable_parameters()["plugin"] == sum(p.numel() for p in model.plugin.parameters())
    with torch.no_grad():  # off the zero init (B = 0, gates = 0), where depth gets no gradient yet
        for parameter in model.plugin.parameters():
            parameter.normal_(0, 0.1)
    logits, _ = model(torch.randn(1, 3, 64, 64))
    logits.sum().backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
