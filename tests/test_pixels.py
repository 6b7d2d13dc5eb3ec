"""The one pixel rule (validity, nodata, scale/offset), on hand-made arrays and on real GeoTIFFs
read the three ways the tool reads pixels: predict's scene, training's labelled rasters, fetch."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import rasterio
from helpers import write_geotiff
from rasterio.enums import Resampling

from spectralmoe_cli.io import fetch_read
from spectralmoe_cli.io.pixels import band_nodata, nodata_mask, physical_pixels, to_physical
from spectralmoe_cli.io.rasters import open_raster, read_physical
from spectralmoe_cli.io.scene import open_scene


def test_a_pixel_is_invalid_when_any_band_is_its_own_nodata_or_not_finite():
    stored = np.array([[[1.0, 2.0, -9999.0, np.nan]],
                       [[5.0, np.inf, 7.0, 8.0]],
                       [[0.0, 0.0, 0.0, 0.0]]], dtype=np.float32)  # [3 bands, 1 row, 4 cols]
    _, invalid = physical_pixels(stored, [-9999.0, 5.0, None], [1.0] * 3, [0.0] * 3)
    # col 0: band 1 is its nodata 5; col 1: band 1 is inf; col 2: band 0 is -9999; col 3: NaN.
    assert invalid.tolist() == [[True, True, True, True]]
    _, invalid = physical_pixels(stored[:, :, :1], [None, None, None], [1.0] * 3, [0.0] * 3)
    assert invalid.tolist() == [[False]]  # no declared nodata: 0 (band 2) is a value


def test_nodata_is_per_band_and_nan_nodata_matches_nan():
    stored = np.array([[[7, 7]], [[7, 3]]], dtype=np.uint16)
    _, invalid = physical_pixels(stored, [None, 3.0], [1.0, 1.0], [0.0, 0.0])
    assert invalid.tolist() == [[False, True]]  # 7 is nodata of neither band; 3 is band 1's
    floats = np.array([np.nan, 1.0, np.nan], dtype=np.float32)
    assert nodata_mask(floats, float("nan")).tolist() == [True, False, True]
    assert nodata_mask(floats, None).tolist() == [False, False, False]
    assert nodata_mask(np.array([0, 1], dtype=np.uint8), float("nan")).tolist() == [False, False]


def test_the_user_nodata_overrides_every_band():
    assert band_nodata([None, 0.0, 5.0], None) == [None, 0.0, 5.0]
    assert band_nodata([None, 0.0, 5.0], 7.0) == [7.0, 7.0, 7.0]
    assert np.isnan(band_nodata([1.0], float("nan"))[0])


def test_scale_and_offset_give_physical_values_in_the_callers_float_type():
    stored = np.array([[[1000, 11000]], [[2, 4]]], dtype=np.uint16)
    values = to_physical(stored, [1e-4, 1.0], [-0.1, 0.0])
    assert values.dtype == np.float64
    np.testing.assert_allclose(values[0], [[0.0, 1.0]], atol=1e-12)
    assert values[1].tolist() == [[2.0, 4.0]]
    single = to_physical(stored, [1e-4, 1.0], [-0.1, 0.0], np.float32)
    assert single.dtype == np.float32
    assert single[0, 0, 1] == np.float32(11000) * np.float32(1e-4) + np.float32(-0.1)
    assert stored.tolist() == [[[1000, 11000]], [[2, 4]]]  # the input is left alone


def test_a_value_that_overflows_when_scaled_is_invalid():
    stored = np.array([[[3e38, 1.0]]], dtype=np.float32)
    with np.errstate(over="ignore"):
        values, invalid = physical_pixels(stored, [None], [10.0], [0.0], np.float32)
    assert np.isinf(values[0, 0, 0]) and invalid.tolist() == [[True, False]]


def test_negative_zero_reads_as_zero_at_identity_scale():
    stored = np.array([[[-0.0, 2.0]]], dtype=np.float32)
    values = to_physical(stored, [1.0], [0.0], np.float32)
    assert not np.signbit(values[0, 0, 0]) and values[0, 0, 1] == 2.0


@dataclass
class _Band:
    href: str
    band_index: int
    nodata: float | None
    scale: float = 1.0
    offset: float = 0.0


def test_predict_training_and_fetch_read_a_file_by_the_same_rule(tmp_path):
    rng = np.random.default_rng(3)
    stored = rng.integers(1, 20000, (2, 40, 50)).astype(np.int16)
    stored[0, 3, 4] = -1       # the file's nodata in one band only
    stored[1, 10, :7] = -1
    path = write_geotiff(tmp_path / "scene.tif", stored, nodata=-1)
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = (1e-4, 2e-4), (-0.1, 0.0)
    expected_invalid = (stored == -1).any(axis=0)

    data, valid = open_scene(path).read([0, 1], 0, 40, 0, 50)
    assert np.array_equal(~valid, expected_invalid)
    with open_raster(path) as ds:
        values, invalid = read_physical(ds, band_nodata(ds.nodatavals, None))
    assert np.array_equal(invalid, expected_invalid)
    np.testing.assert_allclose(values[:, ~invalid], data[:, valid], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(values[0, 0, 0], stored[0, 0, 0] * 1e-4 - 0.1, rtol=1e-12)

    bands = [_Band(str(path), i, None, s, o) for i, s, o in ((1, 1e-4, -0.1), (2, 2e-4, 0.0))]
    with fetch_read.open_bands(bands) as datasets, ExitStack() as stack:
        grid = fetch_read.finest_grid(datasets, None)
        encoding = fetch_read.encoding_for(bands, datasets)
        fetched = np.stack([fetch_read.encode(
            fetch_read.BandReader(b, d, grid, Resampling.nearest, stack).read(
                fetch_read.Window(0, 0, 50, 40)), b, encoding) for b, d in zip(bands, datasets)])
    assert encoding.dtype == "float32"
    assert np.array_equal(~np.isfinite(fetched).all(axis=0), expected_invalid)
    assert np.array_equal(fetched[:, ~expected_invalid], values[:, ~invalid].astype(np.float32))


def test_the_user_nodata_overrides_the_file_for_predict_and_training(tmp_path):
    stored = np.array([[[0, 5, 9]], [[1, 0, 9]]], dtype=np.uint8)
    path = write_geotiff(tmp_path / "scene.tif", stored, nodata=9)
    _, valid = open_scene(path).read([0, 1], 0, 1, 0, 3)
    assert valid.tolist() == [[True, True, False]]
    _, valid = open_scene(path).with_nodata(0.0).read([0, 1], 0, 1, 0, 3)
    assert valid.tolist() == [[False, False, True]]
    with open_raster(path) as ds:
        _, invalid = read_physical(ds, band_nodata(ds.nodatavals, 0.0))
    assert invalid.tolist() == [[True, True, False]]
