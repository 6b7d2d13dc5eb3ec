"""Scenes in: any GDAL raster or a Zarr store, opened lazily (rioxarray + dask), read by window.

Validity and physical values follow the one pixel rule (``pixels``): a pixel is invalid when any
selected band is its nodata or not finite, a file that declares no nodata has none, and declared
scale/offset are applied, so the model always sees physical values.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from ..errors import InputDataError
from ..net import RetryPolicy, describe, http_version
from .gdal_cache import block_cache
from .pixels import band_nodata, physical_pixels

log = logging.getLogger(__name__)

ZARR_STEP_TOLERANCE = 1e-6  # relative to the step: how even a Zarr's coordinates must be
READ_CHUNK = 1024  # dask chunk of the lazy array; a window read touches only its chunks

# GDAL keeps decoded blocks in a cache sized at 5 % of RAM by default: over a large scene that
# grows with the scene. Each block is read about once, so a small cache loses nothing and keeps
# memory flat in scene size. The limit is process-wide: it also bounds the dask threads that do
# the reading, and ``block_cache`` sets it around each read and gives it back after.
READ_CACHE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Origin:
    """Where a scene that is not a file of its own came from (a STAC item, a mosaic): its output
    name and provenance link(s), and what its pixels depend on (for the deterministic name)."""

    name: str
    href: str
    identity: tuple
    derived_from: tuple[str, ...] = ()  # a mosaic's every source item; else ``href`` alone


class PixelMask(Protocol):
    """What a scene needs of a mask layer (``io.masks.MaskLayer`` is one): an identity for the
    output name, a label and rule for provenance, and the pixels a window leaves out."""

    identity: tuple
    label: str
    rule: Any

    def invalid(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray: ...


@dataclass
class Scene:
    """A lazily opened scene; ``read`` returns float32 values and a validity mask."""

    source: str
    array: xr.DataArray = field(repr=False)  # dims (band, y, x), lazy
    crs: CRS | None
    transform: Affine
    descriptions: list[str | None]
    nodata: list[float | None]
    scales: list[float]
    offsets: list[float]
    dtype: str
    origin: Origin | None = None
    policy: RetryPolicy | None = None  # set for a remote raster: its reads are retried
    mask: PixelMask | None = None  # clouds etc. (``--mask``); applied by predict's chunk reads
    band_tags: list[dict[str, str]] = field(default_factory=list)  # per band: wavelength etc.

    @property
    def count(self) -> int:
        return self.array.sizes["band"]

    @property
    def height(self) -> int:
        return self.array.sizes["y"]

    @property
    def width(self) -> int:
        return self.array.sizes["x"]

    def with_nodata(self, value: float | None) -> "Scene":
        """The same scene with every band's nodata overridden (``--nodata``)."""
        return replace(self, nodata=band_nodata(self.nodata, value))

    def read(self, bands: list[int], y0: int, y1: int, x0: int, x1: int
             ) -> tuple[np.ndarray, np.ndarray]:
        """Bands (0-based, in the order given) over rows y0:y1, cols x0:x1, and validity."""
        try:
            raw = self._values(bands, y0, y1, x0, x1)
        except (RasterioIOError, OSError, RuntimeError, ValueError) as exc:
            raise InputDataError(f"cannot read {self.source} at rows {y0}:{y1}, cols {x0}:{x1}: "
                                 f"{describe(exc)}") from exc
        data, invalid = physical_pixels(raw, [self.nodata[b] for b in bands],
                                        [self.scales[b] for b in bands],
                                        [self.offsets[b] for b in bands], np.float32)
        return data, ~invalid

    def _values(self, bands: list[int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The raw window; a remote one is read on this thread, under the network options
        (GDAL's are thread-local), and retried while the server fails transiently.

        GDAL reports a failed range request as a bare read error, without the HTTP status; so
        after one, the file is opened afresh: a server that answers with an error status fails
        that open transiently, and a file that opens but cannot be read is broken (exit 3).
        """
        window = self.array.isel(band=bands, y=slice(y0, y1), x=slice(x0, x1))
        policy = self.policy
        if policy is None:
            with block_cache(READ_CACHE_BYTES):
                return np.asarray(window.values)

        def attempt() -> np.ndarray:
            try:
                return np.asarray(window.compute(scheduler="synchronous").values)
            except RasterioIOError:
                with rasterio.open(self.source):
                    pass
                raise

        with rasterio.Env(**policy.gdal_env()), block_cache(READ_CACHE_BYTES):
            return policy.call(attempt, f"reading {self.source} at rows {y0}:{y1}, cols {x0}:{x1}",
                               retry_also=lambda exc: isinstance(exc, RasterioIOError))


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / marker).exists()
                                 for marker in (".zgroup", ".zarray", "zarr.json", ".zmetadata"))


def is_remote(source: str | Path) -> bool:
    """A raster read over the network (a URL or a /vsicurl/ path)."""
    return "://" in str(source) or str(source).startswith("/vsicurl")


def open_scene(source: str | Path, policy: RetryPolicy | None = None) -> Scene:
    """Open a scene lazily; InputDataError (exit 3) if it is missing, a folder or unreadable.

    A remote raster is opened and read under the run's retry policy (``--timeout``,
    ``--retries``; the defaults without one): a server that stays down ends as TransientError
    (exit 75), not as a data error.
    """
    path = Path(source)
    if is_remote(source):
        policy = policy or RetryPolicy()
        with rasterio.Env(**policy.gdal_env()):
            scene = policy.call(lambda: _open_gdal(str(source)), f"opening {source}")
        return replace(scene, policy=policy, origin=_remote_origin(str(source), policy))
    if not str(source).startswith("/vsi"):
        if not path.exists():
            raise InputDataError(f"scene {source} does not exist")
        if _is_zarr(path):
            return _open_zarr(path)
        if path.is_dir():
            raise InputDataError(f"scene {source} is a directory, not a raster or a Zarr store")
    return _open_gdal(str(source))


def _remote_origin(source: str, policy: RetryPolicy) -> Origin:
    """A URL's output name leaves out its query (a signature that changes every night); its
    identity includes what the server says of the file, so a replaced file is predicted anew."""
    url = source.removeprefix("/vsicurl/")
    plain = urlsplit(url)._replace(query="", fragment="").geturl()
    version = http_version(url, policy) if plain.startswith(("http://", "https://")) else ()
    return Origin(name=Path(urlsplit(plain).path).name.split(".")[0] or "scene", href=plain,
                  identity=(plain, *version))


def _open_gdal(source: str) -> Scene:
    # A scene without georeferencing is allowed and reported once per scene by predict; GDAL's
    # own warning would otherwise repeat on every lazy window read, from any thread. So the run
    # that opens one silences it for the process (not the import: a library user keeps theirs).
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    try:
        with rasterio.open(source) as src:
            meta = dict(crs=src.crs, transform=src.transform, descriptions=list(src.descriptions),
                        nodata=list(src.nodatavals), scales=[float(s) for s in src.scales],
                        offsets=[float(o) for o in src.offsets], dtype=src.dtypes[0],
                        band_tags=[_band_tags(src, i) for i in src.indexes])
            if src.count == 0 or src.width == 0 or src.height == 0:
                raise InputDataError(f"scene {source} has no pixels")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = rioxarray.open_rasterio(
                source, chunks={"band": -1, "y": READ_CHUNK, "x": READ_CHUNK}, lock=False,
                cache=False, mask_and_scale=False)
    except RasterioIOError as exc:
        raise InputDataError(f"cannot open {source}: {describe(exc)}") from exc
    if isinstance(array, list):
        raise InputDataError(f"{source} holds several subdatasets; name one (e.g. NETCDF:file:var)")
    return Scene(source=source, array=array, **meta)


def _band_tags(src: rasterio.io.DatasetReader, index: int) -> dict[str, str]:
    """A band's metadata, default domain and GDAL's IMAGERY domain (CENTRAL_WAVELENGTH_UM)."""
    return {**src.tags(index), **src.tags(index, ns="IMAGERY")}


def _open_zarr(path: Path) -> Scene:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_zarr(path, mask_and_scale=False, decode_coords="all")
    except Exception as exc:  # zarr raises many types for a damaged store
        raise InputDataError(f"cannot open Zarr store {path}: {describe(exc)}") from exc
    candidates = [v for v in ds.data_vars if set(ds[v].dims) >= {"y", "x"} and ds[v].ndim in (2, 3)]
    if not candidates:
        raise InputDataError(f"Zarr store {path} has no (band, y, x) or (y, x) array")
    array = ds[candidates[0]]
    if array.ndim == 2:
        array = array.expand_dims("band")
    array = array.transpose("band", "y", "x")
    names = [str(b) for b in array["band"].values] if "band" in array.coords and \
        array["band"].dtype.kind in "UO" else list(array.attrs.get("band_names", [None] * array.sizes["band"]))
    nodata = array.attrs.get("_FillValue", array.encoding.get("_FillValue"))
    count = array.sizes["band"]
    try:
        crs = array.rio.crs
        transform = array.rio.transform()
    except Exception as exc:
        raise InputDataError(f"Zarr store {path}: cannot read its georeferencing ({describe(exc)})") from exc
    array, transform = _north_up(array, transform, path)
    scale = float(array.attrs.get("scale_factor", array.encoding.get("scale_factor", 1.0)))
    offset = float(array.attrs.get("add_offset", array.encoding.get("add_offset", 0.0)))
    return Scene(source=str(path), array=array, crs=crs, transform=transform, descriptions=names,
                 nodata=[None if nodata is None else float(nodata)] * count, scales=[scale] * count,
                 offsets=[offset] * count, dtype=str(array.dtype))


def _axis_step(array: xr.DataArray, axis: str, path: Path) -> float | None:
    """The spacing of an axis's pixel-centre coordinates; None where they say nothing (fewer
    than two). A grid whose spacing varies cannot be one affine transform: exit 3."""
    if axis not in array.coords or array.sizes[axis] < 2:
        return None
    raw = np.asarray(array[axis].values)
    values = raw.astype(np.float64)
    steps = np.diff(values)
    step = (values[-1] - values[0]) / (len(values) - 1)
    # what the coordinates' own precision allows (float32 ones round at large values)
    precision = 4 * np.finfo(raw.dtype).eps * np.abs(values).max() if raw.dtype.kind == "f" else 0.0
    if step == 0 or np.abs(steps - step).max() > ZARR_STEP_TOLERANCE * abs(step) + precision:
        raise InputDataError(f"Zarr store {path}: its {axis} coordinates are not evenly spaced "
                             f"(steps from {steps.min():g} to {steps.max():g}); a map needs a "
                             f"regular grid: resample it first")
    return float(step)


def _stored_transform(array: xr.DataArray) -> bool:
    """Whether the store keeps a GeoTransform of its own (rioxarray's ``write_transform``)."""
    mapping = array.coords.get(array.rio.grid_mapping)
    return mapping is not None and bool(mapping.attrs.get("GeoTransform"))


def _north_up(array: xr.DataArray, transform: Affine, path: Path) -> tuple[xr.DataArray, Affine]:
    """The array with rows north to south and columns west to east, and a transform whose
    pixel centres are its coordinates (flipped where the store runs the other way).

    A stored transform that disagrees with the coordinates is not trusted: a south-up store's
    may say north-up, and the map would come out mirrored and shifted.
    """
    dx, dy = _axis_step(array, "x", path), _axis_step(array, "y", path)
    flips = {}
    if dy is not None and dy > 0:
        flips["y"] = "south-up"
    if dx is not None and dx < 0:
        flips["x"] = "east-to-west"
    if flips:
        log.info("%s is %s; mapped north-up", path, " and ".join(flips.values()))
        array = array.isel({axis: slice(None, None, -1) for axis in flips})
    if dx is None or dy is None:
        if _stored_transform(array) or ("x" not in array.coords or "y" not in array.coords):
            return array, transform
        if dx is None and dy is None:
            raise InputDataError(f"Zarr store {path}: one pixel and no stored GeoTransform, so its "
                                 f"pixel size cannot be known (store one: rioxarray's "
                                 f"write_transform)")
        known = abs(dx if dx is not None else dy)
        log.info("%s has a single %s; its pixels are taken as square (%g)", path,
                 "row" if dy is None else "column", known)
        dx, dy = dx if dx is not None else known, dy if dy is not None else -known
    dx, dy = abs(dx), -abs(dy)
    x0, y0 = float(array["x"].values[0]), float(array["y"].values[0])
    centre = transform @ (0.5, 0.5)
    off = np.abs(np.subtract((transform.a, transform.e, *centre), (dx, dy, x0, y0)))
    if not flips and transform.b == transform.d == 0 and (off <= 1e-3 * np.abs((dx, dy, dx, dy))).all():
        return array, transform  # it agrees (to a thousandth of a pixel): kept as stored
    return array, Affine(dx, 0.0, x0 - dx / 2, 0.0, dy, y0 - dy / 2)
