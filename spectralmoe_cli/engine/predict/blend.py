"""One chunk's blend buffer: its owned tiles' fixed-point sums, plus what spills over its edges.

Tiles owned by chunk (i, j) reach past its bottom and right edges by up to a tile; that overhang
("spill") belongs to chunks (i+1, j), (i, j+1) and (i+1, j+1), which add it to their own sums.
Spills are kept on disk between chunks, so memory never depends on the scene's size and a
killed run can resume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...files import write_atomic
from ...io.tiling import Grid
from .buffers import BufferPool

# part name -> (consumer offset (di, dj)); the part's rows/cols relative to the owner's buffer
PARTS = {"down": (1, 0), "right": (0, 1), "corner": (1, 1)}


class ChunkMosaic:
    """The int32 accumulator [K + 1, h, w] of chunk (i, j); channel K holds the weight sum."""

    def __init__(self, grid: Grid, chunk: int, i: int, j: int, num_classes: int,
                 buffers: BufferPool | None = None) -> None:
        self.grid, self.i, self.j, self.k = grid, i, j, num_classes
        self.y0, self.y1, self.x0, self.x1 = grid.chunk_bounds(chunk, i, j)
        self.tiles = grid.owned_tiles(chunk, i, j)
        th, tw = grid.tile_h, grid.tile_w
        self.ye = max([self.y1] + [min(y + th, grid.height) for y, _ in self.tiles])
        self.xe = max([self.x1] + [min(x + tw, grid.width) for _, x in self.tiles])
        shape = (num_classes + 1, self.ye - self.y0, self.xe - self.x0)
        self.acc = buffers.zeros(shape, np.int32) if buffers else np.zeros(shape, np.int32)

    @property
    def region(self) -> tuple[int, int, int, int]:
        """Scene rows/cols this chunk's tiles read: y0, ye, x0, xe."""
        return self.y0, self.ye, self.x0, self.xe

    def add(self, origins: list[tuple[int, int]], sums: np.ndarray) -> None:
        """Add a batch of fixed-point tiles [n, K + 1, tile_h, tile_w] (w·p, then w) at their
        origins.

        Tiles of one batch overlap each other, so each is one in-place add of its whole
        [K + 1, h, w] block; integer sums make the order irrelevant.
        """
        grid, acc = self.grid, self.acc
        for (y, x), tile in zip(origins, sums):
            h, w = min(grid.tile_h, grid.height - y), min(grid.tile_w, grid.width - x)
            ys, xs = y - self.y0, x - self.x0
            acc[:, ys:ys + h, xs:xs + w] += tile[:, :h, :w]

    def spills(self) -> dict[str, np.ndarray]:
        """The overhang, by part; empty parts are left out."""
        ch, cw = self.y1 - self.y0, self.x1 - self.x0
        parts = {
            "down": self.acc[:, ch:, :cw],
            "right": self.acc[:, :ch, cw:],
            "corner": self.acc[:, ch:, cw:],
        }
        return {name: part for name, part in parts.items() if part.size}

    def absorb(self, spill: np.ndarray) -> None:
        """Add a neighbour's overhang (from the chunk above, left or above-left)."""
        h, w = spill.shape[1:]
        self.acc[:, :h, :w] += spill

    def core(self) -> np.ndarray:
        return self.acc[:, :self.y1 - self.y0, :self.x1 - self.x0]


def class_map(core: np.ndarray, valid: np.ndarray, nodata: int) -> np.ndarray:
    """argmax over classes of the integer sums (ties -> lowest class); nodata where invalid."""
    k = core.shape[0] - 1
    classes = np.argmax(core[:k], axis=0).astype(np.uint8)
    classes[~valid | (core[k] == 0)] = nodata
    return classes


def probability_map(core: np.ndarray, valid: np.ndarray, nodata: int) -> np.ndarray:
    """Blended probabilities ×250 as uint8 [K, h, w]; nodata where invalid."""
    k = core.shape[0] - 1
    weight = np.maximum(core[k].astype(np.float64), 1.0)
    probs = np.rint(core[:k] / weight * 250.0).clip(0, 250).astype(np.uint8)
    probs[:, ~valid | (core[k] == 0)] = nodata
    return probs


class SpillStore:
    """Spills on disk: ``{i}_{j}_{part}.npy``, written atomically, removed once consumed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, i: int, j: int, part: str) -> Path:
        return self.folder / f"{i}_{j}_{part}.npy"

    def save(self, i: int, j: int, parts: dict[str, np.ndarray]) -> None:
        for part, array in parts.items():
            write_atomic(self._path(i, j, part),
                         lambda tmp, data=np.ascontiguousarray(array): np.save(tmp, data))

    def incoming(self, i: int, j: int) -> list[tuple[str, Path]]:
        """The spill files chunk (i, j) must add: from above, left and above-left."""
        found = []
        for part, (di, dj) in PARTS.items():
            path = self._path(i - di, j - dj, part)
            if path.exists():
                found.append((part, path))
        return found
