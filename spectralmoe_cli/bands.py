"""Band registry: canonical names, aliases and centre wavelengths.

Scenes name their bands in many ways (Sentinel-2 ``B4``/``B04``, STAC common names ``red``,
Landsat ``SR_B4``, hyperspectral ``665nm``). A checkpoint stores its bands by canonical name, so
matching is by identity, not by position; a band the scene lacks by name may be matched by centre
wavelength within a tolerance (another sensor's slightly different band centres). Bare ``B<n>``
names follow Sentinel-2; other sensors use a prefix (``landsat8:B5``, ``landsat7:SR_B3``), since
``B5`` means different bands on each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import BandError


@dataclass(frozen=True)
class Band:
    """A canonical band: its name and centre wavelength in micrometres (None if not optical)."""

    name: str
    wavelength: float | None


# STAC eo common names (eo extension v1.1) with representative centre wavelengths (µm).
_COMMON: dict[str, float] = {
    "coastal": 0.443,
    "blue": 0.490,
    "green": 0.560,
    "yellow": 0.600,
    "red": 0.665,
    "rededge071": 0.705,
    "rededge075": 0.740,
    "rededge078": 0.783,
    "nir": 0.842,
    "nir08": 0.865,
    "nir09": 0.945,
    "cirrus": 1.375,
    "swir16": 1.610,
    "swir22": 2.190,
    "pan": 0.590,
    "lwir11": 10.9,
    "lwir12": 12.0,
}

_SENTINEL2 = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge071",
    "B06": "rededge075", "B07": "rededge078", "B08": "nir", "B8A": "nir08", "B09": "nir09",
    "B10": "cirrus", "B11": "swir16", "B12": "swir22",
}
_LANDSAT_OLI = {  # Landsat 8/9 OLI/TIRS
    "B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "nir08", "B6": "swir16",
    "B7": "swir22", "B8": "pan", "B9": "cirrus", "B10": "lwir11", "B11": "lwir12",
}
_LANDSAT_TM = {  # Landsat 4/5 TM and 7 ETM+
    "B1": "blue", "B2": "green", "B3": "red", "B4": "nir08", "B5": "swir16", "B6": "lwir11",
    "B7": "swir22", "B8": "pan",
}
_SENSORS: dict[str, dict[str, str]] = {
    "sentinel2": _SENTINEL2,
    "landsat8": _LANDSAT_OLI,
    "landsat9": _LANDSAT_OLI,
    "landsat7": _LANDSAT_TM,
    "landsat5": _LANDSAT_TM,
}
_WORDS = {
    "r": "red", "g": "green", "b": "blue", "n": "nir", "ir": "nir",
    "near_infrared": "nir", "nearinfrared": "nir", "infrared": "nir",
    "rededge": "rededge071", "rededge1": "rededge071", "rededge2": "rededge075",
    "rededge3": "rededge078", "nir2": "nir08", "narrow_nir": "nir08", "water_vapour": "nir09",
    "water_vapor": "nir09", "swir1": "swir16", "swir2": "swir22", "panchromatic": "pan",
    "thermal": "lwir11", "tir": "lwir11", "lwir": "lwir11",
}


def _sentinel2_key(name: str) -> str | None:
    m = re.fullmatch(r"B0?(\d{1,2}|8A)", name.upper())
    if not m:
        return None
    num = m.group(1)
    key = "B8A" if num == "8A" else f"B{int(num):02d}"
    return key if key in _SENTINEL2 else None


def _landsat_key(name: str) -> str | None:
    m = re.fullmatch(r"(?:SR_|ST_)?B0?(\d{1,2})", name.upper())
    return f"B{int(m.group(1))}" if m else None


def resolve(name: str, sensor: str | None = None) -> Band:
    """Map a user's or a file's band name to the canonical band; raise BandError if unknown."""
    raw = name.strip()
    if ":" in raw:
        sensor, raw = raw.split(":", 1)
    lowered = raw.lower().replace("-", "_").replace(" ", "_")
    if lowered in _COMMON:
        return Band(lowered, _COMMON[lowered])
    if lowered in _WORDS:
        common = _WORDS[lowered]
        return Band(common, _COMMON[common])
    wl = re.fullmatch(r"(?:wl|lambda)?_?(\d+(?:\.\d+)?)\s*(nm|um|µm)", lowered)
    if wl:
        value = float(wl.group(1)) / (1000.0 if wl.group(2) == "nm" else 1.0)
        return wavelength_band(value)
    sensor_key = (sensor or "sentinel2").lower().replace("-", "").replace("_", "")
    if sensor_key not in _SENSORS:
        raise BandError(f"unknown sensor {sensor!r} in band name {name!r}; known: {', '.join(_SENSORS)}")
    table = _SENSORS[sensor_key]
    key = _sentinel2_key(raw) if table is _SENTINEL2 else _landsat_key(raw)
    if key is not None and key in table:
        common = table[key]
        return Band(common, _COMMON[common])
    raise BandError(
        f"unknown band name {name!r}: use a Sentinel-2 name (B04, B8A), a STAC common name "
        f"(red, nir, swir16), a sensor-prefixed name (landsat8:B5) or a wavelength (665nm)"
    )


def wavelength_band(micrometres: float) -> Band:
    """A hyperspectral band named by its centre wavelength, rounded to 1 nm."""
    nm = round(micrometres * 1000.0)
    return Band(f"wl{nm}nm", nm / 1000.0)


_UNITS_TO_UM = {"nm": 1e-3, "nanometers": 1e-3, "nanometres": 1e-3, "nanometer": 1e-3,
                "um": 1.0, "µm": 1.0, "micrometers": 1.0, "micrometres": 1.0, "micrometer": 1.0,
                "microns": 1.0, "micron": 1.0, "mm": 1e3, "millimeters": 1e3}


def wavelength_from_metadata(value: str | float, units: str | None) -> Band:
    """A band from a file's ``wavelength`` / ``wavelength_units`` metadata (ENVI, HSI GeoTIFFs).

    Without units, a value above 100 is read as nanometres and one below as micrometres, the
    only two conventions in use for optical bands.
    """
    try:
        number = float(str(value).strip())
    except ValueError:
        raise BandError(f"band wavelength {value!r} is not a number") from None
    if units:
        key = units.strip().lower()
        if key not in _UNITS_TO_UM:
            raise BandError(f"unknown wavelength units {units!r}; use nm or um")
        return wavelength_band(number * _UNITS_TO_UM[key])
    return wavelength_band(number / 1000.0 if number > 100 else number)


def resolve_all(names: list[str], sensor: str | None = None) -> list[Band]:
    """Resolve a list of band names, rejecting duplicates (two names for one band)."""
    bands = [resolve(n, sensor) for n in names]
    seen: dict[str, str] = {}
    for given, band in zip(names, bands):
        if band.name in seen:
            raise BandError(
                f"duplicate band: {seen[band.name]!r} and {given!r} both name {band.name!r}"
            )
        seen[band.name] = given
    return bands


def parse_band_list(text: str) -> list[str]:
    """Split a ``--bands B4,B3,B2,B8`` option into names."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BandError("--bands is empty: give the scene's bands in file order, e.g. B4,B3,B2,B8")
    return names


RGB_CENTRES_NM = {"red": 665.0, "green": 560.0, "blue": 490.0}
RGB_REACH_NM = 40.0  # how far from its colour's centre a band may be and still stand in for it
VISIBLE_NM = (380.0, 750.0)


def rgb_indices(bands: Sequence[Band]) -> list[int]:
    """Positions of the bands the depth model reads as R, G, B.

    A band named red/green/blue is that colour; otherwise the visible band nearest 665, 560 or
    490 nm is, if it lies within ±40 nm (a hyperspectral cube names its bands by wavelength).
    """
    position = {b.name: i for i, b in enumerate(bands)}
    chosen: list[int] = []
    for colour, centre in RGB_CENTRES_NM.items():
        if colour in position:
            chosen.append(position[colour])
            continue
        visible = [(abs(b.wavelength * 1000.0 - centre), i) for i, b in enumerate(bands)
                   if b.wavelength is not None and VISIBLE_NM[0] <= b.wavelength * 1000.0 <= VISIBLE_NM[1]]
        if not visible or min(visible)[0] > RGB_REACH_NM:
            have = ", ".join(b.name for b in bands)
            raise BandError(
                f"the depth model needs a {colour} band: name one {colour!r} or give a band within "
                f"±{RGB_REACH_NM:g} nm of {centre:g} nm (bands: {have})")
        chosen.append(min(visible)[1])
    return chosen


DEFAULT_TOLERANCE_NM = 5.0  # predict's --wavelength-tolerance: another sensor's band centres
SAME_BAND_NM = 1.0  # a centre within 1 nm of a band's names that band: training's --bands 665nm is red


@dataclass(frozen=True)
class BandMatch:
    """Which scene band stands for a model band, and how far apart their centres are (nm)."""

    model: Band
    index: int
    scene: Band
    offset_nm: float = 0.0


def _offset_nm(a: Band, b: Band) -> float:
    assert a.wavelength is not None and b.wavelength is not None
    return (b.wavelength - a.wavelength) * 1000.0


def match_bands(scene: Sequence[Band | None], model: Sequence[Band],
                tolerance_nm: float = DEFAULT_TOLERANCE_NM, advice: str = "") -> list[BandMatch]:
    """Scene band for every model band: by name, else the nearest centre within the tolerance.

    The one band-matching rule: predict calls it with ``--wavelength-tolerance``, training with
    ``SAME_BAND_NM`` (so ``665nm`` and ``red`` are one band). BandError (exit 3) names every model
    band without a match and, for the first ones, the nearest scene band; ``advice`` (the
    caller's options) ends the message when a tolerance decided.
    """
    position = {b.name: i for i, b in enumerate(scene) if b is not None}
    optical = [(i, b) for i, b in enumerate(scene) if b is not None and b.wavelength is not None]
    matches: list[BandMatch] = []
    missing: list[str] = []
    nearest_text: list[str] = []
    for wanted in model:
        if wanted.name in position:
            matches.append(BandMatch(wanted, position[wanted.name], wanted))
            continue
        if wanted.wavelength is None or not optical:
            missing.append(wanted.name)
            continue
        index, nearest = min(optical, key=lambda ib: abs(_offset_nm(wanted, ib[1])))
        offset = _offset_nm(wanted, nearest)
        if abs(offset) > tolerance_nm + 1e-6:  # µm to nm is not exact: 666 - 665 nm is 1.0000000000000009
            missing.append(wanted.name)
            nearest_text.append(f"{wanted.name} ({wanted.wavelength * 1000:g} nm): the nearest is "
                                f"{nearest.name}, {offset:+.1f} nm off")
            continue
        if any(m.index == index for m in matches):
            raise BandError(f"scene band {nearest.name} would stand for two model bands within "
                            f"the {tolerance_nm:g} nm tolerance{advice}")
        matches.append(BandMatch(wanted, index, nearest, offset))
    if missing:
        names = ", ".join(missing[:8]) + (f" (+{len(missing) - 8} more)" if len(missing) > 8 else "")
        if nearest_text:
            shown = "; ".join(nearest_text[:3]) + ("; ..." if len(nearest_text) > 3 else "")
            why = f": {shown}; beyond the {tolerance_nm:g} nm tolerance{advice}"
        else:
            why = f" (scene has: {', '.join(b.name if b else '?' for b in scene)})"
        raise BandError(f"the scene lacks band(s) {names} that the model needs{why}")
    return matches
