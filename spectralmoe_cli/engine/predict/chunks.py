"""One processing chunk of one scene: read, infer its tiles, exchange spills, write, mark done.

The same steps serve the local pipeline (which overlaps reading the next chunk with inference)
and dask.distributed tasks (one chunk per task, after its upper and left neighbours). Every step
is idempotent: a chunk recomputed after a crash or a lost worker writes the same bits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...io import zarr_store
from ...io.masks import MaskSpec
from ...io.scene import Scene
from ...io.spectra import SpectralMix
from ...io.tiling import Grid, tile_weight
from ...labels import CLASS_MAP_NODATA
from ..runtime.inference import TileModel
from .blend import ChunkMosaic, SpillStore, class_map, probability_map
from .buffers import BufferPool


@dataclass(frozen=True)
class SceneJob:
    """What every chunk of a scene needs to know; small and picklable.

    ``opener`` is what reopens the scene on a dask worker: the raster's path, or the STAC source.
    """

    source: str
    band_index: tuple[int, ...]
    nodata: float | None
    height: int
    width: int
    tile_h: int
    tile_w: int
    stride: int
    chunk: int
    blend: str
    probabilities: bool
    num_classes: int
    store: str
    spill_dir: str
    opener: object = None
    mask: MaskSpec | None = None  # set when the scene has a mask layer: counts are recorded
    mix: SpectralMix | None = None  # --resample-spectra: model bands from the bands read

    @property
    def grid(self) -> Grid:
        return Grid(self.height, self.width, self.tile_h, self.tile_w, self.stride)


@dataclass
class ChunkRead:
    mosaic: ChunkMosaic
    data: np.ndarray | None  # dropped once the chunk is inferred
    valid: np.ndarray
    seconds: float
    masked: int = 0  # pixels of the chunk's own area the mask removed (valid in the bands)


def read_chunk(job: SceneJob, scene: Scene, i: int, j: int, buffers: BufferPool | None = None
               ) -> ChunkRead:
    start = time.perf_counter()
    mosaic = ChunkMosaic(job.grid, job.chunk, i, j, job.num_classes, buffers)
    data, valid = scene.read(list(job.band_index), *mosaic.region)
    masked = 0
    if scene.mask is not None:  # masked pixels are invalid exactly as nodata is
        removed = scene.mask.invalid(*mosaic.region) & valid
        masked = int(removed[:mosaic.y1 - mosaic.y0, :mosaic.x1 - mosaic.x0].sum())
        valid &= ~removed
    if job.mix is not None:
        data = job.mix.apply(data)
    return ChunkRead(mosaic, data, valid, time.perf_counter() - start, masked)


def infer_chunk(job: SceneJob, model: TileModel, read: ChunkRead) -> int:
    """Run the chunk's owned tiles through the model into its mosaic; return tiles computed.

    Tiles, masks and weights are copied straight into one preallocated batch, which goes to the
    model as it is (a partial last batch as a view of its first rows).
    """
    grid, mosaic, th, tw, size = job.grid, read.mosaic, job.tile_h, job.tile_w, model.batch_size
    tiles = np.empty((size, read.data.shape[0], th, tw), np.float32)
    masks = np.empty((size, th, tw), bool)
    weights = np.empty((size, th, tw), np.float32)
    origins: list[tuple[int, int]] = []
    computed = 0

    def flush() -> None:
        n = len(origins)
        mosaic.add(origins, model.contributions(tiles[:n], masks[:n], weights[:n]))
        origins.clear()

    for y, x in mosaic.tiles:
        ys, xs = y - mosaic.y0, x - mosaic.x0
        tile_valid = read.valid[ys:ys + th, xs:xs + tw]
        if not tile_valid.any():
            continue  # a fully invalid tile never reaches the model
        tile = read.data[:, ys:ys + th, xs:xs + tw]
        if tile.shape[1:] != (th, tw):  # an axis shorter than its tile (up to a patch)
            pad = ((0, 0), (0, th - tile.shape[1]), (0, tw - tile.shape[2]))
            tile = np.pad(tile, pad, mode="symmetric")
            tile_valid = np.pad(tile_valid, pad[1:], constant_values=False)
        n = len(origins)
        tiles[n], masks[n], weights[n] = tile, tile_valid, tile_weight(grid, y, x, job.blend)
        origins.append((y, x))
        computed += 1
        if len(origins) == size:
            flush()
    if origins:
        flush()
    return computed


def exchange_spills(job: SceneJob, read: ChunkRead) -> None:
    """Add the neighbours' overhang, then leave this chunk's own overhang for its neighbours."""
    spills = SpillStore(Path(job.spill_dir))
    mosaic = read.mosaic
    for _, path in spills.incoming(mosaic.i, mosaic.j):
        mosaic.absorb(np.load(path))
    spills.save(mosaic.i, mosaic.j, mosaic.spills())


@dataclass
class ChunkMaps:
    """A finished chunk: its uint8 maps and where they go (the int32 sums are no longer needed)."""

    i: int
    j: int
    rows: slice
    cols: slice
    classes: np.ndarray
    probabilities: np.ndarray | None
    masked: int | None = None


def finish_chunk(job: SceneJob, read: ChunkRead) -> ChunkMaps:
    """Turn the blended sums into the class map (and probabilities) over the chunk's own pixels."""
    mosaic = read.mosaic
    core = mosaic.core()
    valid = read.valid[:mosaic.y1 - mosaic.y0, :mosaic.x1 - mosaic.x0]
    return ChunkMaps(mosaic.i, mosaic.j, slice(mosaic.y0, mosaic.y1), slice(mosaic.x0, mosaic.x1),
                     class_map(core, valid, CLASS_MAP_NODATA),
                     probability_map(core, valid, CLASS_MAP_NODATA) if job.probabilities else None,
                     read.masked if job.mask is not None else None)


def write_chunk(job: SceneJob, group, maps: ChunkMaps, drop_consumed: bool) -> float:
    """Write the chunk's maps, mark it done (then drop the spills it consumed); seconds spent."""
    start = time.perf_counter()
    group["classes"][maps.rows, maps.cols] = maps.classes
    if maps.probabilities is not None:
        group["probabilities"][:, maps.rows, maps.cols] = maps.probabilities
    if maps.masked is not None:
        zarr_store.record_masked(group, maps.i, maps.j, maps.masked)
    zarr_store.mark_chunk_done(group, maps.i, maps.j)
    if drop_consumed:
        for _, path in SpillStore(Path(job.spill_dir)).incoming(maps.i, maps.j):
            path.unlink(missing_ok=True)
    return time.perf_counter() - start
