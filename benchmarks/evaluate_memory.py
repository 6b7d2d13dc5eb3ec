"""Measure evaluate's peak memory against the size of a labelled scene: it must stay flat.

Prints one JSON document. A random tiny model (memory does not depend on the weights) scores a
synthetic 3-band scene and its single-band label raster, each written block by block, in a fresh
``spectralmoe evaluate`` process per size; the process reports its own peak RSS. Usage:

    python benchmarks/evaluate_memory.py [--sizes 2048,8192] [--tile 512] [--device cpu]

The target: the largest scene's peak RSS within 1.3x the smallest's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _measure import measured_cli, random_checkpoint  # noqa: E402

BANDS = ["red", "green", "blue"]
CLASSES = 6


def write_labelled(folder: Path, size: int) -> Path:
    """images/scene.tif (3-band uint8) and labels/scene.tif (classes 0..5), block by block."""
    profile = {"driver": "GTiff", "width": size, "height": size, "crs": CRS.from_epsg(32633),
               "transform": Affine(1, 0, 500000, 0, -1, 5200000), "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "dtype": "uint8"}
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    with rasterio.open(folder / "images" / "scene.tif", "w", count=3, **profile) as image, \
            rasterio.open(folder / "labels" / "scene.tif", "w", count=1, **profile) as label:
        for y in range(0, size, 512):
            h = min(512, size - y)
            yy = np.arange(y, y + h, dtype=np.float32)[:, None]
            xx = np.arange(size, dtype=np.float32)[None, :]
            block = np.stack([100 + 60 * np.sin(yy * f) * np.cos(xx * f) for f in (0.01, 0.02, 0.015)])
            block += rng.normal(0, 5, block.shape)
            image.write(block.clip(0, 255).astype("uint8"), window=Window(0, y, size, h))
            classes = (((yy // 97) + (xx // 131)) % CLASSES).astype("uint8")
            label.write(classes[None], window=Window(0, y, size, h))
    return folder


def write_classes(path: Path) -> Path:
    path.write_text("".join(f'[[classes]]\nvalue = {i}\nname = "c{i}"\ncolor = "#808080"\n'
                            for i in range(CLASSES)))
    return path


def evaluate_rss(checkpoint: Path, folder: Path, classes: Path, device: str, batch_size: int) -> dict:
    """One evaluate in a fresh process: its peak RSS, wall time and labelled pixels."""
    start = time.perf_counter()
    result, peak_mb = measured_cli("evaluate", str(checkpoint), str(folder), "--bands",
                                   ",".join(BANDS), "--classes", str(classes), "--device", device,
                                   "--batch-size", str(batch_size), "--json")
    seconds = time.perf_counter() - start
    return {"peak_rss_mb": round(peak_mb, 1), "seconds": round(seconds, 1),
            "pixels": json.loads(result.stdout)["pixels"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="spectralmoe_tiny")
    parser.add_argument("--sizes", default="2048,8192")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()
    report: dict = {"model": args.model, "tile": args.tile, "overlap": args.overlap,
                    "device": args.device, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = random_checkpoint(tmp / "model.safetensors", args.model, BANDS, args.tile,
                                 args.overlap, CLASSES)
        classes = write_classes(tmp / "classes.toml")
        memory = {}
        for size in (int(s) for s in args.sizes.split(",")):
            folder = write_labelled(tmp / f"labelled{size}", size)
            memory[f"{size}x{size}"] = evaluate_rss(ckpt, folder, classes, args.device, args.batch_size)
        peaks = [m["peak_rss_mb"] for m in memory.values()]
        report["memory"] = {**memory, "ratio_largest_to_smallest": round(max(peaks) / min(peaks), 3),
                            "target": 1.3}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
