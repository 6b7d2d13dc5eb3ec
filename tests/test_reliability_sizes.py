"""Sizes have bounds: a tile, chunk or crop too large for memory is exit 2 saying the limit and
writes nothing; a tile larger than the scene is cut to the scene and runs fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import rasterio
from checkpoints import make_checkpoint
from helpers import assert_one_line_error, potsdam_folder, run_cli
from scenes import smooth_field, write_scene

from spectralmoe_cli.engine.options import MAX_TILE

BANDS = "red,green,blue,nir"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors")


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / "s.tif", smooth_field(40, 50, 4))


@pytest.mark.parametrize("args, words", [
    (("--tile", "100000"), ("--tile 100000", f"16 to {MAX_TILE}")),
    (("--chunk", "1000000"), ("--chunk 1000000", "16 to 16384")),
])
def test_predict_sizes_beyond_the_bounds_are_refused(ckpt, small_scene, tmp_path, args, words):
    out = tmp_path / "out"
    result = run_cli("predict", small_scene, "--checkpoint", ckpt, "--bands", BANDS,
                     "--out", out, *args)
    assert_one_line_error(result, 2, *words)
    assert not out.exists()


def test_checkpoint_with_an_absurd_tile_is_refused(small_scene, tmp_path):
    absurd = make_checkpoint(tmp_path / "absurd.safetensors", tile=100000, overlap=16)
    out = tmp_path / "out"
    result = run_cli("predict", small_scene, "--checkpoint", absurd, "--bands", BANDS,
                     "--out", out)
    assert_one_line_error(result, 2, "the checkpoint's tile 100000", f"16 to {MAX_TILE}", "give --tile N")
    assert not out.exists()


def test_tile_larger_than_the_scene_is_cut_to_it_and_fast(ckpt, small_scene, tmp_path):
    start = time.monotonic()
    result = run_cli("predict", small_scene, "--checkpoint", ckpt, "--bands", BANDS,
                     "--tile", "4096", "--overlap", "0", "--out", tmp_path / "out", "--json")
    took = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert "tile 4096 is larger than the 40x50 scene's rows and columns; using 48x64" in result.stderr
    assert took < 60, took
    with rasterio.open(json.loads(result.stdout)["results"][0]["outputs"]["cog"]) as cog:
        assert (cog.height, cog.width) == (40, 50)
        assert (cog.read(1) != 255).all()


@pytest.mark.parametrize("crop, words", [
    ("100000", ("--crop", str(MAX_TILE))),
])
def test_train_crop_too_large_is_refused_before_anything_is_written(shared_data, tmp_path,
                                                                     crop, words):
    folder = potsdam_folder(shared_data, tmp_path / "data", tile=128)
    out = tmp_path / "run"
    result = run_cli("train", "--model", "spectralmoe_tiny", "--train", folder,
                     "--bands", "red,green,blue", "--classes", tmp_path / "isprs.toml",
                     "--reduce-zero-label", "--steps", "1", "--crop", crop, "--out", out)
    assert_one_line_error(result, 2, *words)
    assert not out.exists()
