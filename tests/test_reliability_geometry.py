"""Coordinates are never silently wrong: rotated GeoTIFFs, south-up and irregular Zarr stores.

Real files written by rasterio and xarray; the map's georeferencing and its STAC item's
footprint are compared with what the input says, corner by corner.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from checkpoints import make_checkpoint
from helpers import assert_one_line_error, run_cli
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


def _zarr_scene(path: Path, flip: tuple[str, ...] = (), x: list[float] | None = None) -> Path:
    """A Zarr store written by rioxarray, its rows/columns stored the other way round along
    ``flip`` (coordinates and values together: the same ground, stored south-up or east-west)."""
    tif = write_scene(path.with_suffix(".tif"), smooth_field(40, 60, 4))
    da = rioxarray.open_rasterio(tif).isel({axis: slice(None, None, -1) for axis in flip})
    if x is not None:
        da = da.assign_coords(x=x)
    da.to_dataset(name="reflectance").to_zarr(path, zarr_format=2)
    return path


def _predict(scene: Path, ckpt: Path, out: Path):
    result = run_cli("predict", scene, "--checkpoint", ckpt, "--bands", BANDS, *SMALL,
                     "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    return result, json.loads(result.stdout)["results"][0]["outputs"]["cog"]


@pytest.mark.slow
@pytest.mark.parametrize("flip, words", [(("y",), "south-up"), (("x",), "east-to-west"),
                                         (("y", "x"), "south-up and east-to-west")])
def test_a_zarr_stored_the_other_way_round_is_mapped_north_up_where_it_lies(ckpt, tmp_path,
                                                                             flip, words):
    north = _zarr_scene(tmp_path / "north.zarr")
    other = _zarr_scene(tmp_path / "other.zarr", flip)
    _, expected_cog = _predict(north, ckpt, tmp_path / "a")
    result, cog_path = _predict(other, ckpt, tmp_path / "b")
    assert f"{other} is {words}; mapped north-up" in result.stderr
    with rasterio.open(expected_cog) as expected, rasterio.open(cog_path) as cog:
        assert cog.transform == expected.transform and cog.bounds == expected.bounds
        assert (cog.read(1) == expected.read(1)).all()
        # the pixel centres are the input's coordinates, flipped
        stored = xr.open_zarr(other)
        centres = [cog.transform @ (col + 0.5, 0.5) for col in range(cog.width)]
        assert [c[0] for c in centres] == sorted(stored["x"].values.tolist())
        rows = [(cog.transform @ (0.5, row + 0.5))[1] for row in range(cog.height)]
        assert rows == sorted(stored["y"].values.tolist(), reverse=True)


def test_a_zarr_with_irregular_x_spacing_is_exit_3_and_writes_nothing(ckpt, tmp_path):
    x = [500005.0 + 10 * i for i in range(60)]
    x[30:] = [v + 4 for v in x[30:]]  # one gap 14 m wide among 10 m steps
    store = _zarr_scene(tmp_path / "irregular.zarr", x=x)
    out = tmp_path / "out"
    result = run_cli("predict", store, "--checkpoint", ckpt, "--bands", BANDS, *SMALL,
                     "--out", out)
    assert_one_line_error(result, 3, str(store), "x coordinates are not evenly spaced")
    assert not list(out.glob("*.tif")) and not list(out.glob("*.zarr*"))
