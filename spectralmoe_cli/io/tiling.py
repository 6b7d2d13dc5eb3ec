"""The global tile grid, the processing chunks that own its tiles, and the blending weights.

Tiles of size T start at multiples of the stride S = T - overlap from the scene origin; the last
row and column are anchored at the scene edge, so every pixel is covered. On an axis shorter than
T the tile is that axis rounded up to the model's patch size (one tile spans it, so a 20000x5
strip gets 16x512 tiles, not 512x512 ones that are 99% padding): tiles are tile_h x tile_w, and
the stride only matters on an axis with more than one tile, where the tile is T. Chunks are
squares of a multiple of S; a chunk owns the tiles whose
origin lies inside it, so no tile is ever computed twice. Blending accumulates w·p in fixed point
(integers), which makes the sum independent of the order tiles arrive in: the map is bit-identical
for any chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

FIXED_ONE = 1 << 22  # fixed-point unit: up to 511 tiles of weight 1 on one pixel fit in int32
WEIGHT_FLOOR = 1e-3  # no valid pixel covered by a tile ever gets weight zero
CENTER_FLOOR = 1e-6  # center crop: a margin pixel defers to the neighbouring core
BLENDS = ("hann", "linear", "none", "center")


def axis_origins(size: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis: 0, S, 2S, ... and one anchored at the edge."""
    if size <= tile:
        return [0]
    origins = list(range(0, size - tile, stride))
    origins.append(size - tile)
    return origins


def axis_tile(size: int, tile: int, patch: int) -> int:
    """The tile along one axis: ``tile``, or the axis rounded up to ``patch`` where that is less."""
    return min(tile, -(-size // patch) * patch)


def max_overlapping_tiles(tile: int, stride: int) -> int:
    """The most tiles that can cover one pixel (the edge-anchored tile adds one per axis)."""
    per_axis = -(-tile // stride) + 1
    return per_axis * per_axis


@dataclass(frozen=True)
class Grid:
    height: int
    width: int
    tile_h: int
    tile_w: int
    stride: int  # along an axis with more than one tile (whose tile is then the longer side)

    @property
    def tile(self) -> int:
        """The longer tile side: what chunk sizes must hold."""
        return max(self.tile_h, self.tile_w)

    @property
    def overlap(self) -> int:
        return self.tile - self.stride

    def rows(self) -> list[int]:
        return axis_origins(self.height, self.tile_h, self.stride)

    def cols(self) -> list[int]:
        return axis_origins(self.width, self.tile_w, self.stride)

    def chunk_size(self, requested: int) -> int:
        """The processing chunk: the requested size rounded to a multiple of the stride."""
        return max(1, round(requested / self.stride)) * self.stride

    def chunks(self, chunk: int) -> list[tuple[int, int]]:
        """Chunk indices (i, j), row-major, covering the scene."""
        n_i = -(-self.height // chunk)
        n_j = -(-self.width // chunk)
        return [(i, j) for i in range(n_i) for j in range(n_j)]

    def owned_tiles(self, chunk: int, i: int, j: int) -> list[tuple[int, int]]:
        """Tile origins (y, x) inside chunk (i, j), row-major."""
        y0, x0 = i * chunk, j * chunk
        ys = [y for y in self.rows() if y0 <= y < y0 + chunk]
        xs = [x for x in self.cols() if x0 <= x < x0 + chunk]
        return [(y, x) for y in ys for x in xs]

    def chunk_bounds(self, chunk: int, i: int, j: int) -> tuple[int, int, int, int]:
        """Output pixels of chunk (i, j): y0, y1, x0, x1 (clipped to the scene)."""
        return (i * chunk, min((i + 1) * chunk, self.height),
                j * chunk, min((j + 1) * chunk, self.width))


def _ramp(n: int, blend: str, overlap: int, taper_start: bool, taper_end: bool) -> np.ndarray:
    """One axis of a tile's weight; no taper on a side that touches the scene border."""
    t = np.arange(n, dtype=np.float64)
    if blend == "none":
        w = np.ones(n)
    elif blend == "hann":
        w = np.sin(np.pi * (t + 0.5) / n) ** 2
        half = n // 2
        if not taper_start:
            w[:half] = 1.0
        if not taper_end:
            w[n - half:] = 1.0
    elif blend == "linear":
        w = np.ones(n)
        if overlap > 0:
            ramp = (np.arange(overlap) + 0.5) / overlap
            if taper_start:
                w[:overlap] = np.minimum(w[:overlap], ramp)
            if taper_end:
                w[n - overlap:] = np.minimum(w[n - overlap:], ramp[::-1])
    elif blend == "center":
        w = np.ones(n)
        margin = overlap // 2
        if margin:
            if taper_start:
                w[:margin] = 0.0
            if taper_end:
                w[n - margin:] = 0.0
    else:
        raise ValueError(blend)
    return np.maximum(w, CENTER_FLOOR if blend == "center" else WEIGHT_FLOOR)


def tile_weight(grid: Grid, y: int, x: int, blend: str) -> np.ndarray:
    """The tile_h×tile_w blending weight of the tile at (y, x), edge-aware, in [floor, 1];
    read-only.

    A tile's weight depends only on which of its sides touch the scene border: at most nine
    different arrays per grid, computed once each. An axis one tile spans touches the border on
    both sides, so it never tapers.
    """
    th, tw = grid.tile_h, grid.tile_w
    return _edge_weight(th, tw, grid.overlap, blend, y > 0, y + th < grid.height,
                        x > 0, x + tw < grid.width)


@lru_cache(maxsize=64)
def _edge_weight(th: int, tw: int, overlap: int, blend: str, top: bool, bottom: bool, left: bool,
                 right: bool) -> np.ndarray:
    wy = _ramp(th, blend, overlap, taper_start=top, taper_end=bottom)
    wx = _ramp(tw, blend, overlap, taper_start=left, taper_end=right)
    weight = np.outer(wy, wx).astype(np.float32)
    weight.flags.writeable = False
    return weight
