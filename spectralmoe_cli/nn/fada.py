"""FADA (NeurIPS 2024): frequency-adapted tokens on a Haar wavelet split of the feature map.

After every frozen block l, the patch feature map [B, d, H, W] (padded by replication to even
sides) is split by the orthonormal 2-D Haar transform into LL (low frequency: content) and LH,
HL, HH (high frequency: style), each [B, d, H/2, W/2]. LL is refined by the low-frequency
REIN-style low-rank tokens; each high band is instance-normalised (per image and channel, over
positions: the style statistics removed) and refined by the high-frequency tokens. The inverse
Haar transform of the four refined bands is the residual update: f' = f + s·IDWT(...), s
learnable from 1e-3. Query linking uses the low-frequency tokens, as the authors' code does.
Parameters on ViT-L: 2 × (24·(100·16 + 16·1024) + 2·(1024² + 1024)) + 1 + 262,400 + 196,864 =
5,520,897.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import PluginConfig
from .plugin import Plugin, QueryLinker, register_plugin
from .token_branch import TokenBranch

EPS = 1e-5


def haar_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Orthonormal 2-D Haar analysis of [B, C, 2h, 2w]: LL, LH, HL, HH, each [B, C, h, w].

    With a, b the top-left/right and c, d the bottom-left/right pixels of a 2×2 block:
    LL = (a+b+c+d)/2, LH = (-a+b-c+d)/2 (horizontal change), HL = (-a-b+c+d)/2, HH = (a-b-c+d)/2.
    """
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, (-a + b - c + d) / 2, (-a - b + c + d) / 2, (a - b - c + d) / 2


def haar_merge(ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
    """The inverse (transpose) of ``haar_split``: four [B, C, h, w] bands -> [B, C, 2h, 2w]."""
    batch, channels, rows, cols = ll.shape
    out = ll.new_empty(batch, channels, 2 * rows, 2 * cols)
    out[..., 0::2, 0::2] = (ll - lh - hl + hh) / 2
    out[..., 0::2, 1::2] = (ll + lh - hl - hh) / 2
    out[..., 1::2, 0::2] = (ll - lh + hl - hh) / 2
    out[..., 1::2, 1::2] = (ll + lh + hl + hh) / 2
    return out


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) per image and channel over positions; [B, K, d] layout."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + EPS)


@register_plugin("fada", has_tokens=True)
class FADA(Plugin):
    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        return (f"low- and high-frequency tokens={cfg.num_tokens} rank={cfg.rank} each "
                f"query_linking={cfg.link_queries}")

    def __init__(self, cfg: PluginConfig, num_layers: int, dim: int) -> None:
        super().__init__()
        self.low = TokenBranch(num_layers, cfg.num_tokens, cfg.rank, dim)
        self.high = TokenBranch(num_layers, cfg.num_tokens, cfg.rank, dim)
        self.scale = torch.nn.Parameter(torch.tensor(cfg.scale_init))
        self.linker = QueryLinker(dim, cfg.query_dim) if cfg.link_queries else None

    def forward(self, layer: int, patches: torch.Tensor, depth: torch.Tensor | None,
                grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        assert grid is not None, "FADA needs the patch grid"
        batch, count, dim = patches.shape
        rows, cols = grid
        feature_map = patches.transpose(1, 2).reshape(batch, dim, rows, cols)
        feature_map = F.pad(feature_map, (0, cols % 2, 0, rows % 2), mode="replicate")
        bands = [band.flatten(2).transpose(1, 2) for band in haar_split(feature_map)]  # [B, K, d]
        refined = [self.low(layer, bands[0])]
        refined += [self.high(layer, instance_norm(band)) for band in bands[1:]]
        half = feature_map.shape[-2] // 2, feature_map.shape[-1] // 2
        update = haar_merge(*(band.transpose(1, 2).reshape(batch, dim, *half) for band in refined))
        update = update[..., :rows, :cols].flatten(2).transpose(1, 2)
        return patches + self.scale * update, patches.new_zeros((), dtype=torch.float32)

    def layer_tokens(self) -> torch.Tensor:
        return self.low.layer_tokens()

    def no_weight_decay(self) -> set[str]:
        return TokenBranch.no_weight_decay("low") | TokenBranch.no_weight_decay("high") | {"scale"}
