"""A plain raster given by URL: read by HTTP range requests from nginx, through a proxy that
breaks requests on demand; transient failures are retried, a server that stays down is exit 75."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from checkpoints import make_checkpoint
from scenes import smooth_field, write_scene

from spectralmoe_cli.engine.predict.runner import run_predict
from spectralmoe_cli.engine.predict.settings import PredictSettings
from spectralmoe_cli.errors import InputDataError, TransientError
from spectralmoe_cli.io.scene import open_scene
from spectralmoe_cli.net import RetryPolicy

PATH = "/remote/scene.tif"
SETTINGS = PredictSettings(tile=64, overlap=16, bands=["red", "green", "blue", "nir"])


@pytest.fixture(scope="module")
def served(servers):
    """The scene written into nginx's root, as a local file and a URL through the proxy."""
    local = servers.nginx.root / PATH.lstrip("/")
    local.parent.mkdir(exist_ok=True)
    write_scene(local, smooth_field(150, 170, 4, seed=3))
    return local, f"{servers.flaky.url}{PATH}"


def class_map(summary: dict) -> np.ndarray:
    assert "error" not in summary, summary["results"]
    with rasterio.open(summary["results"][0]["outputs"]["cog"]) as cog:
        return cog.read(1)


def test_pixel_reads_that_fail_are_retried(served, flaky):
    local, url = served
    expected = open_scene(local).read([3, 0, 1], 10, 140, 5, 160)
    scene = open_scene(url)
    assert scene.policy is not None
    flaky.fail(3, 503, PATH)  # the header is read: the next requests read pixels
    before = len(flaky.log)
    got = scene.read([3, 0, 1], 10, 140, 5, 160)
    faults = [e for e in flaky.log[before:] if e["fault"]]
    assert faults and all(e["method"] == "GET" for e in faults) and not flaky.faults
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_a_server_that_stays_down_mid_scene_is_transient(served, flaky):
    _, url = served
    # a URL of its own: GDAL's caches (blocks, /vsicurl/ regions) may hold this file's bytes
    # from earlier reads in the process, and a read they answer never reaches the server
    scene = replace(open_scene(f"{url}?{uuid.uuid4().hex}"),
                    policy=RetryPolicy(retries=1, backoff=0.01, timeout=5))
    flaky.down = True
    with pytest.raises(TransientError, match="HTTP 503.*gave up after 2 attempts"):
        scene.read([0, 1, 2, 3], 0, 150, 0, 170)


def test_a_file_that_opens_but_cannot_be_read_is_an_input_error(servers):
    url = f"{servers.flaky.url}/BROKEN_TRUNC/B04.tif"  # the world's truncated COG
    scene = replace(open_scene(url), policy=RetryPolicy(retries=1, backoff=0.01, timeout=5))
    with pytest.raises(InputDataError, match="cannot read .*BROKEN_TRUNC") as caught:
        scene.read([0], 0, scene.height, 0, scene.width)
    assert not isinstance(caught.value, TransientError)


def test_predicting_a_url_equals_predicting_the_file(served, flaky, tmp_path):
    local, url = served
    ckpt = make_checkpoint(tmp_path / "tiny.safetensors")
    expected = class_map(run_predict([str(local)], ckpt, tmp_path / "local", SETTINGS,
                                     device="cpu", progress=False))
    flaky.fail(3, 500, PATH)
    got = class_map(run_predict([url], ckpt, tmp_path / "remote", SETTINGS, device="cpu",
                                progress=False))
    np.testing.assert_array_equal(got, expected)


def test_a_file_replaced_on_the_server_is_predicted_anew(servers, tmp_path):
    path = servers.nginx.root / "remote" / "nightly.tif"
    path.parent.mkdir(exist_ok=True)
    url = f"{servers.flaky.url}/remote/nightly.tif?token=changes-every-night"
    ckpt = make_checkpoint(tmp_path / "tiny.safetensors")
    out = tmp_path / "out"

    def run(token: str) -> dict:
        summary = run_predict([url.replace("every-night", token)], ckpt, out, SETTINGS,
                              device="cpu", progress=False)
        assert "error" not in summary, summary["results"]
        return summary["results"][0]

    write_scene(path, smooth_field(90, 100, 4, seed=5))
    first = run("monday")
    assert Path(first["outputs"]["cog"]).name.startswith("nightly_")
    assert "token" not in json.dumps(first["outputs"]) + Path(first["outputs"]["item"]).read_text()
    assert run("tuesday")["status"] == "skipped"  # same file, new signature: nothing to do
    write_scene(path, smooth_field(90, 100, 4, seed=6))  # same size: only its date tells
    later = path.stat().st_mtime + 5  # this test runs within a second; a nightly one does not
    os.utime(path, (later, later))
    again = run("wednesday")
    assert again["status"] == "done" and again["outputs"]["cog"] != first["outputs"]["cog"]
