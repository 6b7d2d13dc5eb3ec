"""Windowed reads of an item's bands over the AOI, on one common grid, strip by strip.

The grid rule: the output grid is the grid of the finest chosen band (smallest pixel area; the
first such band in request order on a tie), cut to the AOI's bounding box rounded *outwards* to
whole pixels of that grid and clipped to that band's raster. So output pixels are exactly that
band's pixels (same CRS, resolution, alignment: no resampling for it), and every coarser band
is resampled onto them (``nearest`` by default, which keeps measured values and is exact on
nested grids such as Sentinel-2's 10/20/60 m). Reads go through GDAL (``/vsicurl/`` range
requests for http), one strip of rows at a time, so memory stays bounded by strip x bands
whatever the AOI size, and only the tiles under the AOI are ever requested.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from ..errors import InputDataError
from ..net import describe
from .pixels import band_nodata, nodata_mask, to_physical

STRIP_ROWS = 512
_EPS = 1e-6
_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
               "uint32": "UInt32", "int32": "Int32", "uint64": "UInt64", "int64": "Int64",
               "float32": "Float32", "float64": "Float64"}


class ReadableBand(Protocol):
    """What a reader needs from a band source (``stac.BandSource`` is one)."""

    href: str
    band_index: int
    nodata: float | None

    @property
    def scale(self) -> float: ...

    @property
    def offset(self) -> float: ...


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int


@dataclass(frozen=True)
class Encoding:
    """The output's data type and nodata; ``float32`` + NaN whenever values are rescaled."""

    dtype: str
    nodata: float | None

    @property
    def is_float(self) -> bool:
        return np.dtype(self.dtype).kind == "f"


def finest_grid(datasets: Sequence[rasterio.io.DatasetReader],
                aoi_bbox: tuple[float, float, float, float] | None) -> Grid | None:
    """The finest band's grid cut to the AOI (rounded outwards), whole without an AOI;
    ``None`` if they do not meet."""
    finest = min(datasets, key=lambda d: abs(d.transform.a * d.transform.e))
    if aoi_bbox is None:
        return Grid(finest.crs, finest.transform, finest.width, finest.height)
    left, bottom, right, top = transform_bounds("EPSG:4326", finest.crs, *aoi_bbox,
                                                densify_pts=21)
    window = from_bounds(left, bottom, right, top, transform=finest.transform)
    col0 = max(math.floor(window.col_off + _EPS), 0)
    row0 = max(math.floor(window.row_off + _EPS), 0)
    col1 = min(math.ceil(window.col_off + window.width - _EPS), finest.width)
    row1 = min(math.ceil(window.row_off + window.height - _EPS), finest.height)
    if col1 <= col0 or row1 <= row0:
        return None
    cut = Window(col0, row0, col1 - col0, row1 - row0)
    return Grid(finest.crs, window_transform(cut, finest.transform), cut.width, cut.height)


def _effective_nodata(band: ReadableBand, dataset: rasterio.io.DatasetReader) -> float | None:
    """The item's declared nodata overrides the file's own (the pixel rule's override)."""
    return band_nodata([dataset.nodatavals[band.band_index - 1]], band.nodata)[0]


def encoding_for(bands: Sequence[ReadableBand],
                 datasets: Sequence[rasterio.io.DatasetReader]) -> Encoding:
    """Keep the stored type when nothing is rescaled and all bands agree; else float32 + NaN."""
    rescaled = any(b.scale != 1.0 or b.offset != 0.0 for b in bands)
    dtypes = {d.dtypes[b.band_index - 1] for b, d in zip(bands, datasets)}
    nodatas = {_effective_nodata(b, d) for b, d in zip(bands, datasets)}
    if rescaled or len(dtypes) > 1 or len(nodatas) > 1:
        return Encoding("float32", float("nan"))
    return Encoding(dtypes.pop(), nodatas.pop())


def _aligned_offset(dataset: rasterio.io.DatasetReader, grid: Grid) -> tuple[int, int] | None:
    """The grid origin in the dataset's pixels, if the dataset lies on the very same grid."""
    if dataset.crs != grid.crs:
        return None
    src, dst = dataset.transform, grid.transform
    if not (math.isclose(src.a, dst.a) and math.isclose(src.e, dst.e) and src.b == dst.b == 0
            and src.d == dst.d == 0):
        return None
    col, row = ~src @ (dst.c, dst.f)
    if abs(col - round(col)) > _EPS or abs(row - round(row)) > _EPS:
        return None
    return round(col), round(row)


def _plain_band_vrt(dataset: rasterio.io.DatasetReader, index: int) -> str:
    """One band of ``dataset`` as a VRT document, its colour interpretation left undefined.

    A 4-band 8-bit GeoTIFF (RGB + NIR, as rasterio and many tools write it) tags its last band
    as alpha; a warped view then takes that band for a transparency mask, cannot add the
    footprint mask on top, and would hide NIR values of 0. Seen through this VRT, every band is
    data, exactly as an unwarped read sees it.
    """
    gt = ", ".join(repr(v) for v in dataset.transform.to_gdal())
    srs = f"<SRS>{escape(dataset.crs.to_wkt())}</SRS>" if dataset.crs else ""
    return (f'<VRTDataset rasterXSize="{dataset.width}" rasterYSize="{dataset.height}">{srs}'
            f"<GeoTransform>{gt}</GeoTransform>"
            f'<VRTRasterBand dataType="{_GDAL_TYPES[dataset.dtypes[index - 1]]}" band="1">'
            f"<ColorInterp>Undefined</ColorInterp><SimpleSource><SourceFilename>"
            f"{escape(dataset.name)}</SourceFilename><SourceBand>{index}</SourceBand>"
            f"</SimpleSource></VRTRasterBand></VRTDataset>")


class BandReader:
    """Reads one band's pixels for any window of the output grid, masked where invalid."""

    def __init__(self, band: ReadableBand, dataset: rasterio.io.DatasetReader, grid: Grid,
                 resampling: Resampling, stack: ExitStack):
        self.band = band
        self.nodata = _effective_nodata(band, dataset)
        self.offset = _aligned_offset(dataset, grid)
        self.dataset = dataset
        self.source = dataset
        self.index = band.band_index
        if self.offset is None:
            options = ({"src_nodata": self.nodata, "nodata": self.nodata}
                       if self.nodata is not None else {"add_alpha": True})
            warped = dataset
            if ColorInterp.alpha in dataset.colorinterp:
                warped = stack.enter_context(rasterio.open(_plain_band_vrt(dataset, self.index)))
                self.index = 1
            self.source = stack.enter_context(WarpedVRT(
                warped, crs=grid.crs, transform=grid.transform, width=grid.width,
                height=grid.height, resampling=resampling, **options))

    def read(self, window: Window) -> np.ma.MaskedArray:
        try:
            return self._read(window)
        except rasterio.errors.RasterioError as exc:
            if self.band.href.startswith("/vsi"):
                raise NetworkReadError(str(read_error(self.band, exc))) from exc
            raise read_error(self.band, exc) from exc

    def _read(self, window: Window) -> np.ma.MaskedArray:
        index = self.index
        if self.offset is None:
            if self.nodata is None:  # the footprint is the added alpha band, the view's last:
                both = self.source.read([index, self.source.count], window=window, masked=True)
                outside = np.ma.getdata(both[1]) == 0  # read with the band, in one warp
                data = np.ma.MaskedArray(np.ma.getdata(both[0]),
                                         mask=np.ma.getmaskarray(both[0]) | outside)
            else:
                data = self.source.read(index, window=window, masked=True)
        else:
            shifted = Window(window.col_off + self.offset[0], window.row_off + self.offset[1],
                             window.width, window.height)
            inside = (shifted.col_off >= 0 and shifted.row_off >= 0
                      and shifted.col_off + shifted.width <= self.dataset.width
                      and shifted.row_off + shifted.height <= self.dataset.height)
            data = self.dataset.read(index, window=shifted, masked=True, boundless=not inside)
        invalid = np.ma.getmaskarray(data) | nodata_mask(np.ma.getdata(data), self.nodata)
        return np.ma.MaskedArray(np.ma.getdata(data), mask=invalid)


def encode(data: np.ma.MaskedArray, band: ReadableBand, encoding: Encoding) -> np.ndarray:
    """Physical values (computed in float64, rounded once) or the stored values, nodata filled;
    a float output is NaN wherever the pixel rule says invalid."""
    mask = np.ma.getmaskarray(data)
    if encoding.is_float:
        values = to_physical(np.ma.getdata(data)[None], [band.scale], [band.offset])[0]
        out = values.astype(encoding.dtype)
        out[mask | ~np.isfinite(out)] = np.nan
        return out
    out = np.ma.getdata(data).astype(encoding.dtype, copy=True)
    if encoding.nodata is not None:
        out[mask] = encoding.nodata
    return out


def strips(grid: Grid, rows: int = STRIP_ROWS) -> Iterator[Window]:
    for row in range(0, grid.height, rows):
        yield Window(0, row, grid.width, min(rows, grid.height - row))


@contextmanager
def open_bands(bands: Sequence[ReadableBand]) -> Iterator[list[rasterio.io.DatasetReader]]:
    """Open every band's asset (headers only: a HEAD and one small range request each)."""
    with ExitStack() as stack:
        datasets = []
        for band in bands:
            try:
                datasets.append(stack.enter_context(rasterio.open(band.href)))
            except rasterio.errors.RasterioError as exc:
                raise read_error(band, exc) from exc
        yield datasets


def read_error(band: ReadableBand, exc: Exception) -> InputDataError:
    """One line naming the asset; the GDAL error stays chained, for retry decisions."""
    return InputDataError(f"cannot read {band.href.removeprefix('/vsicurl/')}: {describe(exc)}")


class NetworkReadError(InputDataError):
    """Pixels of a network asset that opened fine could not be read.

    Most often a range request was refused or dropped, but GDAL keeps the HTTP status to itself
    and reports a bare TIFF read error, so this is worth retrying (``RetryPolicy.call``'s
    ``retry_also``); failing every retry, the file itself is broken (exit 3).
    """
