"""Mask2Former's pixel decoder (mmdet ``MSDeformAttnPixelDecoder``).

The strides 8, 16 and 32 exchange information through a deformable-attention encoder (every
position attends to a few points on all three levels), then one FPN step adds the stride-4 map.
The encoder outputs feed the transformer decoder; the stride-4 map becomes the mask features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deform_attn import MultiScaleDeformableAttention
from .heads import group_norm
from .position import cell_centres, sine_encoding

NUM_LEVELS = 3


def _caffe2_xavier_(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class EncoderLayer(nn.Module):
    """Deformable self-attention then FFN, each with a residual and a post-LayerNorm."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, num_points: int) -> None:
        super().__init__()
        self.attn = MultiScaleDeformableAttention(dim, num_heads, NUM_LEVELS, num_points)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        for linear in (self.ffn[0], self.ffn[2]):
            nn.init.xavier_uniform_(linear.weight)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor,
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        x = self.norm1(x + self.attn(x + pos, x, shapes, reference))
        return self.norm2(x + self.ffn(x))


class PixelDecoder(nn.Module):
    def __init__(self, in_dim: int, channels: int, num_layers: int, num_heads: int, ffn_dim: int,
                 num_points: int) -> None:
        super().__init__()
        self.input_convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_dim, channels, 1), group_norm(channels))
            for _ in range(NUM_LEVELS))
        for conv in self.input_convs:
            nn.init.xavier_uniform_(conv[0].weight)
            nn.init.zeros_(conv[0].bias)
        self.level_embed = nn.Embedding(NUM_LEVELS, channels)
        self.layers = nn.ModuleList(EncoderLayer(channels, num_heads, ffn_dim, num_points)
                                    for _ in range(num_layers))
        self.lateral = nn.Sequential(_caffe2_xavier_(nn.Conv2d(in_dim, channels, 1, bias=False)),
                                     group_norm(channels))
        self.output = nn.Sequential(
            _caffe2_xavier_(nn.Conv2d(channels, channels, 3, padding=1, bias=False)),
            group_norm(channels), nn.ReLU(inplace=True))
        self.mask_features = _caffe2_xavier_(nn.Conv2d(channels, channels, 1))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Mask features at stride 4, and the encoded maps at strides 32, 16, 8 (coarse first).

        ``feats`` are the four scales at strides 4, 8, 16, 32.
        """
        maps = [conv(f) for conv, f in zip(self.input_convs, feats[:0:-1])]
        batch, channels = maps[0].shape[:2]
        device = maps[0].device
        shapes = [(m.shape[-2], m.shape[-1]) for m in maps]
        tokens = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)
        pos = torch.cat([sine_encoding(h, w, channels, device) + self.level_embed.weight[i]
                         for i, (h, w) in enumerate(shapes)]).to(tokens.dtype)
        reference = torch.cat([cell_centres(h, w, device) for h, w in shapes]).to(tokens.dtype)
        for layer in self.layers:
            tokens = layer(tokens, pos, reference, shapes)
        encoded = [t.transpose(1, 2).reshape(batch, channels, h, w)
                   for t, (h, w) in zip(tokens.split([h * w for h, w in shapes], dim=1), shapes)]
        fine = self.lateral(feats[0])
        fine = fine + F.interpolate(encoded[-1], size=fine.shape[-2:], mode="bilinear",
                                    align_corners=False)
        return self.mask_features(self.output(fine)), encoded
