"""A silent server never hangs a nightly job: every network call honours --timeout and --retries.

The fault proxy's ``silent`` mode accepts each connection, reads the request and never answers,
as a hung catalog or asset server does. Each command must then give up after about
(retries + 1) x timeout and exit 75 (safe to rerun), with one error line and nothing written.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from checkpoints import make_checkpoint
from helpers import assert_one_line_error, run_cli
from served_world import MAY
from stac_servers import FaultProxy

TIMEOUT, RETRIES = 1, 1
LIMITED = ("--timeout", str(TIMEOUT), "--retries", str(RETRIES), "--retry-backoff", "0.01")
# (retries + 1) x timeout for the call that hangs, plus slack for imports and a slow machine
BUDGET = (RETRIES + 1) * TIMEOUT + 15


@pytest.fixture
def silent(servers):
    proxy = FaultProxy(servers.rustac.url)
    proxy.silent = True
    yield proxy
    proxy.stop()


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


def test_fetch_from_a_silent_catalog_exits_75_in_bounded_time(servers, silent, tmp_path):
    start = time.monotonic()
    result = run_cli("fetch", "--catalog", silent.url, "--collection", "s2-test",
                     "--bbox", servers.bbox, *MAY, "--out", tmp_path / "out", *LIMITED)
    took = time.monotonic() - start
    assert_one_line_error(result, 75, silent.url, "safe to rerun")
    assert took < BUDGET, took
    assert len(silent.log) == RETRIES + 1  # the first try and one retry, each cut at --timeout
    assert _files(tmp_path / "out") == []


def test_predict_stac_from_a_silent_catalog_exits_75_in_bounded_time(servers, silent, tmp_path):
    ckpt = make_checkpoint(tmp_path / "s2.safetensors", bands=["red", "green", "blue", "nir"])
    start = time.monotonic()
    result = run_cli("predict", "--stac", silent.url, "--collection", "s2-test",
                     "--bbox", servers.bbox, *MAY, "--checkpoint", ckpt,
                     "--out", tmp_path / "maps", *LIMITED)
    took = time.monotonic() - start
    assert_one_line_error(result, 75, silent.url, "safe to rerun")
    assert took < BUDGET, took
    assert len(silent.log) == RETRIES + 1
    assert [p for p in _files(tmp_path / "maps") if p.suffix in (".tif", ".zarr", ".json")] == []


def test_silent_search_pages_exit_75(servers, tmp_path):
    """The catalog answers its landing page, then falls silent on the search itself."""
    proxy = FaultProxy(servers.rustac.url)
    try:
        from spectralmoe_cli.errors import TransientError
        from spectralmoe_cli.net import RetryPolicy
        from spectralmoe_cli.stac import SearchRequest, open_catalog, parse_bbox, parse_datetime, search

        client = open_catalog(proxy.url, RetryPolicy(RETRIES, 0.01, TIMEOUT))
        proxy.silent = True
        request = SearchRequest("s2-test", parse_bbox(servers.bbox), parse_datetime(MAY[1]))
        start = time.monotonic()
        with pytest.raises(TransientError, match="safe to rerun"):
            search(client, request)
        assert time.monotonic() - start < BUDGET
    finally:
        proxy.stop()


def test_predict_item_url_behind_a_silent_server_exits_75(servers, silent, tmp_path):
    ckpt = make_checkpoint(tmp_path / "s2.safetensors", bands=["red", "green", "blue", "nir"])
    start = time.monotonic()
    result = run_cli("predict", f"{silent.url}/collections/s2-test/items/S2T_WEST",
                     "--checkpoint", ckpt, "--out", tmp_path / "maps", *LIMITED)
    took = time.monotonic() - start
    assert result.returncode in (4, 75), result.stderr  # one scene: it failed transiently
    assert "Traceback" not in result.stderr
    assert "safe to rerun" in result.stderr
    assert took < BUDGET, took
    assert [p for p in _files(tmp_path / "maps") if p.suffix in (".tif", ".zarr")] == []


@pytest.mark.slow
def test_fetch_from_a_silent_asset_server_exits_75_and_leaves_no_partial_file(servers, flaky,
                                                                             tmp_path):
    """GDAL's reads of the assets (/vsicurl/) are cut at --timeout and retried by our policy."""
    flaky.silent = True
    out = tmp_path / "out"
    try:
        start = time.monotonic()
        result = run_cli("fetch", "--catalog", servers.api.url, "--collection", "flaky",
                         "--bbox", servers.bbox, *MAY, "--bands", "B04", "--out", out, *LIMITED)
        took = time.monotonic() - start
    finally:
        flaky.answer_again()
    assert_one_line_error(result, 75, "safe to rerun")
    assert took < 3 * BUDGET, took  # a HEAD and a range read may each wait out the timeout
    assert [p for p in _files(out) if p.suffix == ".tif" or ".part" in p.name] == []


def test_predict_raster_url_behind_a_silent_server_honours_timeout_and_retries(servers, silent,
                                                                               tmp_path):
    """A raster given by URL is opened under the run's --timeout/--retries, not the defaults
    (30 s x 4 tries), so a hung server ends the run in seconds."""
    ckpt = make_checkpoint(tmp_path / "m.safetensors", bands=["red", "green", "blue", "nir"])
    start = time.monotonic()
    result = run_cli("predict", f"{silent.url}/scenes/scene.tif", "--checkpoint", ckpt,
                     "--bands", "red,green,blue,nir", "--out", tmp_path / "maps", *LIMITED)
    took = time.monotonic() - start
    assert_one_line_error(result, 75, "scene.tif", "safe to rerun")
    assert took < BUDGET, took
    assert [p for p in _files(tmp_path / "maps") if p.suffix in (".tif", ".zarr")] == []
