"""Thin scenes: on an axis shorter than the tile, the tile is that axis rounded up to the patch,
so a strip's tiles are mostly real pixels (not 99% padding) and the map stays chunk-invariant."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import zarr
from checkpoints import make_checkpoint
from scenes import smooth_field, write_scene

from spectralmoe_cli.engine.predict.runner import run_predict
from spectralmoe_cli.engine.predict.settings import PredictSettings
from spectralmoe_cli.io.tiling import Grid, axis_origins, tile_weight

TILE, OVERLAP, PATCH = 64, 16, 16  # the tiny checkpoint's patch is 16
BANDS = ["red", "green", "blue", "nir"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def predict(scene: Path, ckpt: Path, out: Path, chunk: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """The summary, the class map and the blended probabilities."""
    settings = PredictSettings(bands=BANDS, tile=TILE, overlap=OVERLAP, chunk=chunk,
                               probabilities=True)
    summary = run_predict([str(scene)], ckpt, out, settings, device="cpu", progress=False)
    assert "error" not in summary, summary.get("error")
    outputs = summary["results"][0]["outputs"]
    with rasterio.open(outputs["cog"]) as cog:
        classes = cog.read(1)
    return summary, classes, zarr.open_group(outputs["zarr"], mode="r")["probabilities"][:]


@pytest.mark.parametrize("tile, height, width, expected", [
    (512, 5, 20000, (16, 512, 128)),  # a strip: 16-row tiles, the overlap along its length
    (512, 20000, 5, (512, 16, 128)),
    (512, 200, 200, (208, 208, 104)),  # a small square scene: as before, cut to the scene
    (512, 300, 200, (304, 208, 128)),
    (512, 4000, 4000, (512, 512, 128)),
])
def test_the_tile_is_cut_per_axis_to_the_patch(tile, height, width, expected):
    assert PredictSettings(tile=tile, overlap=128).scene_tiling(height, width, PATCH) == expected


def test_an_axis_one_tile_spans_is_not_tapered():
    grid = Grid(5, 3000, 16, TILE, TILE - OVERLAP)
    assert grid.rows() == [0] and grid.cols() == axis_origins(3000, TILE, TILE - OVERLAP)
    middle = tile_weight(grid, 0, grid.cols()[3], "hann")
    assert middle.shape == (16, TILE)
    assert (middle == middle[0]).all()  # every row alike: no taper across the strip
    assert middle[0, 0] < middle[0, TILE // 2]  # along it, the usual taper between tiles


@pytest.mark.slow
@pytest.mark.parametrize("height, width", [(5, 3000), (3000, 5)])
def test_a_strip_predicts_with_patch_sized_tiles_and_any_chunk(ckpt, tmp_path, caplog, height,
                                                               width):
    field = smooth_field(5, 3000, 4)  # the same values across either strip
    scene = write_scene(tmp_path / "strip.tif", field if height == 5 else field.transpose(0, 2, 1))
    maps, probabilities = [], []
    for chunk in (64, 4096):  # chunks of 96 along the strip, and one chunk for all of it
        with caplog.at_level(logging.INFO):
            summary, classes, probs = predict(scene, ckpt, tmp_path / f"c{chunk}", chunk)
        maps.append(classes)
        probabilities.append(probs)
    shape, sides = ("16x64", "rows") if height == 5 else ("64x16", "columns")
    assert f"larger than the {height}x{width} scene's {sides}; using {shape}" in caplog.text
    assert np.array_equal(maps[0], maps[1]) and np.array_equal(*probabilities)
    assert (maps[0] != 255).all() and len(np.unique(probabilities[0])) > 10  # a real map
    item = json.loads(Path(summary["results"][0]["outputs"]["item"]).read_text())
    assert item["properties"]["spectralmoe:settings"]["tile_shape"] == [int(n) for n in shape.split("x")]
    tiles = len(axis_origins(max(height, width), TILE, TILE - OVERLAP))
    assert summary["tiles"] == tiles
    # pixels inferred: the patch rounding (5 -> 16) and the overlap, not a 64x64 tile per 5x48
    assert tiles * 16 * TILE < 5 * height * width
