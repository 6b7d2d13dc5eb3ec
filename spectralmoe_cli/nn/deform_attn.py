"""Multi-scale deformable attention (Deformable DETR), written in plain torch.

Each query reads a few learned points around its reference point on every level instead of every
position, so the cost grows linearly with the number of positions. Points are read with bilinear
``F.grid_sample``: no compiled kernel, so it runs wherever torch runs (CPU included).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _ring_offsets(num_heads: int, num_levels: int, num_points: int) -> torch.Tensor:
    """Initial offsets: head h looks along its own direction, point p at distance p + 1 (in cells).

    Directions are spread evenly over the circle and scaled so the larger coordinate is 1, so the
    first point of every head lands on a neighbouring cell.
    """
    angles = torch.arange(num_heads, dtype=torch.float32) * (2.0 * math.pi / num_heads)
    directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
    directions = directions / directions.abs().amax(dim=-1, keepdim=True)
    distance = torch.arange(1, num_points + 1, dtype=torch.float32)
    offsets = directions[:, None, None, :] * distance[None, None, :, None]
    return offsets.expand(num_heads, num_levels, num_points, 2)


class MultiScaleDeformableAttention(nn.Module):
    """Queries attend to ``num_points`` sampled positions per head and level; residual excluded."""

    def __init__(self, dim: int, num_heads: int, num_levels: int, num_points: int) -> None:
        super().__init__()
        self.num_heads, self.num_levels, self.num_points = num_heads, num_levels, num_points
        samples = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(dim, samples * 2)
        self.attention_weights = nn.Linear(dim, samples)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        with torch.no_grad():
            nn.init.zeros_(self.sampling_offsets.weight)
            self.sampling_offsets.bias.copy_(
                _ring_offsets(num_heads, num_levels, num_points).reshape(-1))
            nn.init.zeros_(self.attention_weights.weight)
            nn.init.zeros_(self.attention_weights.bias)
            for proj in (self.value_proj, self.output_proj):
                nn.init.xavier_uniform_(proj.weight)
                nn.init.zeros_(proj.bias)

    def forward(self, query: torch.Tensor, value: torch.Tensor,
                shapes: list[tuple[int, int]], reference: torch.Tensor) -> torch.Tensor:
        """Attend from ``query`` [B, Nq, C] to ``value`` [B, sum(H_l W_l), C].

        ``shapes`` are the levels' (H_l, W_l) in the order they are concatenated in ``value``;
        ``reference`` [Nq, 2] holds each query's (x, y) in [0, 1], the same point on every level.
        """
        batch, count, dim = query.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        head_dim = dim // heads
        values = self.value_proj(value).split([h * w for h, w in shapes], dim=1)
        offsets = self.sampling_offsets(query).view(batch, count, heads, levels, points, 2)
        weights = self.attention_weights(query).view(batch, count, heads, levels * points)
        weights = weights.softmax(dim=-1).permute(0, 2, 1, 3).reshape(batch * heads, 1, count, -1)
        cells = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype, device=query.device)
        locations = reference[None, :, None, None, None, :] + offsets / cells[:, None, :]
        grids = (2.0 * locations - 1.0).permute(0, 2, 1, 3, 4, 5)  # [B, heads, Nq, L, P, 2]
        sampled = []
        for level, (height, width) in enumerate(shapes):
            level_value = values[level].reshape(batch, height * width, heads, head_dim)
            level_value = level_value.permute(0, 2, 3, 1).reshape(batch * heads, head_dim, height, width)
            grid = grids[:, :, :, level].reshape(batch * heads, count, points, 2)
            sampled.append(F.grid_sample(level_value, grid, mode="bilinear", padding_mode="zeros",
                                         align_corners=False))
        mixed = (torch.cat(sampled, dim=-1) * weights).sum(dim=-1)  # [B*heads, head_dim, Nq]
        return self.output_proj(mixed.reshape(batch, dim, count).transpose(1, 2))
