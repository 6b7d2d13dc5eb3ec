"""``predict`` on STAC items and searches, end to end against real servers on 127.0.0.1.

The fetch tests' world (``served_world``): rustac serves the STAC API, nginx the items' COG
assets with HTTP Range support, and proxies in front of either inject faults. The model is a
tiny random checkpoint over five of the items' bands, one of them (swir16) at 20 m, so the
resampled path is read as well as the native one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import fetch_world
import numpy as np
import pytest
import rasterio
from checkpoints import make_checkpoint, reflectance_checkpoint
from helpers import assert_one_line_error, run_cli
from rasterio.warp import transform_bounds
from served_world import FAST, MAY, Servers, predict
from stac_servers import FaultProxy

from spectralmoe_cli.bands import resolve
from spectralmoe_cli.checkpoint import read_metadata
from spectralmoe_cli.engine.predict.runner import run_predict
from spectralmoe_cli.engine.predict.settings import PredictSettings
from spectralmoe_cli.engine.predict.sources import StacOptions, StacSource, open_source, scene_sources, stac_options
from spectralmoe_cli.errors import InputDataError, TransientError, UsageError
from spectralmoe_cli.io.stac_scene import open_item_scene
from spectralmoe_cli.net import RetryPolicy
from spectralmoe_cli.stac import band_radiometry, band_sources, is_item_ref, load_item, parse_bbox

BANDS = ["red", "green", "blue", "nir", "swir16"]
ITEMS = ("S2T_WEST", "S2T_EAST")
POLICY = RetryPolicy(retries=2, backoff=0.01, timeout=5)
# 100 x 101 pixels of each item: across their common edge and a nodata stripe, off their grid
AOI_UTM = (504123.0, 4997497.0, 506117.0, 4998496.0)
BBOX = ",".join(repr(v) for v in transform_bounds(fetch_world.CRS, "EPSG:4326", *AOI_UTM,
                                                  densify_pts=21))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return reflectance_checkpoint(tmp_path_factory.mktemp("ckpt"), BANDS)


def search_args(servers: Servers, collection: str = "s2-test", catalog: str = "") -> list:
    return ["--stac", catalog or servers.api.url, "--collection", collection, "--bbox", BBOX,
            *MAY]


def results_by_name(completed: subprocess.CompletedProcess) -> dict[str, dict]:
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {Path(r["scene"]).name: r for r in json.loads(completed.stdout)["results"]}


def read_map(result: dict) -> tuple[np.ndarray, rasterio.crs.CRS, rasterio.Affine]:
    with rasterio.open(result["outputs"]["cog"]) as cog:
        return cog.read(1), cog.crs, cog.transform


def derived_from(result: dict) -> list[str]:
    item = json.loads(Path(result["outputs"]["item"]).read_text())
    return [link["href"] for link in item["links"] if link["rel"] == "derived_from"]


@pytest.mark.slow
def test_search_equals_fetch_then_predict_read_by_range_requests(servers, ckpt, tmp_path):
    fetched = tmp_path / "fetched"
    # fetch in another band order: predict finds the model's bands by name either way
    done = servers.fetch(fetched, "s2-test", "--bbox", BBOX, "--bands", "B08,B11,B02,B03,B04")
    assert done.returncode == 0, done.stderr
    west_json = fetched / "S2T_WEST" / "S2T_WEST.json"
    west_url = f"{servers.api.url}/collections/s2-test/items/S2T_WEST"
    seen = len(servers.nginx.requests())
    # one run: the fetched COGs and fetch's own item of one, the item's URL, then the search
    run = predict(ckpt, tmp_path / "out", *[fetched / i / f"{i}.tif" for i in ITEMS], west_json,
                  west_url, *search_args(servers), "--chunk", "96")
    results = results_by_name(run)
    summary = json.loads(run.stdout)
    # the URL and the search's S2T_WEST are one item on one grid: one name, predicted once
    assert (summary["done"], summary["skipped"]) == (5, 1)
    assert results["S2T_WEST"]["name"] == summary["results"][3]["name"]

    for item_id in ITEMS:
        want, want_crs, want_transform = read_map(results[f"{item_id}.tif"])
        got, crs, transform = read_map(results[item_id])
        assert crs == want_crs and transform == want_transform and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert (got == 255).any() and len(np.unique(got[got != 255])) > 1  # nodata and regions
        assert derived_from(results[item_id]) == [
            f"{servers.api.url}/collections/s2-test/items/{item_id}"]
    # fetch's own item holds physical values already: they must not be scaled a second time
    np.testing.assert_array_equal(read_map(results["S2T_WEST.json"])[0],
                                  read_map(results["S2T_WEST.tif"])[0])
    assert derived_from(results["S2T_WEST.json"]) == [str(west_json)]

    reads = [r for r in servers.nginx.requests()[seen:] if r.method == "GET"]
    assert reads and all(r.status == 206 and r.range.startswith("bytes=") for r in reads)
    whole = sum(p.stat().st_size for item_id in ITEMS
                for p in servers.world.sources[item_id].values())
    assert sum(r.bytes for r in reads) < whole / 4


def _reflectance(path: Path, repeat: int = 1) -> np.ndarray:
    """What fetch makes of a baseline >= 04.00 band, computed here from the source COG."""
    with rasterio.open(path) as src:
        dn = src.read(1).repeat(repeat, axis=0).repeat(repeat, axis=1)
    values = (dn.astype(np.float64) * 1e-4 - 0.1).astype(np.float32)
    values[dn == 0] = np.nan
    return values


def test_item_file_without_aoi_is_the_whole_item_on_the_finest_grid(servers, ckpt, tmp_path):
    item_file = tmp_path / "east.json"
    item_file.write_text(json.dumps(servers.world.items["S2T_EAST"]))
    meta = read_metadata(ckpt)
    [source] = scene_sources([str(item_file)], StacOptions(policy=POLICY), None, meta)
    scene = open_source(source, meta)
    assets = servers.world.sources["S2T_EAST"]
    with rasterio.open(assets["red"]) as red:
        assert (scene.crs, scene.transform, scene.height, scene.width) == (
            red.crs, red.transform, red.height, red.width)
    assert scene.descriptions == BANDS
    assert (scene.origin.name, scene.origin.href) == ("S2T_EAST", str(item_file))
    # baseline 05.09 without a declared offset: (DN - 1000) / 10000; 20 m swir16 on 10 m pixels
    expected = np.stack([_reflectance(assets[b], 2 if b == "swir16" else 1) for b in BANDS])
    data, valid = scene.read(list(range(len(BANDS))), 0, scene.height, 0, scene.width)
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(valid, np.isfinite(expected).all(axis=0))


@pytest.mark.slow
def test_a_band_the_model_needs_and_the_items_lack_exits_3(servers, tmp_path):
    ckpt = make_checkpoint(tmp_path / "rededge.safetensors",
                           bands=["red", "green", "blue", "rededge071"])
    searched = predict(ckpt, tmp_path / "a", *search_args(servers))
    assert_one_line_error(searched, 3, "collection 's2-test' has no band rededge071")
    item_file = tmp_path / "west.json"
    item_file.write_text(json.dumps(servers.world.items["S2T_WEST"]))
    summary = run_predict([StacSource(str(item_file), None, None, POLICY)], ckpt, tmp_path / "b",
                          PredictSettings(tile=64, overlap=16), device="cpu", progress=False)
    assert summary["error"].exit_code == 3
    assert "item 'S2T_WEST' has no band rededge071" in str(summary["error"])


def test_catalog_that_stays_down_exits_75(servers, ckpt, tmp_path):
    proxy = FaultProxy(servers.rustac.url)
    proxy.down = True
    try:
        result = predict(ckpt, tmp_path / "out", *search_args(servers, catalog=proxy.url))
        assert_one_line_error(result, 75, "unreachable", "safe to rerun")
        assert len(proxy.log) == 3  # the first try and two retries
        assert not (tmp_path / "out").exists()
    finally:
        proxy.stop()


def test_asset_server_that_stays_down_fails_each_scene_with_75(servers, flaky, ckpt, tmp_path):
    flaky.down = True
    out = tmp_path / "out"
    options = stac_options(servers.api.url, "flaky", BBOX, None, MAY[1], None, None, POLICY)
    sources = scene_sources([], options, None, read_metadata(ckpt))
    assert [str(s) for s in sources] == [
        f"{servers.api.url}/collections/flaky/items/S2T_{side}_FLAKY" for side in ("EAST", "WEST")]
    summary = run_predict(sources, ckpt, out, PredictSettings(tile=64, overlap=16),
                          device="cpu", progress=False)
    error = summary["error"]
    assert error.exit_code == 75 and "all 2 scenes failed" in str(error)
    assert "HTTP 503" in str(error) and "gave up after 3 attempts" in str(error)
    assert [r["exit_code"] for r in summary["results"]] == [75, 75]
    assert not list(out.glob("*.tif")) and not list(out.glob("*.zarr*"))


def test_aoi_that_misses_every_item_is_nothing_to_do(servers, ckpt, tmp_path):
    args = ["--stac", servers.api.url, "--collection", "s2-test", "--bbox", "-60,-30,-59.9,-29.9",
            *MAY]
    result = predict(ckpt, tmp_path / "out", *args)  # with --json: scripts parse every night
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["scenes"] == 0 and summary["results"] == []
    assert summary["nothing_to_do"].startswith("no item of collection 's2-test'")
    on_disk = json.loads((tmp_path / "out" / "spectralmoe-summary.json").read_text())
    assert on_disk["scenes"] == 0 and on_disk["nothing_to_do"] == summary["nothing_to_do"]
    text = run_cli("predict", *args, "--checkpoint", ckpt, "--out", tmp_path / "text", *FAST)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("nothing to do: no item of collection 's2-test'")


def test_reads_retry_transient_errors_on_fresh_connections(servers, flaky):
    item = load_item(f"{servers.api.url}/collections/flaky/items/S2T_WEST_FLAKY", POLICY)
    sources = band_sources(item, BANDS)

    def read_all(fault: tuple[int, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        scene = open_item_scene(sources, parse_bbox(BBOX).bbox, POLICY, "west")
        assert scene.dtype == "float32" and np.isnan(scene.nodata).all()
        if fault:  # the headers are read: the next request for the asset reads pixels
            flaky.fail(3, *fault)  # GDAL tries a range request three times, then fails
        return scene.read([0, 1, 2, 3, 4], 0, scene.height, 0, scene.width)

    data, valid = read_all()
    assert valid.any() and (~valid).any()  # the nodata stripe crosses the AOI
    # a 10 m band read on its own grid, and the 20 m band read through a warped view
    for status, path in ((503, "/S2T_WEST/B04.tif"), (500, "/S2T_WEST/B11.tif")):
        before = len(flaky.log)
        got, got_valid = read_all((status, path))
        log = flaky.log[before:]
        first = next(n for n, e in enumerate(log) if e["fault"])
        assert log[first]["method"] == "GET" and not flaky.faults  # a pixel read failed ...
        assert {(e["path"], e["fault"]) for e in log if e["fault"]} == {(path, status)}
        assert [e["method"] for e in log[first:]].count("HEAD") >= len(BANDS)  # ... reopened
        np.testing.assert_array_equal(got, data)
        np.testing.assert_array_equal(got_valid, valid)


def test_a_broken_asset_is_retried_then_an_input_error_not_a_network_one(servers):
    # the truncated COG opens (its header is intact); its tiles cannot be read
    item = load_item(f"{servers.api.url}/collections/broken/items/BROKEN_TRUNC", POLICY)
    scene = open_item_scene(band_sources(item, ["red"]), None, POLICY, "truncated")
    seen = len(servers.nginx.requests())
    with pytest.raises(InputDataError, match="BROKEN_TRUNC/B04.tif") as caught:
        scene.read([0], 0, scene.height, 0, scene.width)
    assert not isinstance(caught.value, TransientError)
    opens = [r for r in servers.nginx.requests()[seen:] if r.method == "HEAD"]
    assert len(opens) >= POLICY.retries  # reopened for every retry


def test_aoi_beside_an_item_skips_it(servers, ckpt, tmp_path):
    item_file = tmp_path / "west.json"
    item_file.write_text(json.dumps(servers.world.items["S2T_WEST"]))
    lon, lat = servers.world.items["S2T_WEST"]["geometry"]["coordinates"][0][0]
    aoi = parse_bbox(f"{lon - 0.02},{lat + 0.01},{lon - 0.01},{lat + 0.02}")  # north-west of it
    source = StacSource(str(item_file), None, aoi, POLICY)
    summary = run_predict([source], ckpt, tmp_path / "out", PredictSettings(tile=64, overlap=16),
                          device="cpu", progress=False)
    assert (summary["skipped"], summary["failed"]) == (1, 0) and "error" not in summary
    assert not list((tmp_path / "out").glob("S2T_WEST*"))


def test_scene_arguments_that_are_items():
    assert is_item_ref("scene/item.json") and is_item_ref("ITEM.GEOJSON")
    assert is_item_ref("https://earth-search.aws.element84.com/v1/collections/s2/items/S2B_X")
    assert is_item_ref("http://host/catalog/S2B_X.json")
    assert is_item_ref("https://host/collections/hls/items/HLS.S30.T10SEG.2020061T183919.v2.0")
    for raster in ("scene.tif", "/vsicurl/https://host/items/x.json", "https://host/a/B04.tif",
                   "https://host/items/S2B_X/B04.TIF", "store.zarr", "s3://bucket/item.json"):
        assert not is_item_ref(raster), raster


def test_an_item_written_by_fetch_is_not_scaled_again():
    red = resolve("red")
    source = {"platform": "sentinel-2b", "s2:processing_baseline": "05.09"}
    plain = band_radiometry(source, "X", red, None, None)
    assert (plain.scale, plain.offset) == (1e-4, -0.1)
    fetched = {**source, "spectralmoe:fetch": {"bands": ["red"]}}  # fetch keeps the baseline
    assert band_radiometry(fetched, "X", red, None, None).identity


@pytest.mark.parametrize("options,words", [
    (dict(catalog="http://x", collection="c", datetime="P1D"), "needs --bbox or --intersects"),
    (dict(catalog="http://x", bbox="1,2,3,4", datetime="P1D"), "needs --collection"),
    (dict(catalog="http://x", collection="c", bbox="1,2,3,4"), "needs --datetime"),
    (dict(collection="c"), "--collection describe a search"),
    (dict(bbox="1,2,3,4", intersects="aoi.geojson"), "at most one of --bbox"),
])
def test_search_options_that_do_not_make_one_request(options, words):
    given = dict(catalog=None, collection=None, bbox=None, intersects=None, datetime=None,
                 max_cloud=None, max_items=None, policy=POLICY) | options
    with pytest.raises(UsageError, match=words):
        stac_options(**given)


@pytest.mark.parametrize("scenes,options,bands,words", [
    (["a.tif"], dict(bbox="1,2,3,4"), None, "rasters are predicted whole"),
    (["item.json"], {}, ["red"], "drop --bands"),
    ([], {}, None, "nothing to segment"),
])
def test_scene_arguments_that_do_not_fit_the_options(ckpt, scenes, options, bands, words):
    given = dict(catalog=None, collection=None, bbox=None, intersects=None, datetime=None,
                 max_cloud=None, max_items=None, policy=POLICY) | options
    with pytest.raises(UsageError, match=words):
        scene_sources(scenes, stac_options(**given), bands, read_metadata(ckpt))
