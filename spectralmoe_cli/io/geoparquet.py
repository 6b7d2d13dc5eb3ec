"""GeoParquet 1.1 files of class polygons, written with pyarrow (pyogrio's GDAL may lack the
Parquet driver): geometry as WKB, the ``geo`` file metadata (CRS as PROJJSON, bounding box)
added once the last row is written, so the file is written in one pass, batch by batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from rasterio.crs import CRS

GEOPARQUET_VERSION = "1.1.0"
SCHEMA = pa.schema([("class", pa.int32()), ("name", pa.string()), ("area_m2", pa.float64()),
                    ("geometry", pa.binary())])
ROW_GROUP = 65536  # rows buffered before a row group is written: few, large groups read fast


def geo_metadata(crs: CRS | None, bbox: list[float] | None) -> dict[str, Any]:
    """The ``geo`` metadata: a map without CRS says so (``crs: null``), since a missing ``crs``
    would mean longitude/latitude (OGC:CRS84) to a reader."""
    column: dict[str, Any] = {"encoding": "WKB", "geometry_types": ["Polygon"],
                              "crs": crs.to_dict(projjson=True) if crs is not None else None}
    if bbox is not None:
        column["bbox"] = bbox
    return {"version": GEOPARQUET_VERSION, "primary_column": "geometry",
            "columns": {"geometry": column}}


class GeoParquetWriter:
    """Appends (class, name, geometry, area) features to one GeoParquet file."""

    def __init__(self, path: Path, crs: CRS | None):
        self.crs = crs
        # no ARROW:schema copy: pyarrow would read the schema's metadata from it and never see
        # the ``geo`` key added at the end
        self.writer = pq.ParquetWriter(str(path), SCHEMA, compression="zstd",
                                        store_schema=False)
        self.rows: list[tuple[int, str, bytes, float]] = []
        self.bounds: list[float] | None = None
        self.count = 0

    def write(self, features: list[tuple[int, str, shapely.Geometry, float]]) -> None:
        if not features:
            return
        geoms = [g for _, _, g, _ in features]
        left, bottom, right, top = shapely.total_bounds(geoms).tolist()
        if self.bounds is not None:
            left, bottom = min(left, self.bounds[0]), min(bottom, self.bounds[1])
            right, top = max(right, self.bounds[2]), max(top, self.bounds[3])
        self.bounds = [left, bottom, right, top]
        self.rows.extend((v, n, shapely.to_wkb(g), a) for v, n, g, a in features)
        self.count += len(features)
        if len(self.rows) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        value, name, wkb, area = zip(*self.rows)
        self.writer.write_table(pa.table([pa.array(value, pa.int32()), pa.array(name, pa.string()),
                                          pa.array(area, pa.float64()),
                                          pa.array(wkb, pa.binary())], schema=SCHEMA))
        self.rows = []

    def close(self) -> None:
        if self.rows:
            self._flush()
        self.writer.add_key_value_metadata({"geo": json.dumps(geo_metadata(self.crs,
                                                                           self.bounds))})
        self.writer.close()
