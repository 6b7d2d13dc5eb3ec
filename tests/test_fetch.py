"""``spectralmoe fetch`` end to end against real servers on 127.0.0.1.

rustac serves the STAC API (in-memory backend: no filter, query or sort conformance), nginx
serves the COG assets with HTTP Range support, and a small proxy in front of either injects
faults, records requests, or adds server-side CQL2 filtering (with the ``cql2`` library).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

import fetch_world
import numpy as np
import pystac
import pytest
import rasterio
from helpers import assert_one_line_error
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from rio_cogeo.cogeo import cog_validate
from stac_servers import FaultProxy, free_port

from spectralmoe_cli.net import RetryPolicy
from spectralmoe_cli.stac import SearchRequest, open_catalog, parse_bbox, parse_datetime, search

BANDS = ["red", "green", "blue", "nir", "swir16"]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _expected_window(src, aoi_lonlat) -> Window:
    """The AOI's bounding box in the source grid, rounded outwards to whole pixels."""
    aoi = transform_bounds("EPSG:4326", src.crs, *aoi_lonlat, densify_pts=21)
    left, bottom, right, top = src.bounds
    clipped = (max(aoi[0], left), max(aoi[1], bottom), min(aoi[2], right), min(aoi[3], top))
    w = from_bounds(*clipped, transform=src.transform)
    col0, row0 = int(np.floor(w.col_off + 1e-6)), int(np.floor(w.row_off + 1e-6))
    col1 = int(np.ceil(w.col_off + w.width - 1e-6))
    row1 = int(np.ceil(w.row_off + w.height - 1e-6))
    return Window(col0, row0, col1 - col0, row1 - row0)


@pytest.mark.slow
def test_two_items_clipped_exact_and_read_by_range_requests(servers, tmp_path):
    out = tmp_path / "out"
    before = len(servers.nginx.requests())
    result = servers.fetch(out, "s2-test", "--bands", "B04,B03,B02,B08,B11")
    assert result.returncode == 0, result.stderr
    assert "done: 2 fetched" in result.stdout
    aoi = fetch_world.aoi_lonlat()
    for item_id in ("S2T_WEST", "S2T_EAST"):
        cog = out / item_id / f"{item_id}.tif"
        assert cog_validate(str(cog), quiet=True)[0]
        sources = servers.world.sources[item_id]
        with rasterio.open(cog) as got, rasterio.open(sources["red"]) as red10:
            window = _expected_window(red10, aoi)
            # exact georeferencing: the source's own pixels, cut to the AOI
            assert got.crs == red10.crs
            assert got.transform == red10.window_transform(window)
            assert (got.height, got.width) == (window.height, window.width)
            assert got.descriptions == tuple(BANDS)
            assert got.dtypes == ("float32",) * 5 and np.isnan(got.nodata)
            values = got.read()
        for index, key in enumerate(["red", "green", "blue", "nir"]):
            with rasterio.open(sources[key]) as src:
                dn = src.read(1, window=window)
            # both items are baseline >= 04.00: the west one declares offset -0.1, the east one
            # only its baseline; either way reflectance = (DN - 1000) / 10000, applied once
            expected = (dn.astype(np.float64) * 1e-4 - 0.1).astype(np.float32)
            expected[dn == 0] = np.nan
            np.testing.assert_array_equal(values[index], expected)
            np.testing.assert_allclose(values[index][dn > 0], (dn[dn > 0] - 1000.0) / 10000,
                                       atol=1e-7)
            assert (dn == 0).any() and np.isnan(values[index]).sum() == (dn == 0).sum()
        with rasterio.open(sources["swir16"]) as src20:
            dn20 = src20.read(1)
            rows, cols = np.mgrid[0:window.height, 0:window.width]
            xs, ys = red10.xy(rows + window.row_off, cols + window.col_off)
            r20, c20 = rasterio.transform.rowcol(src20.transform, np.ravel(xs), np.ravel(ys))
        nearest = dn20[np.array(r20), np.array(c20)].reshape(window.height, window.width)
        expected20 = (nearest.astype(np.float64) * 1e-4 - 0.1).astype(np.float32)
        expected20[nearest == 0] = np.nan
        np.testing.assert_array_equal(values[4], expected20)

        item = pystac.Item.from_file(str(out / item_id / f"{item_id}.json"))
        props = item.properties
        assert props["proj:code"] == "EPSG:32633"
        assert props["proj:shape"] == [window.height, window.width]
        assert props["proj:transform"] == list(red10.window_transform(window))[:6]
        asset = item.assets["data"]
        assert asset.get_absolute_href() == str(cog)
        assert json.loads((out / item_id / f"{item_id}.json").read_text())[
            "assets"]["data"]["href"] == f"./{item_id}.tif"
        eo = asset.extra_fields["eo:bands"]
        assert [b["name"] for b in eo] == ["B04", "B03", "B02", "B08", "B11"]
        assert [b["common_name"] for b in eo] == BANDS
        digest = "1220" + hashlib.sha256(cog.read_bytes()).hexdigest()
        assert asset.extra_fields["file:checksum"] == digest
        assert asset.extra_fields["file:size"] == cog.stat().st_size
        derived = [link.href for link in item.links if link.rel == "derived_from"]
        assert derived == [f"{servers.api.url}/collections/s2-test/items/{item_id}"]
    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    assert sorted(i.id for i in catalog.get_items()) == ["S2T_EAST", "S2T_WEST"]
    assert [p for p in _files(out) if ".part" in p or "scratch" in p] == []

    reads = [r for r in servers.nginx.requests()[before:] if r.method == "GET"]
    assert reads and all(r.status == 206 and r.range.startswith("bytes=") for r in reads)
    served = sum(r.bytes for r in reads)
    whole = sum(p.stat().st_size for item_id in ("S2T_WEST", "S2T_EAST")
                for p in servers.world.sources[item_id].values())
    assert served < whole / 2, (served, whole)


@pytest.mark.slow
def test_rerun_downloads_nothing_and_redoes_a_damaged_item(servers, tmp_path):
    out = tmp_path / "out"
    first = servers.fetch(out, "s2-test", "--bands", "B04,B08")
    assert first.returncode == 0, first.stderr
    seen = len(servers.nginx.requests())
    again = servers.fetch(out, "s2-test", "--bands", "B04,B08")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped") == 2 and "2 already there" in again.stdout
    assert servers.nginx.requests()[seen:] == []
    with open(out / "S2T_EAST" / "S2T_EAST.tif", "ab") as handle:
        handle.write(b"\0")
    third = servers.fetch(out, "s2-test", "--bands", "B04,B08")
    assert third.returncode == 0, third.stderr
    redone = {r.path.split("/")[1] for r in servers.nginx.requests()[seen:]}
    assert redone == {"S2T_EAST"}
    assert "fetched  S2T_EAST" in third.stdout and "skipped  S2T_WEST" in third.stdout


def test_cloud_filter_same_items_from_servers_with_and_without_filter_support(servers):
    pytest.importorskip("cql2", reason="the filter-capable server evaluates CQL2 with cql2")
    policy = RetryPolicy(retries=1, backoff=0.01, timeout=5)
    plain = FaultProxy(servers.rustac.url)             # rustac memory backend, as it is
    capable = FaultProxy(servers.rustac.url, cql2=True)  # + filter/sort conformance, CQL2
    try:
        results = {}
        for name, proxy in (("plain", plain), ("capable", capable)):
            request = SearchRequest("clouds", parse_bbox(servers.bbox),
                                    parse_datetime("2024-05-01/2024-05-31"), max_cloud=20)
            results[name] = search(open_catalog(proxy.url, policy), request)
        ids = {k: [i.id for i in r.items] for k, r in results.items()}
        # cover 5, 15, 19.99 kept; 45, 80 and the item without eo:cloud_cover dropped
        assert ids["plain"] == ids["capable"] == ["CLOUD_5", "CLOUD_1", "CLOUD_0"]
        assert results["plain"].filtering == "client-side"
        assert results["capable"].filtering.startswith("server-side filter")
        plain_bodies = [e["body"] for e in plain.log if e["path"].startswith("/search")]
        assert plain_bodies and all("filter" not in b and "query" not in b for b in plain_bodies)
        capable_bodies = [e["body"] for e in capable.log if e["path"].startswith("/search")]
        assert capable_bodies[0]["filter"] == {
            "op": "<=", "args": [{"property": "eo:cloud_cover"}, 20.0]}
        # the plain server sent all six items and we filtered; the capable one sent three
        assert sorted(sum(plain.returned, [])) == [f"CLOUD_{n}" for n in range(6)]
        assert sorted(sum(capable.returned, [])) == ["CLOUD_0", "CLOUD_1", "CLOUD_5"]
        limited = SearchRequest("clouds", parse_bbox(servers.bbox),
                                parse_datetime("2024-05-01/2024-05-31"), max_cloud=20,
                                max_items=2)
        assert ([i.id for i in search(open_catalog(plain.url, policy), limited).items]
                == [i.id for i in search(open_catalog(capable.url, policy), limited).items]
                == ["CLOUD_5", "CLOUD_1"])
    finally:
        plain.stop()
        capable.stop()


def test_search_follows_every_page_and_orders_newest_first(servers):
    proxy = FaultProxy(servers.rustac.url)
    try:
        request = SearchRequest("clouds", parse_bbox(servers.bbox),
                                parse_datetime("2024-05-01/2024-05-31"))
        found = search(open_catalog(proxy.url, RetryPolicy(1, 0.01, 5)), request, page_size=2)
        assert [i.id for i in found.items] == [f"CLOUD_{n}" for n in (5, 4, 3, 2, 1, 0)]
        assert len([e for e in proxy.log if e["path"].startswith("/search")]) >= 3
    finally:
        proxy.stop()


@pytest.mark.slow
def test_api_500_twice_then_ok(servers, tmp_path):
    proxy = FaultProxy(servers.rustac.url)
    try:
        proxy.fail(2, 500, "/search")
        result = servers.fetch(tmp_path / "out", "s2-test", "--bands", "B04",
                               catalog=proxy.url)
        assert result.returncode == 0, result.stderr
        searches = [e for e in proxy.log if e["path"].startswith("/search")]
        assert [e["fault"] for e in searches] == [500, 500, None]
    finally:
        proxy.stop()


@pytest.mark.slow
def test_asset_500_twice_then_ok(servers, flaky, tmp_path):
    flaky.fail(2, 500, "/S2T_WEST/B04.tif")
    result = servers.fetch(tmp_path / "out", "flaky", "--bands", "B04")
    assert result.returncode == 0, result.stderr
    assert [e["fault"] for e in flaky.log].count(500) == 2
    with rasterio.open(tmp_path / "out" / "S2T_WEST_FLAKY" / "S2T_WEST_FLAKY.tif") as got:
        assert got.descriptions == ("red",) and np.isfinite(got.read(1)).any()


@pytest.mark.slow
def test_asset_server_that_stays_down_exits_75_and_leaves_no_partial_file(servers, flaky,
                                                                         tmp_path):
    flaky.down = True
    out = tmp_path / "out"
    result = servers.fetch(out, "flaky", "--bands", "B04")
    assert_one_line_error(result, 75, "HTTP 503", "gave up after 3 attempts")
    assert [p for p in _files(out) if p.endswith(".tif") or ".part" in p] == []
    summary = json.loads((out / "fetch-summary.json").read_text())
    assert "HTTP 503" in summary["stopped"]


def test_api_that_stays_down_exits_75(servers, tmp_path):
    proxy = FaultProxy(servers.rustac.url)
    proxy.down = True
    try:
        result = servers.fetch(tmp_path / "out", catalog=proxy.url)
        assert_one_line_error(result, 75, "unreachable", "safe to rerun")
        assert len(proxy.log) == 3  # the first try and two retries, then it stopped
        assert not (tmp_path / "out").exists()
    finally:
        proxy.stop()


def test_unreachable_catalog_exits_75(servers, tmp_path):
    result = servers.fetch(tmp_path / "out", catalog=f"http://127.0.0.1:{free_port()}")
    assert_one_line_error(result, 75, "unreachable")
    assert not (tmp_path / "out").exists()


def test_not_a_stac_api_exits_2(servers, tmp_path):
    result = servers.fetch(tmp_path / "out", catalog=servers.nginx.url)
    assert_one_line_error(result, 2, "not a STAC API")


def test_unknown_collection_exits_2_and_lists_the_known_ones(servers, tmp_path):
    result = servers.fetch(tmp_path / "out", "sentinel-9")
    assert_one_line_error(result, 2, "collection 'sentinel-9' not found", "s2-test")
    assert not (tmp_path / "out").exists()


def test_band_the_collection_lacks_exits_3(servers, tmp_path):
    result = servers.fetch(tmp_path / "out", "s2-test", "--bands", "B04,B05")
    assert_one_line_error(result, 3, "collection 's2-test' has no band rededge071")
    # no item_assets to check against: the items are checked before any download
    result = servers.fetch(tmp_path / "out", "broken", "--bands", "B04,B05")
    assert_one_line_error(result, 3, "has no band rededge071")
    assert not (tmp_path / "out").exists()


def test_when_every_item_fails_no_others_are_promised(servers, tmp_path):
    result = servers.fetch(tmp_path / "out", "broken", "--bands", "B04", "--max-items", "1")
    assert_one_line_error(result, 4, "all 1 items failed", "HTTP 404", "fetch-summary.json")
    assert "the others" not in result.stderr


@pytest.mark.slow
def test_missing_and_truncated_assets_fail_alone_exit_4(servers, tmp_path):
    out = tmp_path / "out"
    result = servers.fetch(out, "broken", "--bands", "B04")
    assert_one_line_error(result, 4, "2 of 3 items failed", "fetch-summary.json")
    assert _files(out) == sorted([
        ".fetch.lock", "BROKEN_OK", "BROKEN_OK/BROKEN_OK.json", "BROKEN_OK/BROKEN_OK.tif",
        "catalog.json", "fetch-summary.json"])
    summary = json.loads((out / "fetch-summary.json").read_text())
    status = {i["id"]: (i["status"], i["detail"]) for i in summary["items"]}
    assert status["BROKEN_OK"][0] == "fetched"
    assert status["BROKEN_404"][0] == "failed" and "HTTP 404" in status["BROKEN_404"][1]
    assert status["BROKEN_TRUNC"][0] == "failed" and "BROKEN_TRUNC/B04.tif" in status[
        "BROKEN_TRUNC"][1]
    assert summary["counts"] == {"fetched": 1, "skipped": 0, "empty": 0, "failed": 2}


def test_aoi_that_misses_every_item_is_nothing_to_do(servers, tmp_path):
    result = servers.fetch(tmp_path / "out", "s2-test", "--bbox", "-60,-30,-59.9,-29.9")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nothing to do: no item of collection 's2-test'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("collection,words", [
    ("unsafe-id", "cannot be used as a file name"),
    ("unsafe-href", "href"),
])
def test_unsafe_item_id_or_href_is_refused_and_nothing_written(servers, tmp_path, collection,
                                                               words):
    out = tmp_path / "deep" / "out"
    result = servers.fetch(out, collection, "--bands", "B04")
    assert_one_line_error(result, 3, words)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("args,words", [
    (("--bbox", "1,2,3,4", "--intersects", "x.geojson"), "exactly one of --bbox"),
    (("--datetime", "last week"), "--datetime"),
    (("--bands", "B04,red"), "duplicate band"),
    (("--bands", "B99"), "unknown band name"),
    (("--resampling", "lanczos"), "--resampling"),
])
def test_bad_options_are_one_line_errors(servers, tmp_path, args, words):
    result = servers.fetch(tmp_path / "out", "s2-test", *args)
    assert_one_line_error(result, 3 if "band" in words else 2, words)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_or_locked_by_another_run(servers, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert_one_line_error(servers.fetch(not_a_dir, "s2-test", "--bands", "B04"), 2,
                          "cannot write there")
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".fetch.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = servers.fetch(out, "s2-test", "--bands", "B04")
    assert_one_line_error(result, 75, "another spectralmoe fetch is writing")
    assert _files(out) == [".fetch.lock"]


@pytest.mark.slow
def test_intersects_geojson_aoi(servers, tmp_path):
    west, south, east, north = fetch_world.aoi_lonlat()
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                            [west, north], [west, south]]]}}))
    by_geometry = servers.fetch(tmp_path / "geom", "s2-test", "--intersects", aoi,
                                "--bands", "B04")
    by_bbox = servers.fetch(tmp_path / "bbox", "s2-test", "--bands", "B04")
    assert by_geometry.returncode == by_bbox.returncode == 0, by_geometry.stderr
    for item_id in ("S2T_WEST", "S2T_EAST"):
        paths = [tmp_path / run / item_id / f"{item_id}.tif" for run in ("geom", "bbox")]
        assert paths[0].read_bytes() == paths[1].read_bytes()
