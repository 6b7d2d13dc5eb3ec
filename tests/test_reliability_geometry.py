"""Coordinates are never silently wrong: rotated GeoTIFFs, south-up and irregular Zarr stores.

Real files written by rasterio and xarray; the map's georeferencing and its STAC item's
footprint are compared with what the input says, corner by corner.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
from affine import Affine
from checkpoints import make_checkpoint
from helpers import run_cli
from rasterio.warp import transform as warp_points
from scenes import UTM, smooth_field, write_scene

BANDS = "red,green,blue,nir"
SMALL = ("--tile", "32", "--overlap", "8")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", tile=32, overlap=8)


def corners(transform: Affine, height: int, width: int) -> list[tuple[float, float]]:
    return [transform @ c for c in ((0, 0), (width, 0), (width, height), (0, height))]


def test_rotated_geotiff_item_footprint_uses_all_four_corners(ckpt, tmp_path):
    height, width = 40, 60
    rotated = Affine.translation(500000.0, 5200000.0) @ Affine.rotation(30.0) @ Affine.scale(10, -10)
    scene = write_scene(tmp_path / "rotated.tif", smooth_field(height, width, 4), transform=rotated)
    result = run_cli("predict", scene, "--checkpoint", ckpt, "--bands", BANDS, *SMALL,
                     "--out", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    item = json.loads(Path(json.loads(result.stdout)["results"][0]["outputs"]["item"]).read_text())

    xs, ys = zip(*corners(rotated, height, width))
    assert item["properties"]["proj:bbox"] == pytest.approx([min(xs), min(ys), max(xs), max(ys)])
    assert item["properties"]["proj:transform"] == pytest.approx(list(rotated)[:6])
    lons, lats = warp_points(UTM, "EPSG:4326", list(xs), list(ys))
    assert item["bbox"] == pytest.approx([min(lons), min(lats), max(lons), max(lats)], abs=1e-9)
    ring = item["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    for lon, lat in zip(lons, lats):  # every corner of the rotated grid is a vertex of the polygon
        assert min(abs(v[0] - lon) + abs(v[1] - lat) for v in ring) < 1e-8, (lon, lat)
    # and the polygon is the rotated one, not the axis-aligned box of two corners
    box = {(round(x, 6), round(y, 6)) for x in (min(lons), max(lons)) for y in (min(lats), max(lats))}
    assert not box & {(round(v[0], 6), round(v[1], 6)) for v in ring}
    with rasterio.open(json.loads(result.stdout)["results"][0]["outputs"]["cog"]) as cog:
        assert cog.transform.almost_equals(rotated)
