"""Class polygons from a finished class map, merged across chunk seams, into GeoPackage and/or
GeoParquet: one pipeline, computed once, handed to every format asked for.

The map is polygonised chunk by chunk (``rasterio.features.shapes``, 4-connected, in pixel
coordinates so every vertex is an exact integer). A polygon that does not touch an inner chunk
border is final and written at once; one that does is kept, and at the end the kept polygons of
each class are unioned (exact: every vertex is on the pixel lattice) so no seam line remains. Every
polygon then loses its collinear vertices and is normalised, so the same map gives the same
polygons whatever the chunking. Fields: ``class`` (int), ``name``, ``area_m2`` (the pixel area
of the polygon in squared map units: m² in a projected CRS). ``min_area`` drops smaller
polygons; ``simplify`` (map units) simplifies each polygon without breaking it.

Memory: one chunk of the map, plus the polygons that touch inner chunk borders.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import pyogrio.raw
import shapely
import shapely.affinity
import shapely.geometry
import zarr
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import shapes

from ..files import write_atomic
from ..labels import CLASS_MAP_NODATA
from .geoparquet import GeoParquetWriter

# format -> the media type its STAC asset carries
VECTOR_FORMATS = {"gpkg": "application/geopackage+sqlite3",
                  "parquet": "application/vnd.apache.parquet"}
FIELDS = ["class", "name", "area_m2"]
Feature = tuple[int, str, shapely.Geometry, float]  # class, name, geometry in map units, area


class _Writer(Protocol):
    count: int

    def write(self, features: list[Feature]) -> None: ...

    def close(self) -> None: ...


def _final(geom: shapely.Geometry, to_map: tuple[float, ...], simplify: float
           ) -> shapely.Geometry:
    """Pixel geometry -> map geometry, collinear vertices dropped, normalised."""
    geom = shapely.normalize(shapely.simplify(geom, 0.0))
    geom = shapely.affinity.affine_transform(geom, to_map)
    if simplify > 0:
        geom = shapely.normalize(geom.simplify(simplify, preserve_topology=True))
    return geom


class _GeoPackageWriter:
    """Appends features to the ``classes`` layer of one GeoPackage, batch by batch."""

    def __init__(self, path: Path, crs: CRS | None):
        path.unlink()  # the GPKG driver creates its own file
        self.path, self.crs = path, crs
        self.started = False
        self.count = 0

    def write(self, features: list[Feature]) -> None:
        if not features and self.started:
            return
        geometry = np.array([shapely.to_wkb(g) for _, _, g, _ in features], dtype=object)
        fields = [np.array([v for v, _, _, _ in features], dtype=np.int32),
                  np.array([n for _, n, _, _ in features], dtype=object),
                  np.array([a for _, _, _, a in features], dtype=np.float64)]
        pyogrio.raw.write(str(self.path), geometry, fields, FIELDS, layer="classes",
                          driver="GPKG", geometry_type="Polygon", promote_to_multi=False,
                          crs=self.crs.to_wkt() if self.crs is not None else None,
                          append=self.started)
        self.started = True
        self.count += len(features)

    def close(self) -> None:
        if not self.started:  # a map without classes: an empty layer, not a missing file
            self.write([])


_WRITERS: dict[str, Callable[[Path, CRS | None], _Writer]] = {
    "gpkg": _GeoPackageWriter, "parquet": GeoParquetWriter}


def class_features(store: Path, transform: Affine, names: dict[int, str], min_area: float = 0.0,
                   simplify: float = 0.0) -> Iterator[list[Feature]]:
    """The map's class polygons, one batch per chunk, then the merged seam polygons."""
    array = zarr.open_group(str(store), mode="r")["classes"]
    height, width = array.shape
    step = array.chunks[0]
    to_map = (transform.a, transform.b, transform.d, transform.e, transform.c, transform.f)
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)

    def finish(polygons: list[tuple[int, shapely.Geometry]]) -> list[Feature]:
        features = []
        for value, geom in polygons:
            area = geom.area * pixel_area
            if area >= min_area:
                features.append((value, names.get(value, str(value)),
                                 _final(geom, to_map, simplify), area))
        return features

    open_parts: dict[int, list[shapely.Geometry]] = defaultdict(list)
    for y0 in range(0, height, step):
        y1 = min(y0 + step, height)
        for x0 in range(0, width, step):
            x1 = min(x0 + step, width)
            block = np.asarray(array[y0:y1, x0:x1])
            done = []
            for geometry, value in shapes(block, mask=block != CLASS_MAP_NODATA, connectivity=4,
                                          transform=Affine.translation(x0, y0)):
                polygon = shapely.geometry.shape(geometry)
                left, top, right, bottom = polygon.bounds
                seam = (left == x0 > 0) or (top == y0 > 0) or (right == x1 < width) or \
                    (bottom == y1 < height)
                if seam:
                    open_parts[int(value)].append(polygon)
                else:
                    done.append((int(value), polygon))
            yield finish(done)
    for value in sorted(open_parts):
        merged = shapely.union_all(open_parts.pop(value))
        yield finish([(value, part) for part in shapely.get_parts(merged)])


def _atomically(outs: list[tuple[str, Path]], fill: Callable[[dict[str, Path]], None],
                tmps: dict[str, Path] | None = None) -> None:
    """``write_atomic`` for several files at once: ``fill`` gets one temporary path per format."""
    tmps = tmps or {}
    if not outs:
        fill(tmps)
        return
    (fmt, path), rest = outs[0], outs[1:]
    write_atomic(path, lambda tmp: _atomically(rest, fill, {**tmps, fmt: tmp}))


def write_class_polygons(store: Path, outs: dict[str, Path], crs: CRS | None, transform: Affine,
                         classes: list[tuple[int, str, tuple[int, int, int]]],
                         min_area: float = 0.0, simplify: float = 0.0) -> int:
    """Polygons of every class of the store's map into each of ``outs`` (format -> path,
    each atomically), computed once; their count."""
    count = 0

    def fill(tmps: dict[str, Path]) -> None:
        nonlocal count
        writers = [_WRITERS[fmt](tmp, crs) for fmt, tmp in tmps.items()]
        for batch in class_features(store, transform, {v: n for v, n, _ in classes}, min_area,
                                    simplify):
            for writer in writers:
                writer.write(batch)
        for writer in writers:
            writer.close()
        count = writers[0].count

    _atomically(sorted(outs.items()), fill)
    return count
