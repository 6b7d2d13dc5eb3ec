"""The area of interest: a lon/lat bounding box, optionally with the GeoJSON geometry it bounds.

Searches send the geometry when there is one (``intersects``), reads clip to its bounding box.
Validated here, once, so nothing downstream has to doubt the numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError

_GEOMETRY_TYPES = {"Polygon", "MultiPolygon"}


@dataclass(frozen=True)
class Aoi:
    """West, south, east, north in degrees (EPSG:4326) and the geometry, if one was given."""

    bbox: tuple[float, float, float, float]
    geometry: dict[str, Any] | None = None

    def search_args(self) -> dict[str, Any]:
        return {"intersects": self.geometry} if self.geometry else {"bbox": list(self.bbox)}


def _check_bbox(west: float, south: float, east: float, north: float, origin: str) -> None:
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise UsageError(f"{origin}: coordinates must be finite numbers")
    if not (-180 <= west <= 180 and -180 <= east <= 180
            and -90 <= south <= 90 and -90 <= north <= 90):
        raise UsageError(f"{origin}: longitudes must lie in [-180, 180] and latitudes in [-90, 90] "
                         f"(W,S,E,N in degrees, EPSG:4326)")
    if west >= east or south >= north:
        raise UsageError(f"{origin}: need W < E and S < N (W,S,E,N); an AOI across the "
                         f"antimeridian must be split into two runs")


def parse_bbox(text: str) -> Aoi:
    """``W,S,E,N`` in degrees."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise UsageError(f"--bbox: expected four numbers W,S,E,N in degrees, got {text!r}")
    _check_bbox(*values, origin="--bbox")
    return Aoi(bbox=(values[0], values[1], values[2], values[3]))


def _positions(coords: Any) -> list[tuple[float, float]]:
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)):
        if len(coords) < 2:
            raise ValueError("a position needs two numbers")
        return [(float(coords[0]), float(coords[1]))]
    if not isinstance(coords, (list, tuple)):
        raise ValueError("coordinates must be nested lists of numbers")
    return [p for c in coords for p in _positions(c)]


def load_intersects(path: str | Path) -> Aoi:
    """A GeoJSON file: a geometry, a Feature, or a FeatureCollection of exactly one Feature."""
    origin = f"--intersects {path}"
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"{origin}: cannot read the file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{origin}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
        if len(features) != 1:
            raise UsageError(f"{origin}: a FeatureCollection must hold exactly one Feature "
                             f"(it holds {len(features)}); merge them into one MultiPolygon")
        doc = features[0]
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        doc = doc.get("geometry")
    if not isinstance(doc, dict) or doc.get("type") not in _GEOMETRY_TYPES:
        raise UsageError(f"{origin}: expected a GeoJSON Polygon or MultiPolygon (bare, in a "
                         f"Feature, or in a FeatureCollection of one Feature)")
    try:
        points = _positions(doc.get("coordinates"))
    except ValueError as exc:
        raise UsageError(f"{origin}: bad coordinates ({exc})") from None
    if not points:
        raise UsageError(f"{origin}: the geometry has no coordinates")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    west, south, east, north = min(xs), min(ys), max(xs), max(ys)
    _check_bbox(west, south, east, north, origin)
    return Aoi(bbox=(west, south, east, north), geometry={"type": doc["type"],
                                                          "coordinates": doc["coordinates"]})
