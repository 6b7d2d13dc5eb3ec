"""One scene over many: items (or rasters) warped onto one grid and composited, window by window.

The grid is the AOI in the target CRS at the target resolution, its edges snapped outwards to
whole multiples of the resolution (so two runs over the same AOI share their pixels). Each part
is read through a warped view onto that grid (``fetch_read.BandReader``: a ``WarpedVRT``, or a
plain windowed read when a part already lies on the grid), nearest by default, and only for the
window asked: memory follows the window, not the AOI or the number of parts.

Compositing: per pixel, the first part (in the order given: least cloudy first) whose bands are
all valid *and* whose own cloud mask leaves the pixel clear wins. Where every part that has data
is clouded, the first such part's values are kept and the mosaic's ``mask`` reports the pixel,
so it becomes 255 and is counted in ``masked_fraction`` exactly as a single item's cloud is.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window
from xarray.backends import BackendArray
from xarray.core import indexing

from ..errors import UsageError
from ..net import RetryPolicy
from .fetch_read import Encoding, Grid, ReadableBand, encode
from .scene import PixelMask, Scene
from .stac_scene import Assets, span

Bounds = tuple[float, float, float, float]
FLOAT = Encoding("float32", float("nan"))  # parts may differ in type and scale: physical floats
MAX_PIXELS = 10**10  # 100,000 x 100,000: a large country at 10 m; more is a typo in --resolution
CACHED_WINDOWS = 8  # clouded-pixel masks kept for the mask's read after the bands' read


def parse_crs(text: str) -> CRS:
    """``--crs``: EPSG:xxxx or any CRS string rasterio accepts, projected or geographic.

    Parsed inside ``rasterio.Env`` so that PROJ's complaint about a bad code reaches our one
    error line through rasterio's handler instead of GDAL's own printing to stderr.
    """
    try:
        with rasterio.Env():
            return CRS.from_user_input(text)
    except CRSError as exc:
        raise UsageError(f"--crs {text!r} is not a CRS rasterio knows ({exc})") from None


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone holding a point: the default mosaic CRS for an AOI's centre."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def union(boxes: Sequence[Bounds]) -> Bounds:
    """The smallest box holding every box (all in one CRS)."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def aoi_bounds(bbox: Bounds, crs: CRS) -> Bounds:
    """A lon/lat bbox in ``crs`` (edges densified, so a projected AOI keeps its full extent)."""
    return transform_bounds("EPSG:4326", crs, *bbox, densify_pts=21)


@dataclass(frozen=True)
class Footprint:
    """A part's finest band: its CRS, transform and size (for the default resolution and for
    skipping windows the part does not touch)."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> Bounds:
        left, top = self.transform.c, self.transform.f
        right, bottom = self.transform @ (self.width, self.height)
        return min(left, right), min(top, bottom), max(left, right), max(top, bottom)

    def resolution_in(self, crs: CRS) -> float:
        """Its pixel size in ``crs``: the same number where the units agree (metres are metres
        in any UTM zone), else GDAL's estimate of the warped pixel size."""
        if self.crs == crs or (self.crs.is_projected and crs.is_projected
                               and self.crs.linear_units == crs.linear_units):
            return abs(self.transform.a)
        transform, _, _ = calculate_default_transform(self.crs, crs, self.width, self.height,
                                                      *self.bounds)
        return abs(transform.a)


def snapped_grid(bounds: Bounds, crs: CRS, resolution: float) -> Grid | None:
    """The grid over ``bounds`` at ``resolution``, edges rounded outwards to its multiples."""
    left, bottom, right, top = bounds
    x0, x1 = math.floor(left / resolution), math.ceil(right / resolution)
    y0, y1 = math.floor(bottom / resolution), math.ceil(top / resolution)
    if x1 <= x0 or y1 <= y0:
        return None
    if (x1 - x0) * (y1 - y0) > MAX_PIXELS:
        raise UsageError(f"the mosaic's grid would be {x1 - x0:,} x {y1 - y0:,} pixels, over the "
                         f"limit of {MAX_PIXELS:,}: give a coarser --resolution or a smaller AOI")
    return Grid(crs, Affine(resolution, 0, x0 * resolution, 0, -resolution, y1 * resolution),
                x1 - x0, y1 - y0)


def grid_hash(grid: Grid, aoi: Any) -> str:
    """A short stable name for the AOI on its grid: same AOI, CRS and resolution, same hash."""
    key = {"aoi": aoi, "crs": grid.crs.to_wkt(), "transform": list(grid.transform)[:6],
           "size": [grid.height, grid.width]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


class Part:
    """One input of the mosaic: its bands (in the mosaic's band order), its cloud mask on the
    mosaic grid (``mask``, set once the grid is known; or none), and a label for errors."""

    def __init__(self, bands: Sequence[ReadableBand], label: str, policy: RetryPolicy):
        self.bands, self.label = list(bands), label
        self.assets = Assets(self.bands, policy, f"reading {label}")
        self.mask: PixelMask | None = None
        self.box = (0, 0, 0, 0)  # rows and cols of the grid it may cover

    def footprint(self) -> Footprint:
        """Its finest band's grid (asset headers are read now)."""
        finest = min(self.assets.call(self.assets.datasets),
                     key=lambda d: abs(d.transform.a * d.transform.e))
        return Footprint(finest.crs, finest.transform, finest.width, finest.height)

    def place(self, grid: Grid) -> None:
        """Where on ``grid`` it may have pixels (one pixel of margin): other windows skip it."""
        footprint = self.footprint()
        left, bottom, right, top = transform_bounds(footprint.crs, grid.crs, *footprint.bounds,
                                                    densify_pts=21)
        inverse = ~grid.transform
        cols, rows = zip(*(inverse @ (x, y) for x in (left, right) for y in (bottom, top)))
        self.box = (math.floor(min(rows)) - 1, math.ceil(max(rows)) + 1,
                    math.floor(min(cols)) - 1, math.ceil(max(cols)) + 1)

    def touches(self, y0: int, y1: int, x0: int, x1: int) -> bool:
        r0, r1, c0, c1 = self.box
        return r0 < y1 and y0 < r1 and c0 < x1 and x0 < c1

    def read(self, grid: Grid, window: Window) -> np.ndarray:
        def bands() -> np.ndarray:
            readers = self.assets.readers(grid)
            return np.stack([encode(r.read(window), r.band, FLOAT) for r in readers])

        return self.assets.call(bands)


class _Composite(BackendArray):
    """The mosaic's bands as (band, y, x), float32 physical values, NaN where no part has data."""

    def __init__(self, parts: Sequence[Part], grid: Grid):
        self.shape = (len(parts[0].bands), grid.height, grid.width)
        self.dtype = np.dtype(FLOAT.dtype)
        self.parts, self.grid = list(parts), grid
        self._lock = threading.Lock()  # GDAL handles are not thread-safe
        self._clouded: OrderedDict[tuple[int, int, int, int], np.ndarray] = OrderedDict()

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC,
                                                  self._get)

    def _get(self, key: tuple[int | slice, ...]) -> np.ndarray:
        (b0, b1, bands), (y0, y1, rows), (x0, x1, cols) = (span(k, n) for k, n in
                                                            zip(key, self.shape))
        if b0 == b1 or y0 == y1 or x0 == x1:
            return np.empty((b1 - b0, y1 - y0, x1 - x0), self.dtype)[bands, rows, cols]
        values, _ = self.window(y0, y1, x0, x1)
        return values[b0:b1][bands, rows, cols]

    def window(self, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
        """The composite over rows y0:y1, cols x0:x1, and where its value is under a cloud."""
        window = Window(x0, y0, x1 - x0, y1 - y0)
        values = np.full((self.shape[0], y1 - y0, x1 - x0), np.nan, self.dtype)
        clear = np.zeros((y1 - y0, x1 - x0), bool)
        clouded = np.zeros_like(clear)
        with self._lock:
            for part in self.parts:
                if not part.touches(y0, y1, x0, x1):
                    continue
                data = part.read(self.grid, window)
                valid = np.isfinite(data).all(axis=0)
                cloud = (part.mask.invalid(y0, y1, x0, x1) if part.mask is not None
                         else np.zeros_like(clear))
                take = valid & ~cloud & ~clear
                fallback = valid & cloud & ~clear & ~clouded
                chosen = take | fallback
                values[:, chosen] = data[:, chosen]
                clouded = (clouded & ~take) | fallback
                clear |= take
                if clear.all():
                    break
            self._clouded[(y0, y1, x0, x1)] = clouded
            while len(self._clouded) > CACHED_WINDOWS:
                self._clouded.popitem(last=False)
        return values, clouded

    def clouded(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        with self._lock:
            cached = self._clouded.get((y0, y1, x0, x1))
        return cached if cached is not None else self.window(y0, y1, x0, x1)[1]


@dataclass
class MosaicMask:
    """The mosaic's ``PixelMask``: pixels every part with data there has under a cloud."""

    identity: tuple
    label: str
    rule: Any
    composite: _Composite = field(repr=False)

    def invalid(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.composite.clouded(y0, y1, x0, x1)


@dataclass(frozen=True)
class CloudRule:
    """What the STAC item and the summary say of the mosaic's mask: the parts' own rules."""

    rules: tuple[str, ...]

    def describe(self) -> str:
        return "; ".join(sorted(set(self.rules))) or "none"


def open_mosaic(parts: Sequence[Part], grid: Grid, label: str,
                descriptions: list[str | None], rules: Sequence[str] = ()) -> Scene:
    """The parts composited on ``grid`` as a lazy scene (float32, NaN nodata), with a mask
    wherever a part's cloud mask applies."""
    for part in parts:
        part.place(grid)
    composite = _Composite(parts, grid)
    array = xr.DataArray(xr.Variable(("band", "y", "x"), indexing.LazilyIndexedArray(composite)))
    count = composite.shape[0]
    masked = [p for p in parts if p.mask is not None]
    mask = MosaicMask(identity=tuple(tuple(p.mask.identity) for p in masked),
                      label=", ".join(p.mask.label for p in masked), rule=CloudRule(tuple(rules)),
                      composite=composite) if masked else None
    return Scene(source=label, array=array, crs=grid.crs, transform=grid.transform,
                 descriptions=descriptions, nodata=[FLOAT.nodata] * count, scales=[1.0] * count,
                 offsets=[0.0] * count, dtype=FLOAT.dtype, mask=mask)
