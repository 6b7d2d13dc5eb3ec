"""Frozen visual model + frozen depth model + plugin + head -> per-class logits.

Input: a normalised tensor [B, C, H, W] whose C bands are the config's bands in order. The depth
model reads the red, green and blue bands (by name, else nearest 665/560/490 nm). Patch tokens are refined after every
block; four of them (at 1/3, 1/2, 2/3 and all of the depth) become the stride 4/8/16/32 scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import bands as band_registry
from ..config import ModelConfig
from ..errors import ConfigError
from .dofa import DOFAViT
from .vfm_timm import SamViT
from .backbones import DepthEncoder, FrozenViT, get_spec
from .catalog import HEADS, build_head, build_plugin, check_model_config

STRIDES = (4, 8, 16, 32)


def feature_layers(depth: int) -> list[int]:
    """Block indices of the four scales: (7, 11, 15, 23) for a 24-block ViT, as the paper."""
    return [max(depth // 3 - 1, 0), max(depth // 2 - 1, 0), max(2 * depth // 3 - 1, 0), depth - 1]


def _build_vit(cfg, bands: list[band_registry.Band]) -> FrozenViT | DOFAViT:
    spec = get_spec(cfg.name)
    if spec.family == "dofa":  # kernels generated from the bands' wavelengths
        return DOFAViT(spec, [b.wavelength for b in bands], patch_size=cfg.patch_size,
                       embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads)
    vit_class = SamViT if spec.family == "sam" else FrozenViT
    return vit_class(spec, in_chans=len(bands), patch_size=cfg.patch_size,
                     embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads)


class Segmentor(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        check_model_config(cfg)
        self.cfg = cfg
        model_bands = band_registry.resolve_all(cfg.data.bands)
        self.in_chans = len(model_bands)
        self.num_classes = cfg.data.num_classes
        self.backbone = _build_vit(cfg.backbone, model_bands)
        # query linking only where a head takes queries: otherwise its layers would never train
        plugin_cfg = cfg.plugin if HEADS.get(cfg.head.type).uses_queries else \
            cfg.plugin.model_copy(update={"link_queries": False})
        self.plugin = build_plugin(plugin_cfg, self.backbone.depth, self.backbone.embed_dim)
        self.depth_model: DepthEncoder | None = None
        self.rgb_bands: list[str] = []
        if self.plugin.needs_depth:
            assert cfg.depth is not None
            self.depth_model = DepthEncoder(
                get_spec(cfg.depth.name), patch_size=cfg.depth.patch_size, embed_dim=cfg.depth.embed_dim,
                depth=cfg.depth.depth, num_heads=cfg.depth.num_heads)
            if self.depth_model.depth > self.backbone.depth:
                raise ConfigError(
                    f"depth model {cfg.depth.name} ({self.depth_model.depth} blocks) does not pair "
                    f"with backbone {cfg.backbone.name} ({self.backbone.depth} blocks): it is deeper, "
                    f"and each backbone layer takes one depth layer")
            if self.depth_model.embed_dim != self.backbone.embed_dim:
                # a wider VFM (SAM-H 1280 vs ViT-L 1024): a trainable projection, part of the plugin
                self.plugin.depth_projection = nn.Linear(self.depth_model.embed_dim, self.backbone.embed_dim)
            # backbone layer l reads depth layer ceil((l+1)·D_depth/D_vfm)-1: the last reads the last
            self.depth_layers = [-(-(layer + 1) * self.depth_model.depth // self.backbone.depth) - 1
                                 for layer in range(self.backbone.depth)]
            rgb = band_registry.rgb_indices(model_bands)
            self.rgb_bands = [model_bands[i].name for i in rgb]
            self.register_buffer("rgb_index", torch.tensor(rgb), persistent=False)
        self.plugin.attach(self.backbone)
        self.layers = feature_layers(self.backbone.depth)
        query_dim = cfg.plugin.query_dim if self.plugin.links_queries else None
        self.head = build_head(cfg.head, self.backbone.embed_dim, self.num_classes, query_dim)

    def _depth_tokens(self, x: torch.Tensor) -> list[torch.Tensor] | None:
        if self.depth_model is None:
            return None
        return self.depth_model(x.index_select(1, self.rgb_index))

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The four scales [B, d, H/s, W/s] and the plugin's auxiliary loss (mean over layers)."""
        height, width = x.shape[-2:]
        grid = self.backbone.grid(height, width)
        depth_tokens = self._depth_tokens(x)
        depth_prefix = self.depth_model.encoder.num_prefix_tokens if self.depth_model else 0
        vit = self.backbone
        frozen_only = not any(p.requires_grad for p in self.plugin.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen_only):
            tokens, rope = vit.prepare(x)
            prefix = vit.num_prefix_tokens
            maps: dict[int, torch.Tensor] = {}
            aux = x.new_zeros((), dtype=torch.float32)
            for layer in range(vit.depth):
                tokens = vit.block(layer, tokens, rope, self.plugin.prompts(layer, x.shape[0]))
                depth = None
                if depth_tokens is not None:
                    depth = depth_tokens[self.depth_layers[layer]][:, depth_prefix:].to(tokens.dtype)
                    projection = getattr(self.plugin, "depth_projection", None)
                    if projection is not None:
                        depth = projection(depth)
                patches, loss = self.plugin(layer, tokens[:, prefix:], depth, grid)
                tokens = torch.cat([tokens[:, :prefix], patches], dim=1)
                aux = aux + loss
                if layer in self.layers:
                    maps[layer] = patches.transpose(1, 2).reshape(x.shape[0], -1, *grid)
        feats = [
            F.interpolate(maps[layer], size=(max(height // s, 1), max(width // s, 1)),
                          mode="bilinear", align_corners=False)
            for layer, s in zip(self.layers, STRIDES)
        ]
        return feats, aux / vit.depth

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        p = self.backbone.patch_size
        pad_h, pad_w = (-x.shape[-2]) % p, (-x.shape[-1]) % p
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def head_output(self, x: torch.Tensor):
        feats, aux = self.features(self._pad(x))
        queries = self.plugin.queries() if self.head.uses_queries else None
        return self.head(feats, queries), aux

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, K, H, W] at the input's resolution, and the auxiliary loss."""
        if x.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} bands, got {x.shape[1]}")
        height, width = x.shape[-2:]
        output, aux = self.head_output(x)
        padded = self._pad(x).shape[-2:]
        logits = self.head.segmentation(output, padded)
        return logits[..., :height, :width], aux

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training losses: the head's, plus the plugin's balancing loss as ``loss_aux``."""
        padded = self._pad(x)
        output, aux = self.head_output(x)
        labels = F.pad(labels, (0, padded.shape[-1] - labels.shape[-1],
                                0, padded.shape[-2] - labels.shape[-2]), value=255)
        losses = self.head.loss(output, labels)
        losses["loss_aux"] = aux
        return losses

    def trainable_parameters(self) -> dict[str, int]:
        """Trainable parameter counts by part."""
        return {
            "plugin": sum(p.numel() for p in self.plugin.parameters() if p.requires_grad),
            "head": sum(p.numel() for p in self.head.parameters() if p.requires_grad),
        }

    def frozen_parameters(self) -> dict[str, int]:
        out = {"backbone": sum(p.numel() for p in self.backbone.parameters())}
        if self.depth_model is not None:
            out["depth"] = sum(p.numel() for p in self.depth_model.parameters())
        return out
