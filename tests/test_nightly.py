"""The nightly job's maps: cloud masks, local-asset opt-in and test-time augmentation.

The STAC tests run against real servers on 127.0.0.1 (rustac for the API, nginx for the COGs)
over ``cloud_world``: two items of one day across 12°E, each with a 20 m SCL holding clouds.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cloud_world
import numpy as np
import pytest
import rasterio
import torch
from checkpoints import make_checkpoint, reflectance_checkpoint
from helpers import assert_one_line_error, write_geotiff
from served_world import predict
from stac_servers import servers_needed

from spectralmoe_cli.checkpoint import read_metadata
from spectralmoe_cli.engine.runtime.inference import TileModel
from spectralmoe_cli.engine.runtime.tta import averaged
from spectralmoe_cli.errors import UsageError
from spectralmoe_cli.io.masks import MaskSpec, parse_mask

BANDS = ["red", "green", "blue", "nir"]
DAY = ("--datetime", "2024-06-01/2024-06-01")


@pytest.fixture(scope="module")
def cloudy(tmp_path_factory):
    with cloud_world.CloudServers(tmp_path_factory.mktemp("cloud_world")) as started:
        yield started


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return reflectance_checkpoint(tmp_path_factory.mktemp("ckpt"), BANDS)


def only_result(completed: subprocess.CompletedProcess) -> dict:
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout)["results"]
    assert len(results) == 1
    return results[0]


def read_cog(result: dict) -> np.ndarray:
    with rasterio.open(result["outputs"]["cog"]) as cog:
        return cog.read(1)


# --- masks ---------------------------------------------------------------------------------

def test_mask_specs_parse():
    assert parse_mask(None) == MaskSpec("auto") == parse_mask("auto")
    assert parse_mask("none") == MaskSpec("none")
    assert parse_mask("scl:0,1,3,8,9,10,11").scl_rule().values == (0, 1, 3, 8, 9, 10, 11)
    assert parse_mask("scl").scl_rule().values == (0, 1, 3, 8, 9, 10)
    assert parse_mask("qa_pixel").qa_rule().bits == (0, 1, 2, 3, 4)
    assert parse_mask("band:cloud:1,2") == MaskSpec("band", "cloud", (1, 2))
    assert parse_mask("/data/mask.tif:3") == MaskSpec("file", "/data/mask.tif", (3,))
    assert parse_mask("/data/mask.tif") == MaskSpec("file", "/data/mask.tif", None)
    with pytest.raises(UsageError):
        parse_mask("scl:cloudy")
    qa = parse_mask("qa_pixel").qa_rule()
    # fill, dilated cloud, cirrus, cloud, shadow; bit 6 (clear) and bit 7 (water) are kept
    np.testing.assert_array_equal(qa.invalid(np.array([1, 2, 4, 8, 16, 64, 128, 21824])),
                                  [True] * 5 + [False] * 3)


@servers_needed
@pytest.mark.slow
def test_scl_clouds_are_nodata_and_reported(cloudy, ckpt, tmp_path):
    for item_id in cloud_world.ITEMS:
        masked = only_result(predict(ckpt, tmp_path / "auto", cloudy.item_url(item_id),
                                     "--chunk", "96"))
        plain = only_result(predict(ckpt, tmp_path / "none", cloudy.item_url(item_id),
                                    "--mask", "none", "--chunk", "96"))
        got, unmasked = read_cog(masked), read_cog(plain)
        clouds = cloud_world.cloud_pixels(item_id)
        assert got.shape == clouds.shape
        np.testing.assert_array_equal(got == 255, clouds)  # 255 under clouds, valid beside them
        assert not (unmasked == 255).any()
        assert masked["name"] != plain["name"]
        assert masked["masked_fraction"] == pytest.approx(clouds.mean(), abs=1e-6)
        assert plain["masked_fraction"] is None
        item = json.loads(Path(masked["outputs"]["item"]).read_text())
        assert item["properties"]["spectralmoe:masked_fraction"] == masked["masked_fraction"]
        assert "spectralmoe:masked_fraction" not in json.loads(
            Path(plain["outputs"]["item"]).read_text())["properties"]
        # far from the clouds (beyond a tile) the map is the unmasked one
        far = np.ones_like(clouds)
        rows, cols = np.nonzero(clouds)
        far[max(rows.min() - 64, 0):rows.max() + 64, max(cols.min() - 64, 0):cols.max() + 64] = 0
        np.testing.assert_array_equal(got[far.astype(bool)], unmasked[far.astype(bool)])


@servers_needed
@pytest.mark.slow
def test_scl_mask_with_snow_and_a_missing_scl_is_an_input_error(cloudy, ckpt, tmp_path):
    # every SCL value of this world (4 = vegetation) masked: nothing left to predict
    everything = only_result(predict(ckpt, tmp_path / "all", cloudy.item_url("S2C_WEST"),
                                     "--mask", "scl:3,4,9"))
    assert (read_cog(everything) == 255).all() and everything["masked_fraction"] == 1.0
    missing = predict(ckpt, tmp_path / "qa", cloudy.item_url("S2C_WEST"), "--mask", "qa_pixel")
    assert_one_line_error(missing, 3, "qa_pixel")


def test_mask_file_on_a_coarser_grid_and_mask_none_on_a_raster(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    rng = np.random.default_rng(3)
    scene = write_geotiff(tmp_path / "scene.tif", rng.integers(0, 255, (4, 100, 120), dtype=np.uint8))
    coarse = np.zeros((50, 60), np.uint8)
    coarse[10:20, 5:25] = 7
    coarse[30:35, 40:50] = 1
    write_geotiff(tmp_path / "mask.tif", coarse,
                  transform=rasterio.Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 5000000.0))
    base = ["--bands", ",".join(BANDS), "--tile", "32", "--overlap", "8"]
    masked = only_result(predict(ckpt, tmp_path / "a", scene, *base, "--mask",
                                 f"{tmp_path / 'mask.tif'}:7"))
    expected = (coarse == 7).repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(read_cog(masked) == 255, expected)
    # without values: every nonzero value is masked
    nonzero = only_result(predict(ckpt, tmp_path / "b", scene, *base, "--mask",
                                  str(tmp_path / "mask.tif")))
    np.testing.assert_array_equal(read_cog(nonzero) == 255,
                                  (coarse != 0).repeat(2, axis=0).repeat(2, axis=1))
    # a raster has no mask of its own: auto and none give the same name and the same bytes
    auto = only_result(predict(ckpt, tmp_path / "c", scene, *base))
    none = only_result(predict(ckpt, tmp_path / "d", scene, *base, "--mask", "none"))
    assert auto["name"] == none["name"]
    assert Path(auto["outputs"]["cog"]).read_bytes() == Path(none["outputs"]["cog"]).read_bytes()
    assert auto["masked_fraction"] is None
    bad = predict(ckpt, tmp_path / "e", scene, *base, "--mask", "scl")
    assert_one_line_error(bad, 2, "--mask scl")


# --- local assets ----------------------------------------------------------------------------

@servers_needed
def test_local_asset_hrefs_need_the_opt_in_and_still_may_not_escape(cloudy, ckpt, tmp_path):
    url = cloudy.item_url("S2C_WEST", "onprem")
    refused = predict(ckpt, tmp_path / "a", url, "--tile", "64", "--chunk", "192")
    assert_one_line_error(refused, 3, "asset hrefs must be http(s) or s3 URLs")
    allowed = only_result(predict(ckpt, tmp_path / "b", url, "--allow-local-assets"))
    served = only_result(predict(ckpt, tmp_path / "c", cloudy.item_url("S2C_WEST")))
    np.testing.assert_array_equal(read_cog(allowed), read_cog(served))
    escape = predict(ckpt, tmp_path / "d", cloudy.item_url("S2C_UP", "onprem"),
                     "--allow-local-assets")
    assert_one_line_error(escape, 3, "climbs out of its folder")


# --- test-time augmentation ------------------------------------------------------------------

class _Head(torch.nn.Module):
    def to_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(1)


class _Pixelwise(torch.nn.Module):
    """A per-pixel model (1x1 convolution): equivariant to every flip and rotation."""

    def __init__(self, channels: int, classes: int, kernel: int = 1):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(channels, classes, kernel, padding=kernel // 2)
        self.head = _Head()

    def forward(self, x: torch.Tensor):
        return self.conv(x), None


def _tile_model(tmp_path: Path, net: torch.nn.Module, tta: str) -> TileModel:
    meta = read_metadata(make_checkpoint(tmp_path / "meta.safetensors"))
    return TileModel(net, meta, torch.device("cpu"), 2, True, tta=tta)


def test_tta_of_an_equivariant_model_is_the_plain_map_and_of_another_is_not(tmp_path):
    rng = np.random.default_rng(0)
    tiles = rng.normal(100, 50, (3, 4, 16, 16)).astype(np.float32)
    valid = np.ones((3, 16, 16), bool)
    plain = _tile_model(tmp_path, _Pixelwise(4, 3), "none").probabilities(tiles, valid)
    for mode in ("flip", "d4"):
        got = _tile_model(tmp_path, _Pixelwise(4, 3), mode).probabilities(tiles, valid)
        torch.testing.assert_close(got, plain, rtol=0, atol=1e-6)
    # a 3x3 convolution sees its neighbours in one orientation: averaging changes it
    wide = _tile_model(tmp_path, _Pixelwise(4, 3, kernel=3), "none").probabilities(tiles, valid)
    d4 = _tile_model(tmp_path, _Pixelwise(4, 3, kernel=3), "d4").probabilities(tiles, valid)
    assert (wide - d4).abs().max() > 1e-3


def test_tta_transforms_come_back_onto_the_tile():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    seen = []

    def run(t: torch.Tensor) -> torch.Tensor:
        seen.append(t)
        return t
    for mode, n in (("none", 1), ("flip", 3), ("d4", 8)):
        seen.clear()
        torch.testing.assert_close(averaged(run, x, mode), x)
        assert len(seen) == n and len({tuple(s.flatten().tolist()) for s in seen}) == n


@pytest.mark.slow
def test_tta_d4_is_deterministic_over_chunks_and_named_apart(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.safetensors")
    rng = np.random.default_rng(5)
    scene = write_geotiff(tmp_path / "scene.tif", rng.integers(0, 255, (4, 90, 110), dtype=np.uint8))
    base = ["--bands", ",".join(BANDS), "--tile", "32", "--overlap", "8"]
    small = only_result(predict(ckpt, tmp_path / "a", scene, *base, "--tta", "d4", "--chunk", "48"))
    large = only_result(predict(ckpt, tmp_path / "b", scene, *base, "--tta", "d4", "--chunk", "200"))
    plain = only_result(predict(ckpt, tmp_path / "c", scene, *base))
    np.testing.assert_array_equal(read_cog(small), read_cog(large))
    assert small["name"] == large["name"] != plain["name"]
    assert not np.array_equal(read_cog(small), read_cog(plain))
    item = json.loads(Path(small["outputs"]["item"]).read_text())
    assert item["properties"]["spectralmoe:settings"]["tta"] == "d4"
    bad = predict(ckpt, tmp_path / "d", scene, *base, "--tta", "d8")
    assert_one_line_error(bad, 2, "--tta")


# --- polygons --------------------------------------------------------------------------------

def read_polygons(path: Path) -> list[tuple[int, str, float, bytes]]:
    import pyogrio.raw

    meta, _, geometry, fields = pyogrio.raw.read(str(path))
    assert list(meta["fields"]) == ["class", "name", "area_m2"]
    return sorted(zip(fields[0].tolist(), fields[1].tolist(), fields[2].tolist(),
                      [bytes(g) for g in geometry]))


@pytest.mark.slow
def test_polygons_match_the_raster_and_do_not_depend_on_the_chunks(tmp_path):
    import shapely

    ckpt = make_checkpoint(tmp_path / "m.safetensors", class_names=["water", "trees", "roofs"],
                           mean=128.0, std=30.0)
    rng = np.random.default_rng(8)
    yy, xx = np.mgrid[0:110, 0:130]
    smooth = np.stack([128 + 100 * np.sin(yy / (6.0 + b)) * np.cos(xx / (9.0 - b))
                       for b in range(4)])
    data = (smooth + rng.normal(0, 10, (4, 110, 130))).clip(1, 255).astype(np.uint8)
    data[:, 60:75, 20:50] = 0
    scene = write_geotiff(tmp_path / "scene.tif", data, nodata=0,
                          transform=rasterio.Affine(2.0, 0.0, 600000.0, 0.0, -2.0, 5100000.0))
    base = ["--bands", ",".join(BANDS), "--tile", "32", "--overlap", "8", "--format", "cog,gpkg"]
    chunked = only_result(predict(ckpt, tmp_path / "a", scene, *base, "--chunk", "72"))
    whole = only_result(predict(ckpt, tmp_path / "b", scene, *base, "--chunk", "400"))
    classes = read_cog(chunked)
    np.testing.assert_array_equal(classes, read_cog(whole))
    polygons = read_polygons(chunked["outputs"]["gpkg"])
    assert polygons == read_polygons(whole["outputs"]["gpkg"])  # no seam: same polygons
    with rasterio.open(chunked["outputs"]["cog"]) as cog:
        assert cog.crs.to_epsg() == 32632
    for value, name in enumerate(["water", "trees", "roofs"]):
        raster_area = (classes == value).sum() * 4.0
        mine = [p for p in polygons if p[0] == value]
        assert all(p[1] == name for p in mine)
        geoms = [shapely.from_wkb(p[3]) for p in mine]
        assert sum(g.area for g in geoms) == pytest.approx(raster_area, rel=0.01)
        assert sum(p[2] for p in mine) == pytest.approx(raster_area, rel=1e-9)
        assert all(g.is_valid and g.geom_type == "Polygon" for g in geoms)
    assert len({p[0] for p in polygons}) >= 2 and all(p[0] != 255 for p in polygons)
    item = json.loads(Path(chunked["outputs"]["item"]).read_text())
    assert item["assets"]["polygons_gpkg"]["href"] == f"./{Path(chunked['outputs']['gpkg']).name}"

    small = min(p[2] for p in polygons)
    pruned = only_result(predict(ckpt, tmp_path / "c", scene, *base, "--min-area", str(small + 1),
                                 "--simplify", "3"))
    kept = read_polygons(pruned["outputs"]["gpkg"])
    assert pruned["name"] != chunked["name"]
    assert 0 < len(kept) < len(polygons) and min(p[2] for p in kept) > small
    assert all(shapely.from_wkb(p[3]).is_valid for p in kept)
