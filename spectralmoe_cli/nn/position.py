"""Positions of a feature grid: DETR's normalised sine encoding and normalised cell centres.

Tiles are never padded inside the head, so both depend on the grid size alone.
"""

from __future__ import annotations

import math

import torch

TEMPERATURE = 10000.0
EPS = 1e-6


def _sine(count: int, features: int, device: torch.device) -> torch.Tensor:
    """[count, features]: interleaved sin/cos of the positions 1..count scaled to (0, 2π]."""
    pos = torch.arange(1, count + 1, dtype=torch.float32, device=device)
    pos = pos / (count + EPS) * (2.0 * math.pi)
    index = torch.arange(features, device=device)
    dim_t = TEMPERATURE ** (2 * torch.div(index, 2, rounding_mode="floor") / features)
    angles = pos[:, None] / dim_t
    return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=-1).flatten(1)


def sine_encoding(height: int, width: int, channels: int, device: torch.device) -> torch.Tensor:
    """[height * width, channels] in row-major order: y encoding first, then x (as mmdet)."""
    half = channels // 2
    ys = _sine(height, half, device)[:, None, :].expand(height, width, half)
    xs = _sine(width, half, device)[None, :, :].expand(height, width, half)
    return torch.cat([ys, xs], dim=-1).reshape(height * width, channels)


def cell_centres(height: int, width: int, device: torch.device) -> torch.Tensor:
    """[height * width, 2] (x, y) in [0, 1], row-major: the deformable encoder's reference points."""
    ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)
