"""The paper's other frozen VFMs through timm: CLIP ViT-L/14, EVA02-L/14 and SAM ViT-H/16.

CLIP (OpenAI image tower, pre-norm) and EVA02 (RoPE, SwiGLU) run through ``FrozenViT`` as they
are: patch 14 kernels are resampled to 16 on load, as DINOv2's. SAM's image encoder keeps its
tokens as a [B, H, W, C] grid (windowed attention, relative positions, no cls token), so
``SamViT`` flattens them between blocks; it runs at its native 1024 px position grid, resampled
to the input's grid at run time. Weights load strictly from timm's copies on Hugging Face.
"""

from __future__ import annotations

from collections.abc import Iterator

import timm
import torch
from timm.layers import resample_abs_pos_embed_nhwc

from ..errors import ConfigError
from .backbones import BackboneSpec, FrozenViT, register_backbone

_HF = "https://huggingface.co/{repo}"


@register_backbone
def timm_vfm_family() -> Iterator[BackboneSpec]:
    """The paper's other VFMs, as timm builds and stores them: CLIP ViT-L/14, EVA02-L/14, SAM ViT-H/16."""
    for name, family, timm_name, dim, depth, heads, tag in (
        ("clip_vitl14", "clip", "vit_large_patch14_clip_224", 1024, 24, 16, "openai"),
        ("eva02_vitl14", "eva02", "eva02_large_patch14_224", 1024, 24, 16, "mim_m38m"),
        ("sam_vith16", "sam", "samvit_huge_patch16", 1280, 32, 16, "sa1b"),
    ):
        repo = f"timm/{timm_name}.{tag}"
        yield BackboneSpec(
            name=name, family=family, timm_name=timm_name, embed_dim=dim, depth=depth, num_heads=heads,
            weight_format="timm", filename=f"{timm_name}.{tag}.safetensors", url=_HF.format(repo=repo),
            hf_repo=repo, hf_filename="model.safetensors", hf_format="timm")

SAM_IMG_SIZE = 1024


class SamViT(FrozenViT):
    """SAM's image encoder (no neck use) with FrozenViT's token interface: [B, N, C] between
    blocks; the grid travels in place of a RoPE table."""

    def __init__(self, spec: BackboneSpec, in_chans: int = 3, patch_size: int = 16,
                 embed_dim: int | None = None, depth: int | None = None,
                 num_heads: int | None = None, img_size: int = SAM_IMG_SIZE) -> None:
        torch.nn.Module.__init__(self)
        overrides = {k: v for k, v in
                     {"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads}.items()
                     if v is not None}
        self.spec = spec if not overrides else type(spec)(**{**spec.__dict__, **overrides})
        self.is_rope = False
        self.vit = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, in_chans=in_chans,
                                     patch_size=patch_size, img_size=SAM_IMG_SIZE, **overrides)
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = self.vit.embed_dim if hasattr(self.vit, "embed_dim") else self.spec.embed_dim
        self.depth = len(self.vit.blocks)
        self.num_prefix_tokens = 0
        self.vit.requires_grad_(False)
        self.vit.eval()

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        vit = self.vit
        grid = vit.patch_embed(x)
        if vit.pos_embed is not None:
            grid = grid + resample_abs_pos_embed_nhwc(vit.pos_embed, grid.shape[1:3])
        grid = vit.norm_pre(vit.patch_drop(vit.pos_drop(grid)))
        return grid.flatten(1, 2), (grid.shape[1], grid.shape[2])

    def block(self, index: int, tokens: torch.Tensor, rope,
              prompts: torch.Tensor | None = None) -> torch.Tensor:
        if prompts is not None:
            raise ConfigError("VPT prompts need a token-sequence ViT; SAM's windowed blocks take a "
                              "grid of patches only")
        height, width = rope
        out = self.vit.blocks[index](tokens.unflatten(1, (height, width)))
        return out.flatten(1, 2)
