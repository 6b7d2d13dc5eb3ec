"""STAC ``proj:`` properties of a grid: one helper for predicted maps, fetched clips and Zarr."""

from __future__ import annotations

from affine import Affine
from rasterio.crs import CRS

from spectralmoe_cli.io.proj import grid_bbox, proj_properties

UTM = CRS.from_epsg(32633)
T = Affine(10, 0, 500000, 0, -10, 4000000)


def test_an_epsg_grid_has_a_code_and_no_wkt():
    assert proj_properties(UTM, T, 60, 70) == {
        "proj:code": "EPSG:32633", "proj:shape": [60, 70],
        "proj:transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0],
        "proj:bbox": [500000.0, 3999400.0, 500700.0, 4000000.0]}


def test_a_crs_without_epsg_code_is_given_as_wkt2():
    custom = CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=13.3 +k=0.9996 +x_0=500000 +datum=WGS84")
    properties = proj_properties(custom, T, 60, 70)
    assert properties["proj:code"] is None
    assert CRS.from_wkt(properties["proj:wkt2"]) == custom


def test_a_grid_without_crs_has_neither_code_nor_wkt():
    properties = proj_properties(None, Affine.identity(), 3, 4)
    assert properties["proj:code"] is None and "proj:wkt2" not in properties
    assert properties["proj:bbox"] == [0.0, 0.0, 4.0, 3.0]


def test_the_bbox_is_min_then_max_whichever_way_the_grid_runs():
    south_up = Affine(10, 0, 500000, 0, 10, 4000000)
    assert grid_bbox(south_up, 60, 70) == [500000.0, 4000000.0, 500700.0, 4000600.0]
    assert grid_bbox(T, 60, 70) == [500000.0, 3999400.0, 500700.0, 4000000.0]
