"""The one COG writer: class maps and fetched clips differ only by their spec, and a failed
write leaves nothing behind."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import zarr
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from spectralmoe_cli.errors import InputDataError
from spectralmoe_cli.io.cog import CogSpec, write_class_cog, write_cog
from spectralmoe_cli.labels import CLASS_MAP_NODATA

GRID = dict(crs=CRS.from_epsg(32633), transform=Affine(10, 0, 500000, 0, -10, 4000000),
            width=600, height=520)


def _clip_spec() -> CogSpec:
    return CogSpec(**GRID, dtype="float32", nodata=float("nan"), descriptions=["red", "nir"],
                   band_tags=[{"band": "red"}, {"band": "nir"}], tags={"stac_item": "x"},
                   predictor=True, overview_resampling="AVERAGE")


def test_a_write_that_fails_halfway_leaves_nothing(tmp_path):
    def blocks():
        yield Window(0, 0, 600, 100), np.zeros((2, 100, 600), np.float32)
        raise InputDataError("the server went away")

    with pytest.raises(InputDataError):
        write_cog(tmp_path / "clip.tif", _clip_spec(), blocks())
    assert list(tmp_path.iterdir()) == []


def test_a_clip_keeps_values_descriptions_and_tags_and_averages_its_overviews(tmp_path):
    data = np.random.default_rng(1).normal(100, 10, (2, 520, 600)).astype(np.float32)
    data[0, 0, 0] = np.nan
    path = tmp_path / "clip.tif"
    write_cog(path, _clip_spec(), [(Window(0, y, 600, 130), data[:, y:y + 130])
                                   for y in range(0, 520, 130)])
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as ds:
        assert np.array_equal(ds.read(), data, equal_nan=True)
        assert ds.descriptions == ("red", "nir") and ds.tags(2)["band"] == "nir"
        assert ds.tags()["stac_item"] == "x" and ds.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] != "1"
        overview = ds.read(2, out_shape=(260, 300))
    assert overview[5, 7] == pytest.approx(data[1, 10:12, 14:16].mean(), rel=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.tif"]


def test_a_class_map_has_its_palette_nodata_names_and_mode_overviews(tmp_path):
    classes = np.random.default_rng(2).integers(0, 3, (520, 600)).astype(np.uint8)
    classes[:8, :8] = CLASS_MAP_NODATA
    store = tmp_path / "map.zarr"
    group = zarr.open_group(str(store), mode="w", zarr_format=2)
    group.create_array("classes", shape=classes.shape, chunks=(256, 256), dtype="uint8",
                       fill_value=CLASS_MAP_NODATA)[:] = classes
    path = tmp_path / "map.tif"
    table = [(0, "water", (0, 0, 255)), (1, "tree", (0, 128, 0)), (2, "road", (90, 90, 90))]
    write_class_cog(store, path, GRID["crs"], GRID["transform"], table)
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as ds:
        assert np.array_equal(ds.read(1), classes)
        assert ds.nodata == CLASS_MAP_NODATA and ds.dtypes == ("uint8",)
        assert ds.colormap(1)[1] == (0, 128, 0, 255) and ds.colormap(1)[CLASS_MAP_NODATA][3] == 0
        assert ds.tags(1)["CLASS_2"] == "road" and ds.descriptions == ("class",)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR", "1") == "1"
        overview = ds.read(1, out_shape=(260, 300))
    assert set(np.unique(overview)) <= {0, 1, 2, CLASS_MAP_NODATA}  # classes never averaged
