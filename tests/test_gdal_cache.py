"""Reading a scene keeps GDAL's block cache at ``READ_CACHE_BYTES``: bounded (memory flat in
scene size) and still a working cache, set around each read rather than at import.

GDAL's cache use is read from the GDAL library rasterio has loaded (found in /proc/self/maps),
while the scene is being read, by a thread that polls it.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from spectralmoe_cli.io.scene import READ_CACHE_BYTES, open_scene

SIDE = 4096  # 4 bands of uint16: 128 MiB of blocks, twice the bound


def _libgdal() -> ctypes.CDLL:
    maps = Path("/proc/self/maps")
    if not sys.platform.startswith("linux") or not maps.exists():
        pytest.skip("finds the loaded GDAL library through /proc/self/maps (Linux)")
    mapped = {line.split()[-1] for line in maps.read_text().splitlines() if "/libgdal" in line}
    assert mapped, "rasterio is imported, so a libgdal must be mapped"
    # rasterio's own copy where wheels bundle one: pyogrio's maps a second, with its own cache
    paths = {p for p in mapped if "/rasterio" in p} or mapped
    lib = ctypes.CDLL(sorted(paths)[0])
    lib.GDALGetCacheUsed64.restype = ctypes.c_int64
    return lib


def _write_big_scene(path: Path) -> None:
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", driver="GTiff", width=SIDE, height=SIDE, count=4, dtype="uint16",
                       crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5000000),
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        for y in range(0, SIDE, 1024):
            dst.write(rng.integers(1, 9999, (4, 1024, SIDE), dtype=np.uint16),
                      window=((y, y + 1024), (0, SIDE)))


@pytest.mark.slow
def test_scene_reads_keep_gdal_cache_bounded_and_working(tmp_path, monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    path = tmp_path / "big.tif"
    _write_big_scene(path)
    lib = _libgdal()
    scene = open_scene(path)
    peak, done = 0, threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, lib.GDALGetCacheUsed64())
            time.sleep(0.001)

    watcher = threading.Thread(target=poll)
    watcher.start()
    try:
        for y in range(0, SIDE, 2048):
            for x in range(0, SIDE, 2048):
                scene.read([0, 1, 2, 3], y, y + 2048, x, x + 2048)
    finally:
        done.set()
        watcher.join()
    assert READ_CACHE_BYTES / 4 < peak <= READ_CACHE_BYTES * 1.05, peak / 2**20
