"""Tiny random state dicts written with the official key layouts, enumerated by hand.

These are independent of the loaders' renaming tables on purpose: they spell out the names the
official repositories use, so a wrong mapping fails the tests instead of agreeing with itself.
"""

from __future__ import annotations

import torch

DIM, DEPTH, HEADS = 32, 2, 2


def _block(prefix: str, dim: int, g: torch.Generator, ls: str = "ls{}.gamma") -> dict:
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    out = {
        f"{prefix}norm1.weight": r(dim), f"{prefix}norm1.bias": r(dim),
        f"{prefix}attn.qkv.weight": r(3 * dim, dim), f"{prefix}attn.qkv.bias": r(3 * dim),
        f"{prefix}attn.proj.weight": r(dim, dim), f"{prefix}attn.proj.bias": r(dim),
        f"{prefix}{ls.format(1)}": r(dim),
        f"{prefix}norm2.weight": r(dim), f"{prefix}norm2.bias": r(dim),
        f"{prefix}mlp.fc1.weight": r(4 * dim, dim), f"{prefix}mlp.fc1.bias": r(4 * dim),
        f"{prefix}mlp.fc2.weight": r(dim, 4 * dim), f"{prefix}mlp.fc2.bias": r(dim),
        f"{prefix}{ls.format(2)}": r(dim),
    }
    return out


def dinov2_state(dim: int = DIM, depth: int = DEPTH, grid: int = 37, registers: int = 0,
                 seed: int = 0) -> dict:
    """``dinov2_vit*14_pretrain.pth`` layout (Meta's dinov2 repo)."""
    g = torch.Generator().manual_seed(seed)
    state = {
        "cls_token": torch.randn(1, 1, dim, generator=g),
        "pos_embed": torch.randn(1, 1 + grid * grid, dim, generator=g),
        "mask_token": torch.randn(1, dim, generator=g),
        "patch_embed.proj.weight": torch.randn(dim, 3, 14, 14, generator=g),
        "patch_embed.proj.bias": torch.randn(dim, generator=g),
        "norm.weight": torch.randn(dim, generator=g),
        "norm.bias": torch.randn(dim, generator=g),
    }
    if registers:
        state["register_tokens"] = torch.randn(1, registers, dim, generator=g)
    for i in range(depth):
        state.update(_block(f"blocks.{i}.", dim, g))
    return state


def dinov3_state(dim: int = DIM, depth: int = DEPTH, heads: int = HEADS, zero_qkv_bias: bool = True,
                 seed: int = 0) -> dict:
    """``dinov3_vit*16_pretrain_*.pth`` layout (Meta's dinov3 repo)."""
    g = torch.Generator().manual_seed(seed)
    state = {
        "cls_token": torch.randn(1, 1, dim, generator=g),
        "storage_tokens": torch.randn(1, 4, dim, generator=g),
        "mask_token": torch.randn(1, dim, generator=g),
        "rope_embed.periods": torch.rand(dim // heads // 4, generator=g),
        "patch_embed.proj.weight": torch.randn(dim, 3, 16, 16, generator=g),
        "patch_embed.proj.bias": torch.randn(dim, generator=g),
        "norm.weight": torch.randn(dim, generator=g),
        "norm.bias": torch.randn(dim, generator=g),
    }
    for i in range(depth):
        state.update(_block(f"blocks.{i}.", dim, g))
        if zero_qkv_bias:
            state[f"blocks.{i}.attn.qkv.bias"] = torch.zeros(3 * dim)
        state[f"blocks.{i}.attn.qkv.bias_mask"] = torch.cat(
            [torch.ones(dim), torch.zeros(dim), torch.ones(dim)])
    return state


def depth_anything_v2_state(dim: int = DIM, depth: int = DEPTH, seed: int = 0) -> dict:
    """``depth_anything_v2_vit*.pth``: the DINOv2 encoder under ``pretrained.`` plus a DPT head."""
    state = {f"pretrained.{k}": v for k, v in dinov2_state(dim, depth, seed=seed).items()}
    state["depth_head.projects.0.weight"] = torch.randn(8, dim, 1, 1)
    state["depth_head.scratch.output_conv2.2.bias"] = torch.randn(1)
    return state


def promptda_checkpoint(dim: int = DIM, depth: int = DEPTH, seed: int = 0) -> dict:
    """PromptDA ``model.ckpt``: a Lightning checkpoint, keys under ``pipeline.``."""
    inner = depth_anything_v2_state(dim, depth, seed)
    inner["depth_head.prompt_fusion.0.weight"] = torch.randn(4, 1, 3, 3)
    return {
        "epoch": 12,
        "global_step": 3400,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": {f"pipeline.{k}": v for k, v in inner.items()},
    }
