"""A full disk is one line and exit 74, never "internal error ... this is a bug".

Each test mounts a real, small tmpfs (the tests run as root in CI; elsewhere they are skipped),
fills it to leave a few KiB, and runs a command into it: exit 74, one ``error:`` line naming the
full disk and the path, no traceback, nothing under a final name. Freeing the space and running
the same command again then finishes (predict resumes its partial store).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from checkpoints import make_checkpoint
from helpers import assert_one_line_error, potsdam_folder, run_cli
from scenes import smooth_field, write_scene

from spectralmoe_cli.errors import EXIT_CODES, DiskError
from spectralmoe_cli.files import write_text_atomic

SIZE_KIB = 4096


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted on ``tmp_path/disk``, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_KIB}k", "tmpfs",
                              str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave_kib: int) -> Path:
    """A file that takes all but ``leave_kib`` KiB of the disk."""
    filler = disk / "filler.bin"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - leave_kib * 1024))
    return filler


def finals(folder: Path, *suffixes: str) -> list[Path]:
    """Outputs under a final name; the run's own record (``runs/``, each run's summary, written
    when the disk still has room for it) is not an output."""
    return [p for p in folder.rglob("*") if p.suffix in suffixes and ".part" not in p.name
            and not p.name.endswith(".partial") and "runs" not in p.relative_to(folder).parts]


def test_exit_74_is_in_the_contract_and_the_readme():
    assert DiskError.exit_code == 74 and 74 in EXIT_CODES
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "| 74 | I/O error" in readme


def test_atomic_write_on_a_full_disk_is_disk_error_and_leaves_nothing(small_disk):
    fill(small_disk, 8)
    target = small_disk / "report.txt"
    with pytest.raises(DiskError, match="no space left on the disk") as caught:
        write_text_atomic(target, "x" * 200_000)
    assert str(target) in str(caught.value) and str(small_disk) in str(caught.value)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler.bin"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors")


def test_predict_on_a_full_disk_exits_74_then_resumes(small_disk, ckpt, tmp_path):
    scene = write_scene(tmp_path / "scene.tif", smooth_field(400, 400, 4, seed=3))
    filler = fill(small_disk, 24)
    out = small_disk / "maps"
    args = ["predict", scene, "--checkpoint", ckpt, "--bands", "red,green,blue,nir",
            "--tile", 64, "--overlap", 16, "--chunk", 128, "--out", out]
    result = run_cli(*args)
    assert_one_line_error(result, 74, "no space left on the disk", str(small_disk), str(out))
    assert "internal error" not in result.stderr
    assert finals(out, ".tif", ".zarr", ".json", ".png") == []

    filler.unlink()
    again = run_cli(*args, "--json")
    assert again.returncode == 0, again.stderr
    outputs = json.loads(again.stdout)["results"][0]["outputs"]
    assert Path(outputs["cog"]).is_file()
    assert not list(out.glob("*.partial*"))


@pytest.mark.slow
def test_evaluate_report_on_a_full_disk_exits_74(small_disk, shared_data, tmp_path):
    folder = potsdam_folder(shared_data, tmp_path / "data", tile=128, domain="vaihingen")
    model = make_checkpoint(tmp_path / "m.safetensors", bands=["red", "green", "blue"],
                            num_classes=6, mean=110.0, std=55.0,
                            class_names=["impervious_surface", "building", "low_vegetation",
                                         "tree", "car", "clutter"])
    filler = fill(small_disk, 16)
    out = small_disk / "report"
    args = ["evaluate", model, folder, "--bands", "red,green,blue",
            "--classes", tmp_path / "isprs.toml", "--reduce-zero-label", "--out", out]
    result = run_cli(*args)
    assert_one_line_error(result, 74, "no space left on the disk", str(small_disk))
    # each report is written whole or not at all: what exists is complete, nothing half-made
    assert [p for p in out.rglob("*") if ".part" in p.name] == []
    for report in out.rglob("*.json"):
        json.loads(report.read_text())
    filler.unlink()
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr

