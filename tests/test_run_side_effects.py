"""A run changes nothing in the process once it is over: no GDAL option, no GDAL block cache
limit, no open ``rasterio.Env``, no environment variable. A library user (or the next test)
runs its own GDAL reads after ours, with its own settings.

GDAL's block cache limit is process-wide. ``rasterio.Env(GDAL_CACHEMAX=...)`` nested in another
``Env`` left it set when it closed: after one ``fetch`` (whose COG writes run inside its
network ``Env``), GDAL cached 128 bytes of blocks, so every later read in the process asked the
server again for tiles it had just read.
"""

from __future__ import annotations

import os
import threading

import rasterio
from checkpoints import reflectance_checkpoint
from rasterio.env import get_gdal_config, hasenv
from served_world import MAY, predict

from spectralmoe_cli.io.gdal_cache import block_cache, cache_limit
from spectralmoe_cli.net import RetryPolicy

BANDS = ["red", "green", "blue", "nir", "swir16"]
ITEMS = ("S2T_WEST", "S2T_EAST")
OPTIONS = sorted({*RetryPolicy().gdal_env(), "GDAL_NUM_THREADS", "GDAL_CACHEMAX"})


def process_state() -> dict:
    return {"gdal options": {k: get_gdal_config(k, normalize=False) for k in OPTIONS},
            "rasterio Env open": hasenv(), "environment": dict(os.environ)}


def test_fetch_then_predict_leave_the_process_as_they_found_it(servers, tmp_path):
    ckpt = reflectance_checkpoint(tmp_path / "ckpt", BANDS)
    before = process_state()
    fetched = servers.fetch(tmp_path / "fetched", "s2-test", "--bands", "B04,B03,B02,B08,B11")
    assert fetched.returncode == 0, fetched.stderr
    assert process_state() == before
    # local COGs (read on predict's reader thread) and the items' assets over HTTP
    run = predict(ckpt, tmp_path / "out", *[tmp_path / "fetched" / i / f"{i}.tif" for i in ITEMS],
                  "--stac", servers.api.url, "--collection", "s2-test", "--bbox", servers.bbox,
                  *MAY)
    assert run.returncode == 0, run.stderr[-3000:]
    assert process_state() == before


def test_block_cache_inside_an_env_and_across_threads_gives_the_limit_back():
    start = cache_limit()
    with rasterio.Env(GDAL_HTTP_TIMEOUT=5):  # as fetch's COG writes sit in its network Env
        with block_cache(128 * 2**20):
            assert cache_limit() == 128 * 2**20
        assert cache_limit() == start
    assert cache_limit() == start
    # a reader thread holds a limit while the main thread takes and leaves another
    held, leave = threading.Event(), threading.Event()

    def reader() -> None:
        with block_cache(64 * 2**20):
            held.set()
            leave.wait(10)

    thread = threading.Thread(target=reader)
    thread.start()
    held.wait(10)
    with block_cache(128 * 2**20):
        assert cache_limit() == 128 * 2**20
    assert cache_limit() == 64 * 2**20  # the reader's still holds
    leave.set()
    thread.join()
    assert cache_limit() == start


def test_an_explicit_gdal_cachemax_in_the_environment_wins(monkeypatch):
    monkeypatch.setenv("GDAL_CACHEMAX", "256")
    start = cache_limit()
    with block_cache(64 * 2**20):
        assert cache_limit() == start
