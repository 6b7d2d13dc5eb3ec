"""Decode heads over the four feature scales (strides 4, 8, 16, 32).

A head turns the scales (and, if it links queries, the plugin's queries) into its raw output,
``segmentation`` turns that output into per-class scores at a given size (argmax = class), and
``loss`` scores it against labels. The light head's output is already logits; Mask2Former's
(``mask2former.py``) is (classes, masks) per decoder layer, and its scores are
class-probability-weighted mask probabilities, not logits.

A head is one ``Head`` subclass decorated with ``@register_head(name, uses_queries=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HeadConfig
from ..labels import IGNORE_INDEX
from .registry import Registry


class Head(nn.Module):
    """The decode-head interface; built as ``cls(in_dim, num_classes, cfg, query_dim)``, where
    ``query_dim`` is the width of the plugin's queries, None when it offers none.

    The class attributes are set by ``register_head``.
    """

    type: ClassVar[str] = ""
    uses_queries: ClassVar[bool] = False  # takes the plugin's linked tokens as its queries

    @classmethod
    def summary(cls, cfg: HeadConfig, linked: bool) -> str:
        """What this head is made of beyond its channels, in one line (``spectralmoe info``);
        ``linked``: its queries are the plugin's tokens."""
        return ""

    def forward(self, feats: list[torch.Tensor], queries: torch.Tensor | None = None) -> Any:
        """The raw output for the four scales [B, d, H/s, W/s] (s = 4, 8, 16, 32)."""
        raise NotImplementedError

    def segmentation(self, output: Any, size: tuple[int, int]) -> torch.Tensor:
        """Per-class scores [B, K, *size] (argmax = class)."""
        raise NotImplementedError

    @staticmethod
    def to_probabilities(segmentation: torch.Tensor) -> torch.Tensor:
        """Class probabilities from ``segmentation``'s output."""
        raise NotImplementedError

    def loss(self, output: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named losses against labels [B, H, W] (255 ignored)."""
        raise NotImplementedError


HEADS: Registry[type[Head]] = Registry("head")
H = TypeVar("H", bound=type[Head])


def register_head(name: str, *, uses_queries: bool = False) -> Callable[[H], H]:
    """Register a Head subclass as ``head.type = name``, with its metadata."""
    def wrap(cls: H) -> H:
        if not issubclass(cls, Head):
            raise TypeError(f"{cls.__name__} is not a Head")
        cls.type, cls.uses_queries = name, uses_queries
        return HEADS.add(name, cls)
    return wrap


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 2 channels (GN(32) at 256 channels)."""
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels // g >= 2)
    return nn.GroupNorm(groups, channels)


@register_head("light")
class LightHead(Head):
    """A semantic-FPN head: lateral 1x1, top-down sum, 3x3 per level, summed at stride 4."""

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

