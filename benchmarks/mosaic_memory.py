"""Measure ``predict --mosaic``'s peak memory: a 3x3 grid of items against one item.

Prints one JSON document. Nine 4-band uint16 rasters in EPSG:32632 (each SIZE pixels a side,
10 m, side by side) are mosaicked in EPSG:32633, so every read goes through a warped view; then
one of them alone, the same way. Each run is a fresh ``spectralmoe predict`` process, whose own
summary reports its peak RSS (VmHWM). Memory follows the chunk, not the AOI or the number of
items, so the two peaks must agree within 30 %. Usage:

    python benchmarks/mosaic_memory.py [--size 768] [--chunk 512] [--grid 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from checkpoints import make_checkpoint  # noqa: E402

BANDS = ["red", "green", "blue", "nir"]
LEFT, TOP = 690000.0, 5330000.0  # EPSG:32632, just west of 12°E


def write_items(folder: Path, size: int, grid: int) -> list[Path]:
    """``grid`` x ``grid`` tiled uint16 rasters of smooth fields, edge to edge."""
    folder.mkdir(parents=True)
    paths = []
    for row in range(grid):
        for col in range(grid):
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
            bands = np.stack([4000 + 2500 * np.sin((yy + row * size) / f) * np.cos(xx / 23)
                              for f in (17, 19, 23, 29)]).astype(np.uint16)
            path = folder / f"item_{row}_{col}.tif"
            transform = Affine(10, 0, LEFT + col * size * 10, 0, -10, TOP - row * size * 10)
            with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=4,
                               dtype="uint16", crs="EPSG:32632", transform=transform, nodata=0,
                               tiled=True, blockxsize=256, blockysize=256,
                               compress="deflate") as dst:
                dst.write(bands)
            paths.append(path)
    return paths


def mosaic_rss(checkpoint: Path, paths: list[Path], out: Path, chunk: int) -> dict:
    """One mosaic in a fresh process: its peak RSS, wall time and pixels."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "spectralmoe_cli", "-q", "predict", *map(str, paths),
           "--mosaic", "--crs", "EPSG:32633", "--bands", ",".join(BANDS),
           "--checkpoint", str(checkpoint), "--out", str(out), "--chunk", str(chunk),
           "--format", "cog", "--device", "cpu", "--json"]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"predict failed: {result.stderr[-2000:]}")
    summary = json.loads(result.stdout)
    return {"items": len(paths), "peak_rss_mb": round(summary["peak_rss_mb"], 1),
            "seconds": round(seconds, 1), "pixels": summary["pixels"]}


def measure(size: int, chunk: int, grid: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = make_checkpoint(tmp / "model.safetensors", bands=BANDS, mean=4000.0,
                               std=2000.0)
        paths = write_items(tmp / "items", size, grid)
        many = mosaic_rss(ckpt, paths, tmp / "many", chunk)
        one = mosaic_rss(ckpt, paths[:1], tmp / "one", chunk)
    return {"size": size, "chunk": chunk, "grid": f"{grid}x{grid}", "one_item": one,
            "all_items": many, "ratio": round(many["peak_rss_mb"] / one["peak_rss_mb"], 3),
            "target": 1.3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--grid", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.size, args.chunk, args.grid), indent=2))


if __name__ == "__main__":
    main()
