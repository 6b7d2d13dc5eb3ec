"""Helpers shared by the tests (imported as a plain module; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """A test that cannot run here is skipped, saying why; under ``CI=true`` it fails instead,
    because CI provides everything the tests need, so a suite cannot go missing unnoticed."""
    if in_ci():
        pytest.fail(f"CI=true, yet {reason}", pytrace=False)
    pytest.skip(reason)


def run_cli(*args: object, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``spectralmoe ARGS`` through the real entry point (``cli.main``) in this process.

    Exit code, stdout and stderr are what a shell would see; it saves the interpreter start and
    the imports of a subprocess. ``run_cli_process`` runs a real separate process.
    """
    from spectralmoe_cli import cli

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["spectralmoe", *argv]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def run_cli_process(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m spectralmoe_cli ARGS`` as a separate process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "spectralmoe_cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """A user error: the expected exit code, one 'error:' line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


ISPRS_CLASSES = """\
[[classes]]
value = 0
name = "impervious_surface"
color = "#ffffff"
[[classes]]
value = 1
name = "building"
color = "#0000ff"
[[classes]]
value = 2
name = "low_vegetation"
color = "#00ffff"
[[classes]]
value = 3
name = "tree"
color = "#00ff00"
[[classes]]
value = 4
name = "car"
color = "#ffff00"
[[classes]]
value = 5
name = "clutter"
color = "#ff0000"
"""


def write_geotiff(path: Path, array, crs: str | None = "EPSG:32632", transform=None,
                  nodata: float | None = None) -> Path:
    """A GeoTIFF from a [bands, H, W] or [H, W] array (default grid: 0.5 m pixels)."""
    import numpy as np
    import rasterio

    data = np.asarray(array)
    data = data[None] if data.ndim == 2 else data
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, nodata=nodata,
                       transform=transform or rasterio.Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 5000000.0)) as ds:
        ds.write(data)
    return path


def potsdam_folder(shared: Path, dest: Path, tile: int = 256, domain: str = "potsdam") -> Path:
    """A labelled folder (PNG images/ + labels/) cut from the real ISPRS crop, and isprs.toml."""
    import numpy as np
    from PIL import Image

    src = shared / "mmseg_isprs_loveda_samples" / domain
    stem = {"potsdam": "2_10_0_0_512_512", "vaihingen": "area1_0_0_512_512"}[domain]
    image = np.array(Image.open(src / "img" / f"{stem}.png"))
    label = np.array(Image.open(src / "ann" / f"{stem}.png"))
    (dest / "images").mkdir(parents=True)
    (dest / "labels").mkdir()
    for row in range(0, 512, tile):
        for col in range(0, 512, tile):
            name = f"{domain}_{row}_{col}.png"
            Image.fromarray(image[row:row + tile, col:col + tile]).save(dest / "images" / name)
            Image.fromarray(label[row:row + tile, col:col + tile]).save(dest / "labels" / name)
    (dest.parent / "isprs.toml").write_text(ISPRS_CLASSES)
    return dest
