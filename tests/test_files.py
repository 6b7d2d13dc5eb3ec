"""Atomic writes: a file appears whole under its name or not at all, whatever the writer."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from spectralmoe_cli.files import (
    PARTIAL,
    csv_text,
    discard_partials,
    write_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_failing_writer_leaves_nothing_under_the_final_name(tmp_path):
    target = tmp_path / "out" / "map.tif"

    def half_then_fail(tmp):
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_atomic(target, half_then_fail)
    assert _listing(target.parent) == []


def test_a_failing_writer_keeps_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"miou": 0.5})
    with pytest.raises(ValueError):
        write_json_atomic(target, {"miou": float("nan")}, allow_nan=False)
    assert json.loads(target.read_text()) == {"miou": 0.5}
    assert _listing(tmp_path) == ["metrics.json"]


def test_the_writer_gets_a_temporary_path_beside_the_target_with_its_suffix(tmp_path):
    target = tmp_path / "spill.npy"
    seen = []

    def save(tmp):
        seen.append(tmp)
        assert not target.exists()  # nothing under the final name while writing
        np.save(tmp, np.arange(3))  # np.save adds .npy to a name without it

    write_atomic(target, save)
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".spill.npy.")
    assert seen[0].name.endswith(f"{PARTIAL}.npy")
    assert np.load(target).tolist() == [0, 1, 2]
    assert _listing(tmp_path) == ["spill.npy"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_bytes_text_and_json_variants(tmp_path):
    write_bytes_atomic(tmp_path / "a.bin", b"\x00\x01")
    write_text_atomic(tmp_path / "b.csv", csv_text([["x", "y"], [1, ""]]))
    write_json_atomic(tmp_path / "c.json", {"b": 1, "a": [1.5, None]}, sort_keys=True)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.csv").read_bytes() == b"x,y\r\n1,\r\n"  # newlines as given
    assert (tmp_path / "c.json").read_text() == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}\n'


def test_discard_partials_removes_only_that_files_leftovers(tmp_path):
    target = tmp_path / "scene.tif"
    leftovers = [f".scene.tif.abc123{PARTIAL}.tif", f".scene.tif.abc123{PARTIAL}.tif.staging.tif"]
    kept = ["scene.tif", ".scene.png.xyz.part.png", "other.tif"]
    for name in leftovers + kept:
        (tmp_path / name).write_bytes(b"x")
    discard_partials(target)
    assert _listing(tmp_path) == sorted(kept)
