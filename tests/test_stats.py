"""Streamed band statistics equal numpy's over the valid pixels, whatever the block size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli, write_geotiff

from spectralmoe_cli.bands import resolve_all
from spectralmoe_cli.engine.labelled.stats import compute_stats, image_files, load_stats
from spectralmoe_cli.errors import InputDataError

BANDS = resolve_all(["red", "green", "blue"])


def _scenes(tmp_path):
    """Two float scenes with NaN and nodata and one int16 scene, all larger than a 64 px block."""
    rng = np.random.default_rng(4)
    a = rng.normal(1000, 50, (3, 150, 130)).astype(np.float32)
    a[0, 10:20, 10:30] = np.nan
    a[:, 100, :] = -1
    b = rng.normal(900, 80, (3, 97, 211)).astype(np.float32)
    b[2, 0, 0] = np.inf
    c = rng.integers(0, 4000, (3, 65, 65)).astype(np.int16)
    c[1, :5, :5] = -1
    paths = [write_geotiff(tmp_path / "scenes" / "a.tif", a, nodata=-1),
             write_geotiff(tmp_path / "scenes" / "b.tif", b),
             write_geotiff(tmp_path / "scenes" / "c.tif", c, nodata=-1)]
    return paths, [a, b, c]


def _valid(array: np.ndarray, nodata) -> np.ndarray:
    x = array.astype(np.float64)
    bad = ~np.isfinite(x).all(axis=0)
    if nodata is not None:
        bad |= (x == nodata).any(axis=0)
    return x[:, ~bad]


def test_stats_equal_numpy_over_valid_pixels_block_streamed(tmp_path):
    paths, arrays = _scenes(tmp_path)
    result = compute_stats(paths, BANDS, block=64)
    pooled = np.concatenate([_valid(arrays[0], -1), _valid(arrays[1], None), _valid(arrays[2], -1)], axis=1)
    np.testing.assert_allclose(result.mean, pooled.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(result.std, pooled.std(axis=1), rtol=1e-10)
    assert result.valid_pixels == pooled.shape[1]
    assert result.pixels == 150 * 130 + 97 * 211 + 65 * 65 and result.files == 3
    whole = compute_stats(paths, BANDS, block=4096)  # one block per file: the same numbers
    np.testing.assert_allclose(whole.mean, result.mean, rtol=1e-12)
    np.testing.assert_allclose(whole.std, result.std, rtol=1e-12)


def test_nodata_option_replaces_the_files_nodata(tmp_path):
    paths, arrays = _scenes(tmp_path)
    result = compute_stats(paths[1:], BANDS, nodata=-1, block=50)
    pooled = np.concatenate([_valid(arrays[1], -1), _valid(arrays[2], -1)], axis=1)
    np.testing.assert_allclose(result.mean, pooled.mean(axis=1), rtol=1e-12)


def test_merging_is_stable_for_a_large_offset(tmp_path):
    rng = np.random.default_rng(5)
    data = 1e9 + rng.normal(0, 1, (3, 120, 120))
    path = write_geotiff(tmp_path / "offset.tif", data)
    result = compute_stats([path], BANDS, block=16)
    np.testing.assert_allclose(result.std, data.reshape(3, -1).std(axis=1), rtol=1e-6)


def test_stats_cli_json_round_trips_into_train(tmp_path):
    paths, arrays = _scenes(tmp_path)
    result = run_cli("stats", tmp_path / "scenes", "--bands", "B04,B03,B02", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [b["name"] for b in data["bands"]] == ["red", "green", "blue"]
    stats_file = tmp_path / "stats.json"
    stats_file.write_text(result.stdout)
    mean, std = load_stats(stats_file, resolve_all(["blue", "red", "green"]))
    assert mean == [data["bands"][2]["mean"], data["bands"][0]["mean"], data["bands"][1]["mean"]]
    text = run_cli("stats", paths[0], "--bands", "red,green,blue")
    assert text.returncode == 0 and "red" in text.stdout and "valid of 19500 pixels" in text.stdout


def test_stats_input_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("stats", tmp_path / "empty", "--bands", "red"), 3, "holds no rasters")
    path = write_geotiff(tmp_path / "nan.tif", np.full((3, 8, 8), np.nan, np.float32))
    with pytest.raises(InputDataError, match="no valid pixels"):
        compute_stats([path], BANDS)
    with pytest.raises(InputDataError, match="has 3 band.s. but --bands names 2"):
        compute_stats([path], BANDS[:2])
    assert image_files(path) == [path]


def test_declared_scale_and_offset_give_physical_statistics_as_predict_reads_them(tmp_path):
    import rasterio
    from scenes import write_scene

    from spectralmoe_cli.io.scene import open_scene
    rng = np.random.default_rng(8)
    dn = rng.integers(1000, 3000, (3, 40, 50)).astype(np.uint16)
    path = write_scene(tmp_path / "dn.tif", dn)
    with rasterio.open(path, "r+") as ds:
        ds.scales = (1e-4, 1e-4, 2e-4)
        ds.offsets = (-0.1, -0.1, 0.0)
    physical = dn.astype(np.float64) * np.array([1e-4, 1e-4, 2e-4])[:, None, None] \
        + np.array([-0.1, -0.1, 0.0])[:, None, None]
    result = compute_stats([path], BANDS)
    np.testing.assert_allclose(result.mean, physical.reshape(3, -1).mean(axis=1), rtol=1e-9)
    data, _ = open_scene(path).read([0, 1, 2], 0, 40, 0, 50)
    np.testing.assert_allclose(data.reshape(3, -1).mean(axis=1), result.mean, rtol=1e-5)
