"""A scene over a STAC item's band assets: what ``fetch`` would write, read window by window.

Grid and values are fetch's own (``fetch_read``): the finest chosen band's grid cut to the AOI
(whole without one), every band read onto it (coarser ones resampled), scaled to physical units
and encoded as the fetched COG stores them. Nothing is downloaded ahead: each window the predict
engine asks for becomes GDAL range requests for the tiles under it. So predicting the item
equals fetching it, then predicting the COG, bit for bit.

Reads follow the retry policy. A failed read drops every open handle and the retry reopens the
assets, so no broken connection or half-read block outlives the attempt that met it.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Callable, Sequence, TypeVar

import numpy as np
import rasterio
import xarray as xr
from rasterio.enums import Resampling
from rasterio.windows import Window
from xarray.backends import BackendArray
from xarray.core import indexing

from ..net import RetryPolicy
from ..stac import BandSource
from .fetch_read import (
    BandReader,
    Encoding,
    Grid,
    NetworkReadError,
    ReadableBand,
    encode,
    encoding_for,
    finest_grid,
    open_bands,
)
from .scene import Scene

Bbox = tuple[float, float, float, float]
RESAMPLING = Resampling.nearest  # fetch's default, so both give the same pixels
T = TypeVar("T")


def span(key: int | slice, size: int) -> tuple[int, int, int | slice]:
    """The range a basic index touches, and the index that picks its result from that range."""
    if isinstance(key, slice):
        start, stop, step = key.indices(size)  # xarray hands backends positive steps only
        return start, max(start, stop), slice(None, None, step)
    return key, key + 1, 0


class Assets:
    """GDAL handles on the band assets, and their readers on the grid: opened once, when first
    needed, and dropped after any failure, so that a retry starts on fresh connections."""

    def __init__(self, sources: Sequence[BandSource], policy: RetryPolicy, what: str):
        self.sources, self.policy, self.what = list(sources), policy, what
        self._stack: ExitStack | None = None
        self._datasets: list[rasterio.io.DatasetReader] = []
        self._readers: list[BandReader] = []

    def call(self, action: Callable[[], T]) -> T:
        """``action`` with the GDAL network options (thread-local), retried on fresh handles."""
        def attempt() -> T:
            try:
                return action()
            except Exception:
                self.close()
                raise

        with rasterio.Env(**self.policy.gdal_env()):
            return self.policy.call(attempt, self.what,
                                    lambda exc: isinstance(exc, NetworkReadError))

    def datasets(self) -> list[rasterio.io.DatasetReader]:
        if self._stack is None:
            stack = ExitStack()
            self._datasets = stack.enter_context(open_bands(self.sources))
            self._stack = stack
        return self._datasets

    def readers(self, grid: Grid) -> list[BandReader]:
        if not self._readers:
            datasets = self.datasets()
            self._readers = [BandReader(s, d, grid, RESAMPLING, self._stack)
                             for s, d in zip(self.sources, datasets)]
        return self._readers

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._datasets, self._readers = None, [], []

    def layout(self, aoi_bbox: Bbox | None) -> tuple[Grid, Encoding] | None:
        datasets = self.datasets()
        grid = finest_grid(datasets, aoi_bbox)
        return None if grid is None else (grid, encoding_for(self.sources, datasets))


class _ItemBands(BackendArray):
    """The item's bands as (band, y, x) on the grid, encoded; read only where indexed."""

    def __init__(self, assets: Assets, grid: Grid, encoding: Encoding):
        self.shape = (len(assets.sources), grid.height, grid.width)
        self.dtype = np.dtype(encoding.dtype)
        self.assets, self.grid, self.encoding = assets, grid, encoding
        self._lock = threading.Lock()  # GDAL handles are not thread-safe

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC,
                                                  self._get)

    def _get(self, key: tuple[int | slice, ...]) -> np.ndarray:
        (b0, b1, bands), (y0, y1, rows), (x0, x1, cols) = (
            span(k, n) for k, n in zip(key, self.shape))
        if b0 == b1 or y0 == y1 or x0 == x1:
            return np.empty((b1 - b0, y1 - y0, x1 - x0), self.dtype)[bands, rows, cols]
        window = Window(x0, y0, x1 - x0, y1 - y0)
        with self._lock:
            block = self.assets.call(lambda: self._read(range(b0, b1), window))
        return block[bands, rows, cols]

    def _read(self, bands: range, window: Window) -> np.ndarray:
        readers = self.assets.readers(self.grid)
        return np.stack([encode(readers[b].read(window), readers[b].band, self.encoding)
                         for b in bands])


def open_item_scene(sources: Sequence[BandSource], aoi_bbox: Bbox | None, policy: RetryPolicy,
                    label: str) -> Scene | None:
    """The bands as a lazy scene (asset headers read now); ``None`` if the AOI misses them."""
    assets = Assets(sources, policy, label)
    layout = assets.call(lambda: assets.layout(aoi_bbox))
    if layout is None:
        assets.close()
        return None
    grid, encoding = layout
    bands = _ItemBands(assets, grid, encoding)
    array = xr.DataArray(xr.Variable(("band", "y", "x"), indexing.LazilyIndexedArray(bands)))
    count = len(sources)
    return Scene(source=label, array=array, crs=grid.crs, transform=grid.transform,
                 descriptions=[s.band.name for s in sources], nodata=[encoding.nodata] * count,
                 scales=[1.0] * count, offsets=[0.0] * count, dtype=encoding.dtype)


def asset_window_reader(source: ReadableBand, grid: Grid, policy: RetryPolicy, what: str
                        ) -> Callable[[Window], np.ndarray]:
    """One more raster on a scene's grid (a cloud mask): ``read(window)`` gives its raw values
    there (nearest), where it has no data its nodata (else 0); opened on the first read."""
    assets = Assets([source], policy, what)
    fill = 0 if source.nodata is None else source.nodata

    def read(window: Window) -> np.ndarray:
        return assets.call(lambda: np.ma.filled(assets.readers(grid)[0].read(window), fill))

    return read
