"""Class polygons from a finished class map: GeoPackage (pyogrio), merged across chunk seams.

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

VECTOR_FORMATS = {"gpkg": "GPKG"}
_FIELDS = ["class", "name", "area_m2"]


def _final(geom: shapely.Geometry, to_map: tuple[float, ...], simplify: float
           ) -> shapely.Geometry:
    """Pixel geometry -> map geometry, collinear vertices dropped, normalised."""
    geom = shapely.normalize(shapely.simplify(geom, 0.0))
    geom = shapely.affinity.affine_transform(geom, to_map)
    if simplify > 0:
        geom = shapely.normalize(geom.simplify(simplify, preserve_topology=True))
    return geom


class _LayerWriter:
    """Appends features to one layer of one file, batch by batch."""

    def __init__(self, path: Path, driver: str, crs: CRS | None, names: dict[int, str],
                 pixel_area: float, to_map: tuple[float, ...], min_area: float, simplify: float):
        self.path, self.driver, self.crs, self.names = path, driver, crs, names
        self.pixel_area, self.to_map = pixel_area, to_map
        self.min_area, self.simplify = min_area, simplify
        self.started = False
        self.count = 0

    def write(self, polygons: list[tuple[int, shapely.Geometry]]) -> None:
        rows = []
        for value, geom in polygons:
            area = geom.area * self.pixel_area
            if area < self.min_area:
                continue
            rows.append((value, _final(geom, self.to_map, self.simplify), area))
        if not rows and self.started:
            return
        geometry = np.array([shapely.to_wkb(g) for _, g, _ in rows], dtype=object)
        fields = [np.array([v for v, _, _ in rows], dtype=np.int32),
                  np.array([self.names.get(v, str(v)) for v, _, _ in rows], dtype=object),
                  np.array([a for _, _, a in rows], dtype=np.float64)]
        pyogrio.raw.write(str(self.path), geometry, fields, _FIELDS, layer="classes",
                          driver=self.driver, geometry_type="Polygon", promote_to_multi=False,
                          crs=self.crs.to_wkt() if self.crs is not None else None,
                          append=self.started)
        self.started = True
        self.count += len(rows)


def write_class_polygons(store: Path, out: Path, fmt: str, crs: CRS | None, transform: Affine,
                         classes: list[tuple[int, str, tuple[int, int, int]]],
                         min_area: float = 0.0, simplify: float = 0.0) -> int:
    """Polygons of every class of the store's map into ``out`` (atomically); their count."""
    array = zarr.open_group(str(store), mode="r")["classes"]
    height, width = array.shape
    step = array.chunks[0]
    count = 0

    def fill(tmp: Path) -> None:
        nonlocal count
        tmp.unlink()  # the GPKG driver creates its own file
        to_map = (transform.a, transform.b, transform.d, transform.e, transform.c, transform.f)
        writer = _LayerWriter(tmp, VECTOR_FORMATS[fmt], crs, {v: n for v, n, _ in classes},
                              abs(transform.a * transform.e - transform.b * transform.d), to_map,
                              min_area, simplify)
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
                writer.write(done)
        for value in sorted(open_parts):
            merged = shapely.union_all(open_parts.pop(value))
            writer.write([(value, part) for part in shapely.get_parts(merged)])
        if not writer.started:
            writer.write([])
        count = writer.count

    write_atomic(out, fill)
    return count
