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
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spectralmoe_cli.checkpoint import BandInfo, CheckpointMeta, ClassInfo, TileDefaults  # noqa: E402
from spectralmoe_cli.config import load_config  # noqa: E402
from spectralmoe_cli.engine.runtime.models import build_model, save_model  # noqa: E402

BANDS = ["red", "green", "blue"]
CLASSES = 6
# runs the real CLI entry point, then prints the process's own peak RSS (kB on Linux) last
MEASURED = ("import resource, sys\n"
            "from spectralmoe_cli import cli\n"
            "try:\n    cli.main()\n"
            "finally:\n    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def random_checkpoint(path: Path, model: str, tile: int, overlap: int) -> Path:
    cfg = load_config(model).with_data(BANDS, CLASSES)
    backbone = cfg.backbone.model_copy(update={"weights": "random"})
    depth = cfg.depth.model_copy(update={"weights": "random"}) if cfg.depth else None
    cfg = cfg.model_copy(update={"backbone": backbone, "depth": depth})
    torch.manual_seed(0)
    net = build_model(cfg, pretrained=False)
    meta = CheckpointMeta(model=net.cfg, bands=[BandInfo(name=b) for b in BANDS],
                          mean=[100.0] * 3, std=[50.0] * 3,
                          classes=[ClassInfo(value=i, name=f"c{i}", color="#808080") for i in range(CLASSES)],
                          tile=TileDefaults(size=tile, overlap=overlap), contains=[],
                          provenance={"note": "benchmark: random weights"})
    save_model(path, net, meta)
    return path


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
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", MEASURED, "-q", "evaluate", str(checkpoint), str(folder),
           "--bands", ",".join(BANDS), "--classes", str(classes), "--device", device,
           "--batch-size", str(batch_size), "--json"]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"evaluate failed: {result.stderr[-2000:]}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return {"peak_rss_mb": round(peak_kb / 1024, 1), "seconds": round(seconds, 1),
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
        ckpt = random_checkpoint(tmp / "model.safetensors", args.model, args.tile, args.overlap)
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
