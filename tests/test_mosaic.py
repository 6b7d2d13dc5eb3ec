"""``predict --mosaic``: one map per collection and solar day, items warped onto one grid.

Against real servers on 127.0.0.1 (rustac + nginx) over ``cloud_world`` built with uniform
48-pixel blocks of random band values: two items of one day across 12°E (EPSG:32632 and 32633),
each with a 20 m SCL holding a cloud block.

How "equal to the single-item map" is made exact: the class of a pixel depends on its tile and on
its place in the tile, and the mosaic's tiles do not line up with an item's (another origin, and
for the 32632 item another CRS, turned by 4.5°). So the model runs with ``--tile 16 --overlap 0``
(each pixel from one tile alone) over items made of uniform 48-pixel blocks, which on the item's
own grid hold exactly 3 x 3 whole tiles. A mosaic tile whose every pixel comes (nearest) from one
cloud-free block of the item that wins there sees the very input an item tile inside that block
sees: one spectrum, all valid. So each of its pixels must have the class of the item-map pixel at
the same place in a tile of that block. Only such tiles are compared, which makes the comparison
exact; the blocks' random spectra give several classes, so it is not trivially true.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cloud_world
import numpy as np
import pytest
import rasterio
from checkpoints import reflectance_checkpoint
from helpers import assert_one_line_error, write_geotiff
from rasterio.transform import from_origin, rowcol
from rasterio.warp import transform as transform_points
from scipy.ndimage import maximum_filter
from served_world import predict
from stac_servers import servers_needed

BANDS = ["red", "green", "blue", "nir"]
DAY = ("--datetime", "2024-06-01/2024-06-01")
BLOCK = 48
TILE = 16
TILING = ("--tile", str(TILE), "--overlap", "0", "--chunk", "128")


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    with cloud_world.CloudServers(tmp_path_factory.mktemp("block_world"), block=BLOCK) as started:
        yield started


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return reflectance_checkpoint(tmp_path_factory.mktemp("ckpt"), BANDS, tile=TILE, overlap=0,
                                  seed=3)


def results(completed: subprocess.CompletedProcess) -> list[dict]:
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)["results"]


def item_pixels(item_id: str, cog: rasterio.io.DatasetReader) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of the mosaic, the row and col of the item pixel under its centre."""
    crs, left, _, _ = cloud_world.ITEMS[item_id]
    rows, cols = np.mgrid[0:cog.height, 0:cog.width]
    xs, ys = cog.transform @ (cols.ravel() + 0.5, rows.ravel() + 0.5)
    ix, iy = transform_points(cog.crs, crs, xs, ys)
    r, c = rowcol(from_origin(left, cloud_world.TOP, 10, 10), ix, iy)
    return np.asarray(r).reshape(rows.shape), np.asarray(c).reshape(rows.shape)


def uniform_tiles(rows: np.ndarray, cols: np.ndarray, item_id: str, wins: np.ndarray
                  ) -> np.ndarray:
    """Mosaic pixels whose 16-pixel tile lies, whole, in one cloud-free block the item wins."""
    n = cloud_world.SIZE // BLOCK
    inside = (rows >= 0) & (rows < cloud_world.SIZE) & (cols >= 0) & (cols < cloud_world.SIZE)
    r, c = rows.clip(0, cloud_world.SIZE - 1), cols.clip(0, cloud_world.SIZE - 1)
    clouds = cloud_world.cloud_pixels(item_id).reshape(n, BLOCK, n, BLOCK).any(axis=(1, 3))
    block = np.where(inside & wins & ~clouds[r // BLOCK, c // BLOCK],
                     (r // BLOCK) * n + c // BLOCK, -1)
    # the last tile of a row or column is pulled back inside the map and overlaps its
    # neighbour (a blend of two tiles): only the tiles on the plain 16-pixel grid before it
    h, w = ((s // TILE - 1) * TILE for s in block.shape)
    tiles = block[:h, :w].reshape(h // TILE, TILE, w // TILE, TILE)
    whole = (tiles.min(axis=(1, 3)) == tiles.max(axis=(1, 3))) & (tiles.max(axis=(1, 3)) >= 0)
    out = np.zeros(block.shape, bool)
    out[:h, :w] = whole.repeat(TILE, axis=0).repeat(TILE, axis=1)
    return out


@servers_needed
@pytest.mark.slow
def test_one_map_per_day_across_utm_zones(blocks, ckpt, tmp_path):
    args = ("--stac", blocks.url, "--collection", "s2-clouds", "--bbox", blocks.bbox(), *DAY,
            "--mosaic", "--crs", "EPSG:32633", "--format", "cog,gpkg", *TILING)
    first = results(predict(ckpt, tmp_path / "mosaic", *args))
    assert len(first) == 1, "exactly one class map for the day"
    result = first[0]
    assert result["status"] == "done"
    assert result["name"].startswith("s2-clouds_2024-06-01_")
    assert Path(result["outputs"]["gpkg"]).is_file()
    item = json.loads(Path(result["outputs"]["item"]).read_text())
    links = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
    # least cloudy first: WEST (5 %) before EAST (20 %)
    assert links == [blocks.item_url("S2C_WEST"), blocks.item_url("S2C_EAST")]
    assert item["properties"]["proj:code"] == "EPSG:32633"

    singles = {}
    for item_id in cloud_world.ITEMS:
        only = results(predict(ckpt, tmp_path / "single", blocks.item_url(item_id), *TILING))
        with rasterio.open(only[0]["outputs"]["cog"]) as cog:
            singles[item_id] = cog.read(1)

    with rasterio.open(result["outputs"]["cog"]) as cog:
        assert cog.crs.to_epsg() == 32633
        assert cog.res == (10.0, 10.0)
        got = cog.read(1)
        where = {item_id: item_pixels(item_id, cog) for item_id in cloud_world.ITEMS}
    west_rows, west_cols = where["S2C_WEST"]
    west = ((west_rows >= 0) & (west_rows < cloud_world.SIZE) & (west_cols >= 0)
            & (west_cols < cloud_world.SIZE))
    compared, classes = 0, set()
    for item_id, (rows, cols) in where.items():
        # 255 under the item's clouds where no other item covers them, valid beside them
        clouds = cloud_world.cloud_pixels(item_id)
        inside = (rows >= 0) & (rows < cloud_world.SIZE) & (cols >= 0) & (cols < cloud_world.SIZE)
        r, c = rows.clip(0, cloud_world.SIZE - 1), cols.clip(0, cloud_world.SIZE - 1)
        under = inside & clouds[r, c]
        assert under.sum() > 100 and (got[under] == 255).all()
        beside = inside & ~maximum_filter(under, size=5) & maximum_filter(under, size=15)
        assert beside.sum() > 100 and (got[beside] != 255).all()
        # inside the item's footprint, where it wins, the map is the item's own
        wins = west if item_id == "S2C_WEST" else ~west
        same = uniform_tiles(rows, cols, item_id, wins)
        phase_r = (r[same] // BLOCK) * BLOCK + TILE + np.nonzero(same)[0] % TILE
        phase_c = (c[same] // BLOCK) * BLOCK + TILE + np.nonzero(same)[1] % TILE
        expected = singles[item_id][phase_r, phase_c]
        np.testing.assert_array_equal(got[same], expected)
        deep = same
        classes.update(np.unique(expected).tolist())
        compared += int(deep.sum())
    assert compared > 1000
    assert len(classes) > 1, "several classes: the comparison means something"

    again = results(predict(ckpt, tmp_path / "mosaic", *args))
    assert [(r["name"], r["status"]) for r in again] == [(result["name"], "skipped")]


@servers_needed
def test_mosaic_options_are_checked_at_the_boundary(blocks, ckpt, tmp_path):
    search = ("--stac", blocks.url, "--collection", "s2-clouds", *DAY)
    for args, words in [
        ((*search, "--bbox", blocks.bbox(), "--crs", "EPSG:32633"), "--mosaic"),
        ((*search, "--bbox", blocks.bbox(), "--resolution", "20"), "--mosaic"),
        ((*search, "--bbox", blocks.bbox(), "--mosaic", "--crs", "EPSG:999999"), "--crs"),
        ((*search, "--bbox", blocks.bbox(), "--mosaic", "--resolution", "-1"), "resolution"),
        ((blocks.item_url("S2C_WEST"), "--mosaic"), "AOI"),
    ]:
        assert_one_line_error(predict(ckpt, tmp_path, *args), 2, words)


def test_mosaic_of_two_rasters(ckpt, tmp_path):
    """Two rasters side by side in one CRS: one map over their union, each half its own."""
    rng = np.random.default_rng(3)
    paths = []
    for i, left in enumerate((500000.0, 500000.0 + 32 * 20)):
        data = np.repeat(np.repeat(rng.integers(1, 90, (4, 2, 2)), 16, axis=1), 16, axis=2)
        path = tmp_path / f"half{i}.tif"
        write_geotiff(path, (data / 100).astype(np.float32), crs="EPSG:32633",
                      transform=from_origin(left, 5300000.0, 20, 20))
        paths.append(path)
    out = tmp_path / "out"
    mosaic = results(predict(ckpt, out, *paths, "--mosaic", "--crs", "EPSG:32633",
                             "--resolution", "20", "--bands", ",".join(BANDS), *TILING))
    assert len(mosaic) == 1 and mosaic[0]["name"].startswith("mosaic_")
    with rasterio.open(mosaic[0]["outputs"]["cog"]) as cog:
        got = cog.read(1)
        assert cog.shape == (32, 64) and cog.crs.to_epsg() == 32633
    for i, path in enumerate(paths):
        single = results(predict(ckpt, out, path, "--bands", ",".join(BANDS), *TILING))
        with rasterio.open(single[0]["outputs"]["cog"]) as cog:
            np.testing.assert_array_equal(got[:, 32 * i:32 * (i + 1)], cog.read(1))


@pytest.mark.slow
def test_a_3x3_mosaic_peaks_like_one_item():
    """Memory follows the chunk, not the AOI: nine warped items in fresh processes peak within
    30 % of one (measured by the benchmark itself, 768² of mosaic in 128 px chunks)."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "mosaic_memory.py"
    done = subprocess.run([sys.executable, str(bench), "--size", "256", "--chunk", "128"],
                          capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    assert report["all_items"]["pixels"] > 8 * report["one_item"]["pixels"]
    assert report["ratio"] <= 1.3, report


def test_a_band_tagged_alpha_is_warped_as_data(ckpt, tmp_path):
    """A 4-band 8-bit GeoTIFF as rasterio writes it tags band 4 (here NIR, with zeros) as alpha.
    Warped into another CRS it must read as data: the same map as the file with no alpha tag."""
    data = np.random.default_rng(5).integers(0, 255, (4, 48, 48)).astype(np.uint8)
    data[3, :8] = 0
    maps = {}
    for name, options in (("rgba", {}), ("plain", {"photometric": "MINISBLACK"})):
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=48, height=48, count=4, dtype="uint8",
                           crs="EPSG:32632", transform=from_origin(830000.0, 5300000.0, 10, 10),
                           **options) as dst:
            dst.write(data)
        with rasterio.open(path) as src:
            assert (src.colorinterp[3].name == "alpha") == (name == "rgba")
        done = results(predict(ckpt, tmp_path / name, path, "--mosaic", "--crs", "EPSG:32633",
                               "--bands", ",".join(BANDS), *TILING))
        with rasterio.open(done[0]["outputs"]["cog"]) as cog:
            maps[name] = cog.read(1)
            assert cog.crs.to_epsg() == 32633
    # the grid holds the footprint turned into another zone: its corners lie outside it, 255
    assert (maps["plain"] != 255).sum() > 0.9 * 48 * 48 and (maps["plain"] == 255).sum() > 100
    np.testing.assert_array_equal(maps["rgba"], maps["plain"])
