"""Training and validation samples: windowed reads, dataset normalisation, D4 augmentation.

Sample i of a run is a pure function of (seed, i): which image (a seeded permutation per
epoch), where the crop sits and how it is rotated and flipped. Resuming at step s therefore
only needs s, and the result does not depend on how many loader workers run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from rasterio.windows import Window

from ...io.rasters import block_windows, open_raster, read_physical
from ...labels import IGNORE_INDEX
from ..labelled.classes import ClassSpec
from ..labelled.folders import Pair, read_label


@dataclass(frozen=True)
class SampleReader:
    """Reads a window as model input: bands in model order, normalised, invalid pixels zeroed."""

    classes: ClassSpec
    band_order: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def read(self, pair: Pair, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Input [C, h, w] float32 and labels [h, w] uint8; a pixel with invalid input is ignored."""
        indexes = [i + 1 for i in self.band_order]
        with open_raster(pair.image) as ds:
            values, invalid = read_physical(ds, pair.image_nodata, window, indexes)
        mean = np.asarray(self.mean, dtype=np.float64)[:, None, None]
        std = np.asarray(self.std, dtype=np.float64)[:, None, None]
        x = ((values - mean) / std).astype(np.float32)
        x[:, invalid] = 0.0
        y = read_label(pair, self.classes, window)
        y[invalid] = IGNORE_INDEX
        return x, y


@dataclass(frozen=True)
class CropPlan:
    pair: int
    row: int
    col: int
    rotations: int
    flip: bool


class CropDataset(torch.utils.data.Dataset):
    """Random square crops with a random rotation by k·90° and an optional flip (the 8 symmetries
    of the square, uniformly); crops of images smaller than ``crop`` are padded (ignored)."""

    def __init__(self, pairs: list[Pair], reader: SampleReader, crop: int, seed: int, length: int) -> None:
        self.pairs, self.reader, self.crop, self.seed, self.length = pairs, reader, crop, seed, length
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, 1, epoch]).permutation(len(self.pairs)))
        return self._order[1]

    def plan(self, index: int) -> CropPlan:
        epoch, position = divmod(index, len(self.pairs))
        pair = int(self._epoch_order(epoch)[position])
        rng = np.random.default_rng([self.seed, 0, index])
        georef = self.pairs[pair].georef
        row = int(rng.integers(0, max(georef.height - self.crop, 0) + 1))
        col = int(rng.integers(0, max(georef.width - self.crop, 0) + 1))
        return CropPlan(pair, row, col, int(rng.integers(0, 4)), bool(rng.random() < 0.5))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        plan = self.plan(index)
        georef = self.pairs[plan.pair].georef
        window = Window(plan.col, plan.row, min(self.crop, georef.width - plan.col),
                        min(self.crop, georef.height - plan.row))
        x, y = self.reader.read(self.pairs[plan.pair], window)
        pad = ((0, self.crop - y.shape[0]), (0, self.crop - y.shape[1]))
        x = np.pad(x, ((0, 0), *pad))
        y = np.pad(y, pad, constant_values=IGNORE_INDEX)
        x, y = np.rot90(x, plan.rotations, axes=(1, 2)), np.rot90(y, plan.rotations)
        if plan.flip:
            x, y = x[:, :, ::-1], y[:, ::-1]
        return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def validation_windows(pairs: list[Pair], size: int) -> Iterator[tuple[Pair, Window]]:
    """Every (pair, window) of a non-overlapping grid: each labelled pixel scored exactly once."""
    for pair in pairs:
        for window in block_windows(pair.georef.width, pair.georef.height, size):
            yield pair, window
