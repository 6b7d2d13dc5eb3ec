"""Distributed predict on real dask clusters gives the local run's map, even when a worker dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checkpoints import make_checkpoint
from helpers import ROOT, assert_one_line_error, run_cli, run_cli_process
from scenes import smooth_field, write_scene

ARGS = ["--bands", "red,green,blue,nir", "--tile", "64", "--overlap", "16", "--chunk", "96",
        "--deterministic", "--json"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cog_bytes(stdout: str) -> bytes:
    summary = json.loads(stdout)
    return Path(summary["results"][0]["outputs"]["cog"]).read_bytes()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    scene = write_scene(root / "scene.tif", smooth_field(400, 380, 4, seed=4))
    ckpt = make_checkpoint(root / "m.safetensors")
    local = run_cli("predict", scene, "--checkpoint", ckpt, *ARGS, "--out", root / "local")
    assert local.returncode == 0, local.stderr
    return scene, ckpt, _cog_bytes(local.stdout)


@pytest.mark.slow
def test_local_cluster_of_two_workers_gives_the_local_map(setup, tmp_path):
    scene, ckpt, reference = setup
    # a separate process: a LocalCluster sets OMP_NUM_THREADS=1 and friends in its parent's environment
    result = run_cli_process("predict", scene, "--checkpoint", ckpt, *ARGS, "--cluster", "local:2",
                             "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert _cog_bytes(result.stdout) == reference
    summary = json.loads(result.stdout)
    assert summary["workers"] == 2
    per_worker = summary["results"][0]["workers"]
    assert sum(w["chunks"] for w in per_worker.values()) == summary["results"][0]["chunks_computed"] == 20


@pytest.fixture
def dask_cluster(tmp_path):
    """A real scheduler and two workers (no nanny: a killed worker stays dead)."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                               "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"tcp://127.0.0.1:{port}"
    for name in ("w1", "w2"):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
             "--no-nanny", "--name", name, "--no-dashboard", "--local-directory", str(tmp_path / name)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with Client(address, timeout="2s") as client:
                if len(client.scheduler_info()["workers"]) == 2:
                    break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        pytest.fail("dask cluster did not start")
    yield address, {"w1": procs[1], "w2": procs[2]}
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_a_worker_killed_mid_run_still_gives_the_same_map(setup, dask_cluster, tmp_path):
    scene, ckpt, reference = setup
    address, workers = dask_cluster
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "spectralmoe_cli", "predict", str(scene),
                             "--checkpoint", str(ckpt), *ARGS, "--scheduler", address, "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        done = list(out.glob("*.zarr.partial/_chunks_done/[0-9]*.[0-9]*"))
        if len(done) >= 3:
            break
        time.sleep(0.05)
    workers["w2"].send_signal(signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert 3 <= len(done) < 20, "the worker must die mid-run"
    assert _cog_bytes(stdout) == reference
    per_worker = json.loads(stdout)["results"][0]["workers"]
    assert per_worker["w1"]["chunks"] > 0


def test_unreachable_scheduler_is_transient(setup, tmp_path):
    scene, ckpt, _ = setup
    port = _free_port()
    result = run_cli("predict", scene, "--checkpoint", ckpt, *ARGS, "--scheduler",
                     f"tcp://127.0.0.1:{port}", "--out", tmp_path)
    assert_one_line_error(result, 75, "cannot reach the dask scheduler")
    assert_one_line_error(run_cli("predict", scene, "--checkpoint", ckpt, *ARGS, "--cluster", "gpu:2",
                                  "--out", tmp_path), 2, "local:N")
