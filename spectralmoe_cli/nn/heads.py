"""Decode heads over the four feature scales (strides 4, 8, 16, 32).

A head turns the scales (and, if it links queries, the plugin's queries) into its raw output,
``segmentation`` turns that output into per-class scores at a given size (argmax = class), and
``loss`` scores it against labels. The light head's output is already logits; Mask2Former's
(``mask2former.py``, registered on import) is (classes, masks) per decoder layer, and its scores
are class-probability-weighted mask probabilities, not logits.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HeadConfig
from ..errors import ConfigError
from ..labels import IGNORE_INDEX


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 2 channels (GN(32) at 256 channels)."""
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels // g >= 2)
    return nn.GroupNorm(groups, channels)


class LightHead(nn.Module):
    """A semantic-FPN head: lateral 1x1, top-down sum, 3x3 per level, summed at stride 4."""

    uses_queries = False

    def __init__(self, in_dim: int, num_classes: int, cfg: HeadConfig, query_dim: int | None) -> None:
        super().__init__()
        c = cfg.channels
        self.lateral = nn.ModuleList(nn.Conv2d(in_dim, c, 1) for _ in range(4))
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), group_norm(c), nn.ReLU(inplace=True))
            for _ in range(4)
        )
        self.classifier = nn.Conv2d(c, num_classes, 1)

    def forward(self, feats: list[torch.Tensor], queries: torch.Tensor | None = None) -> torch.Tensor:
        levels = [lat(f) for lat, f in zip(self.lateral, feats)]
        for i in range(3, 0, -1):
            levels[i - 1] = levels[i - 1] + F.interpolate(
                levels[i], size=levels[i - 1].shape[-2:], mode="bilinear", align_corners=False)
        size = levels[0].shape[-2:]
        fused = sum(
            F.interpolate(conv(level), size=size, mode="bilinear", align_corners=False)
            for conv, level in zip(self.smooth, levels)
        )
        return self.classifier(fused)

    def segmentation(self, output: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(output, size=size, mode="bilinear", align_corners=False)

    @staticmethod
    def to_probabilities(segmentation: torch.Tensor) -> torch.Tensor:
        """Class probabilities from ``segmentation``'s output (logits here)."""
        return torch.softmax(segmentation, dim=1)

    def loss(self, output: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.segmentation(output, labels.shape[-2:])
        return {"loss_seg": F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE_INDEX)}


HEADS: dict[str, type] = {"light": LightHead}


def build_head(cfg: HeadConfig, in_dim: int, num_classes: int, query_dim: int | None) -> nn.Module:
    """The configured head; ``query_dim`` is the width of the plugin's queries, None if it has none."""
    if cfg.type not in HEADS:
        raise ConfigError(f"head {cfg.type!r} is not available; known: {', '.join(HEADS)}")
    return HEADS[cfg.type](in_dim, num_classes, cfg, query_dim)
