"""Pixel masks (clouds, shadows, a user's own mask): which pixels of a scene the model must skip.

A mask is a raster (a file, a STAC item's ``scl`` / ``qa_pixel`` asset) or one of the scene's own
bands, and a rule that says which of its values are invalid: a list of values (Sentinel-2 SCL
classes), a list of bits (Landsat ``qa_pixel``), or, by default for a user's mask, any nonzero
value. A mask on another grid (SCL is 20 m) is read onto the scene's grid with nearest
resampling, window by window, through the same band reader as the bands (range reads only).
Masked pixels are invalid exactly as nodata is: zero weight in blending, 255 in the map.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from rasterio.windows import Window

from ..errors import UsageError
from ..net import RetryPolicy
from .fetch_read import Grid
from .stac_scene import asset_window_reader

# Sentinel-2 L2A scene classification: 0 no data, 1 saturated/defective, 3 cloud shadow,
# 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus (11 snow is kept)
SCL_INVALID = (0, 1, 3, 8, 9, 10)
# Landsat Collection 2 QA_PIXEL: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow
QA_PIXEL_BITS = (0, 1, 2, 3, 4)
KINDS = ("auto", "none", "scl", "qa_pixel", "file", "band")


@dataclass(frozen=True)
class MaskRule:
    """Which mask values are invalid: ``values``, or any of ``bits`` set, or (neither) nonzero."""

    values: tuple[int, ...] | None = None
    bits: tuple[int, ...] | None = None

    def invalid(self, data: np.ndarray) -> np.ndarray:
        values = np.asarray(data)
        if self.values is not None:
            return np.isin(values, self.values)
        if self.bits is not None:
            flags = sum(1 << b for b in self.bits)
            return (values.astype(np.int64) & flags) != 0
        return values != 0

    def describe(self) -> str:
        if self.values is not None:
            return "values " + ",".join(map(str, self.values))
        if self.bits is not None:
            return "bits " + ",".join(map(str, self.bits))
        return "nonzero"


@dataclass(frozen=True)
class MaskSpec:
    """``--mask`` as given: ``kind`` with an optional target (file or band name) and numbers."""

    kind: str = "auto"
    target: str | None = None
    numbers: tuple[int, ...] | None = None

    @property
    def wanted(self) -> bool:
        return self.kind != "none"

    def scl_rule(self) -> MaskRule:
        return MaskRule(values=self.numbers if self.kind == "scl" and self.numbers else SCL_INVALID)

    def qa_rule(self) -> MaskRule:
        return MaskRule(bits=self.numbers if self.kind == "qa_pixel" and self.numbers
                        else QA_PIXEL_BITS)

    def user_rule(self) -> MaskRule:
        return MaskRule(values=self.numbers) if self.numbers else MaskRule()


def _numbers(text: str, what: str) -> tuple[int, ...]:
    try:
        numbers = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise UsageError(f"--mask {what}: the values must be integers, e.g. scl:0,1,3,8,9,10") from None
    if not numbers:
        raise UsageError(f"--mask {what}: give at least one value after the colon")
    return numbers


def parse_mask(text: str | None) -> MaskSpec:
    """``auto`` | ``none`` | ``scl[:V,..]`` | ``qa_pixel[:BIT,..]`` | ``band:NAME[:V,..]`` |
    ``FILE[:V,..]`` (a mask raster; without values every nonzero value is masked)."""
    if text is None or text.strip().lower() in ("", "auto"):
        return MaskSpec("auto")
    text = text.strip()
    head, _, rest = text.partition(":")
    kind = head.lower()
    if kind == "none" and not rest:
        return MaskSpec("none")
    if kind in ("scl", "qa_pixel"):
        return MaskSpec(kind, None, _numbers(rest, text) if rest else None)
    if kind == "band":
        name, _, values = rest.partition(":")
        if not name:
            raise UsageError("--mask band:NAME[:values] needs the band's name")
        return MaskSpec("band", name, _numbers(values, text) if values else None)
    path, sep, values = text.rpartition(":")
    if sep and path and all(v.strip().lstrip("-").isdigit() for v in values.split(",") if v.strip()):
        return MaskSpec("file", path, _numbers(values, text))
    return MaskSpec("file", text, None)


class _Window(Protocol):
    def __call__(self, window: Window) -> np.ndarray: ...


@dataclass
class MaskLayer:
    """A mask ready to read on a scene's grid: ``read(window)`` gives the raw mask values there
    (``fill`` where the mask raster has no data), ``rule`` turns them into invalid pixels.

    ``identity`` goes into the output name: another mask is another map.
    """

    identity: tuple
    rule: MaskRule
    read: _Window
    label: str

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # GDAL handles are not thread-safe

    def invalid(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        with self._lock:
            values = self.read(Window(x0, y0, x1 - x0, y1 - y0))
        return self.rule.invalid(values)


@dataclass(frozen=True)
class MaskRaster:
    """One band of a mask raster (``ReadableBand`` for the band reader), never rescaled."""

    href: str
    band_index: int = 1
    nodata: float | None = None
    scale: float = 1.0
    offset: float = 0.0


def raster_layer(raster: MaskRaster, rule: MaskRule, grid: Grid, policy: RetryPolicy | None,
                 label: str) -> MaskLayer:
    """A mask raster read onto ``grid`` (nearest), window by window, under the retry policy."""
    read = asset_window_reader(raster, grid, policy or RetryPolicy(), f"reading mask {label}")
    return MaskLayer(identity=(label, raster.href, raster.band_index, rule.describe()), rule=rule,
                     read=read, label=label)
