"""Reliability promises of issue 15 that need more than one command to show: a damaged output is
made again, every run keeps its summary, a bug among failures is not "partial", an off-scale scene
is warned about, the label renumbering is on record, and Ctrl-C says how to resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from checkpoints import make_checkpoint
from helpers import ROOT, assert_one_line_error, run_cli
from safetensors.torch import save_file
from scenes import smooth_field, write_scene

from spectralmoe_cli.checkpoint import content_hash, load_checkpoint, read_metadata
from spectralmoe_cli.engine.labelled.classes import ClassSpec
from spectralmoe_cli.engine.predict.runner import _failure
from spectralmoe_cli.engine.predict.scene import SceneResult
from spectralmoe_cli.engine.predict.value_range import scale_warning
from spectralmoe_cli.text import shown

RGBN = ["red", "green", "blue", "nir"]


@pytest.fixture(scope="module")
def ck(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "ck.safetensors")


@pytest.fixture
def scene(tmp_path) -> Path:
    return write_scene(tmp_path / "scene.tif", smooth_field(40, 50, 4), descriptions=RGBN)


def _predict(scene: Path, ck: Path, out: Path, *extra: str):
    return run_cli("predict", scene, "-c", ck, "-o", out, "--format", "cog", *extra)


def test_a_damaged_existing_output_is_written_again(scene, ck, tmp_path):
    out = tmp_path / "out"
    assert _predict(scene, ck, out, "--format", "cog,zarr").returncode == 0
    cog = next(out.glob("scene_*.tif"))
    cog.write_bytes(cog.read_bytes()[:600])  # someone's half-copied file, under the final name
    next(out.glob("scene_*.json")).unlink()
    next(out.glob("scene_*.png")).unlink()  # the quicklook is drawn from the damaged map
    again = _predict(scene, ck, out, "--format", "cog,zarr")
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert "writing it again" in again.stderr
    with rasterio.open(cog) as ds:
        assert ds.read(1).shape == (40, 50)


def test_runs_into_one_out_each_keep_their_own_summary(scene, ck, tmp_path):
    out = tmp_path / "out"
    other = write_scene(tmp_path / "other.tif", smooth_field(40, 50, 4, seed=3), descriptions=RGBN)
    first, second = _predict(scene, ck, out, "--json"), _predict(other, ck, out, "--json")
    mine = [json.loads(r.stdout)["run_summary_file"] for r in (first, second)]
    assert mine[0] != mine[1] and sorted(map(str, (out / "runs").iterdir())) == sorted(mine)
    assert [json.loads(Path(p).read_text())["results"][0]["scene"] for p in mine] == [str(scene), str(other)]
    assert json.loads((out / "spectralmoe-summary.json").read_text())["results"][0]["scene"] == str(other)


def _failed(code: int | None) -> SceneResult:
    return SceneResult(scene=f"s{code}.tif", status="failed", error="broken", exit_code=code)


def test_a_bug_among_mixed_failures_exits_1_not_4():
    assert _failure([_failed(3), _failed(1)], 2).exit_code == 1
    assert _failure([_failed(3), _failed(75)], 3).exit_code == 4
    assert _failure([_failed(3)], 1).exit_code == 3


def test_a_0_to_1_scene_for_an_8_bit_checkpoint_is_warned_about(ck):
    meta = read_metadata(ck)  # trained on values around 100 +- 50
    valid = np.ones((40, 50), bool)
    eight_bit = smooth_field(40, 50, 4)
    assert scale_warning(eight_bit, valid, meta) is None
    assert "check the scaling" in scale_warning(eight_bit / 255, valid, meta)
    assert scale_warning(eight_bit * 1000, valid, meta) is not None
    assert scale_warning(eight_bit / 255, np.zeros((40, 50), bool), meta) is None


def test_the_warning_is_logged_once_per_scene(ck, tmp_path):
    scene = write_scene(tmp_path / "float.tif", smooth_field(40, 50, 4) / 255, descriptions=RGBN)
    result = _predict(scene, ck, tmp_path / "out", "--chunk", "32")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("check the scaling") == 1


def test_renumbered_labels_are_on_record_and_shown_by_info(ck, tmp_path):
    spec = ClassSpec(values=((10,), (20,), (30,)), names=("a", "b", "c"), colors=("#000000",) * 3,
                     ignore=(255,), reduce_zero_label=False, source="classes.toml")
    assert spec.renumbering() == "10->0, 20->1, 30->2"
    reduced = ClassSpec(**{**spec.__dict__, "values": ((0,), (1,), (2,)), "reduce_zero_label": True})
    assert reduced.renumbering() == "1->0, 2->1, 3->2"  # the zero reduction is a renumbering too
    assert ClassSpec(**{**spec.__dict__, "values": ((0,), (1,), (2,))}).renumbering() is None
    tensors, meta = load_checkpoint(ck)
    header = meta.model_dump(mode="json")
    header["provenance"] = {"labels": spec.to_json()}  # as train records it
    header.pop("content_hash")
    header["content_hash"] = content_hash(tensors, header)
    trained = tmp_path / "trained.safetensors"
    save_file(tensors, str(trained), metadata={"spectralmoe": json.dumps(header)})
    result = run_cli("info", "-c", trained)
    assert result.returncode == 0, result.stderr
    assert "stored value -> class: 10->0, 20->1, 30->2" in result.stdout
    assert json.loads(run_cli("info", "-c", trained, "--json").stdout)["label_values"] == "10->0, 20->1, 30->2"


def test_shown_escapes_every_control_character():
    assert shown("plain é 水") == "plain é 水"
    assert shown("a\nerror: b\x1b[31m\t\x7f\u2028") == "a\\nerror: b\\x1b[31m\\t\\x7f\\u2028"


def test_a_forged_error_line_in_a_message_stays_on_its_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('"tile\\nerror: forged" = 3')
    result = run_cli("predict", "s.tif", "-o", tmp_path / "out", "--config", config)
    assert_one_line_error(result, 2, "unknown key", "\\nerror: forged")


@pytest.mark.slow
def test_ctrl_c_exits_130_and_says_how_to_resume(ck, tmp_path):
    big = write_scene(tmp_path / "big.tif", smooth_field(1000, 1000, 4), descriptions=RGBN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "spectralmoe_cli", "predict", str(big), "-c", str(ck),
                                "-o", str(out), "--chunk", "128"], cwd=ROOT, env=env,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not list(out.glob("*.zarr.partial")) and time.monotonic() < deadline:  # mid-scene
        time.sleep(0.5)
    time.sleep(1)
    assert process.poll() is None, "finished before it could be interrupted: use a bigger scene"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted; rerun the same command to resume"
