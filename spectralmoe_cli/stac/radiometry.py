"""From stored digital numbers to physical values: ``value = DN * scale + offset``.

Order of trust, per band:

0. an item written by ``spectralmoe fetch`` (``spectralmoe:fetch`` in its properties) holds
   physical values already: it keeps the source's platform and processing baseline, and
   rules 2 and 3 would otherwise scale it a second time;
1. ``raster:bands`` ``scale``/``offset`` as the item declares them;
2. Sentinel-2 from processing baseline 04.00 on stores ``DN = 10000 * reflectance + 1000``
   (BOA_ADD_OFFSET / RADIO_ADD_OFFSET), so reflectance = (DN - 1000) / 10000. We add the
   -0.1 offset only when the item neither declares it already nor says it was removed
   (``earthsearch:boa_offset_applied``: that flag is the truth where the two disagree,
   Element84/earth-search#9 and #66). Applying it twice would shift every value by -0.1;
3. documented product scales where the item declares none: Sentinel-2 reflectance 1/10000,
   Landsat Collection 2 Level-2 surface reflectance 2.75e-5 and -0.2 (thermal: 0.00341802 and
   149.0 K);
4. otherwise the values are kept as stored (scale 1, offset 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..bands import Band

FETCHED = "spectralmoe:fetch"
S2_OFFSET = -0.1
S2_SCALE = 1e-4
_S2_OFFSET_BASELINE = 4.0
_LANDSAT_SR = (2.75e-5, -0.2)
_LANDSAT_ST = (0.00341802, 149.0)
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")


@dataclass(frozen=True)
class Radiometry:
    """How one band's stored values become physical values, and which rule said so."""

    scale: float = 1.0
    offset: float = 0.0
    rule: str = "as stored"

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0


def _key(text: Any) -> str:
    return re.sub(r"[\s_\-]", "", str(text or "")).lower()


def platform_family(properties: dict[str, Any]) -> str | None:
    """``sentinel2``, ``landsat8`` ... from ``platform``/``constellation`` (any spelling)."""
    for field in ("platform", "constellation"):
        key = _key(properties.get(field))
        if key.startswith("sentinel2"):
            return "sentinel2"
        match = re.fullmatch(r"landsat(\d)", key)
        if match:
            return f"landsat{match.group(1)}"
    return None


def processing_baseline(properties: dict[str, Any], item_id: str = "") -> float | None:
    """The Sentinel-2 processing baseline (e.g. 4.0), from properties or the product name."""
    for field in ("s2:processing_baseline", "sentinel:processing_baseline", "processing:version"):
        value = properties.get(field)
        if value not in (None, ""):
            try:
                return float(value)
            except (TypeError, ValueError):
                continue
    for field in ("s2:product_uri", "sentinel:product_id", "s2:granule_id"):
        match = _BASELINE_IN_NAME.search(str(properties.get(field) or ""))
        if match:
            return float(f"{match.group(1)}.{match.group(2)}")
    match = _BASELINE_IN_NAME.search(item_id)
    return float(f"{match.group(1)}.{match.group(2)}") if match else None


def _offset_removed(properties: dict[str, Any]) -> bool | None:
    for field in ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied"):
        if field in properties:
            return bool(properties[field])
    return None


def _landsat_level2(properties: dict[str, Any]) -> bool:
    correction = str(properties.get("landsat:correction", "")).upper()
    collection = str(properties.get("landsat:collection_number", "")).lstrip("0")
    return correction in ("L2SP", "L2SR") and collection == "2"


def band_radiometry(properties: dict[str, Any], item_id: str, band: Band,
                    scale: float | None, offset: float | None) -> Radiometry:
    """The rule above for one band; ``scale``/``offset`` are the item's declared values."""
    if FETCHED in properties:
        return Radiometry(rule="written by spectralmoe fetch: physical values")
    family = platform_family(properties)
    if family == "sentinel2":
        base = scale if scale is not None else S2_SCALE
        baseline = processing_baseline(properties, item_id)
        if baseline is not None and baseline >= _S2_OFFSET_BASELINE:
            removed = _offset_removed(properties)
            if removed:
                return Radiometry(base, 0.0, f"sentinel-2 baseline {baseline:05.2f}, offset "
                                             f"already removed by the provider")
            if offset:
                return Radiometry(base, offset, "raster:bands (declares the baseline offset)")
            return Radiometry(base, S2_OFFSET, f"sentinel-2 baseline {baseline:05.2f}: "
                                               f"(DN - 1000) / 10000")
        rule = "raster:bands" if scale is not None else "sentinel-2 DN / 10000"
        return Radiometry(base, offset or 0.0, rule)
    if scale is not None or offset is not None:
        return Radiometry(scale if scale is not None else 1.0, offset or 0.0, "raster:bands")
    if family and family.startswith("landsat") and _landsat_level2(properties):
        thermal = band.name.startswith("lwir")
        factor, shift = _LANDSAT_ST if thermal else _LANDSAT_SR
        return Radiometry(factor, shift, "landsat collection 2 level-2 " +
                          ("surface temperature" if thermal else "surface reflectance"))
    return Radiometry()
