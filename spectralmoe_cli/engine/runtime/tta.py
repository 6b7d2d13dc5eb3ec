"""Test-time augmentation: a tile's class probabilities averaged over flips or the D4 group.

Each transform is a rotation by k quarter turns after an optional left-right flip; its
probabilities are turned back onto the tile before they are summed, always in the same order,
so the average is deterministic and (being per tile) independent of the chunk a tile lands in.
``flip`` = identity, left-right and up-down (3 passes); ``d4`` = all 8 rotations and reflections.
"""

from __future__ import annotations

from typing import Callable

import torch

TTAS = ("none", "flip", "d4")
_TRANSFORMS: dict[str, tuple[tuple[int, bool], ...]] = {
    "none": ((0, False),),
    "flip": ((0, False), (0, True), (2, True)),  # up-down = half turn after a left-right flip
    "d4": tuple((k, flip) for flip in (False, True) for k in range(4)),
}


def passes(mode: str) -> int:
    """Model passes per tile."""
    return len(_TRANSFORMS[mode])


def _apply(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def _invert(p: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if k:
        p = torch.rot90(p, -k, dims=(-2, -1))
    return p.flip(-1) if flip else p


def averaged(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str) -> torch.Tensor:
    """``run`` (tiles [n, C, T, T] -> probabilities [n, K, T, T]) averaged over ``mode``."""
    transforms = _TRANSFORMS[mode]
    if len(transforms) == 1:
        return run(x)
    total = None
    for k, flip in transforms:
        p = _invert(run(_apply(x, k, flip)), k, flip)
        total = p if total is None else total + p
    return total / len(transforms)
