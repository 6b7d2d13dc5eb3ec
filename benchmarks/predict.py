"""Measure predict: end-to-end vs model-only throughput, peak memory vs scene size, time split.

Prints one JSON document. Everything runs on random weights (speed and memory do not depend on
them). Usage:

    python benchmarks/predict.py [--model spectralmoe_tiny] [--tile 512] [--device cpu]

(a) ratio = end-to-end tiles/s ÷ model-only tiles/s on the same tiles with the same model;
(b) peak RSS of separate ``spectralmoe predict`` processes on a small and a large 4-band scene;
(c) the read/infer/write split reported by predict itself;
(d) the cost of test-time augmentation: model time with --tta flip and d4 over --tta none. On
    a CPU the ratio is of the process's CPU time, which other jobs on a shared machine skew
    less than wall time (both are reported; a busy machine still inflates CPU time through
    threads spinning at their barriers, so measure on a quiet one).

``--parts tta`` runs only (d), ``--parts memory`` only (b), and so on.
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

from _measure import random_checkpoint  # noqa: E402

from spectralmoe_cli.engine.predict.runner import run_predict  # noqa: E402
from spectralmoe_cli.engine.predict.settings import PredictSettings  # noqa: E402
from spectralmoe_cli.engine.runtime.models import load_tile_model  # noqa: E402
from spectralmoe_cli.io.scene import open_scene  # noqa: E402
from spectralmoe_cli.io.tiling import Grid  # noqa: E402

BANDS = ["red", "green", "blue", "nir"]


def write_scene(path: Path, size: int) -> Path:
    """A 4-band uint8 scene written block by block (no scene-sized array here either)."""
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint8",
               "crs": CRS.from_epsg(32633), "transform": Affine(1, 0, 500000, 0, -1, 5200000),
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, size, 512):
            h = min(512, size - y)
            yy = np.arange(y, y + h, dtype=np.float32)[:, None]
            xx = np.arange(size, dtype=np.float32)[None, :]
            block = np.stack([100 + 60 * np.sin(yy * f) * np.cos(xx * f) for f in (0.01, 0.02, 0.015, 0.03)])
            block += rng.normal(0, 5, block.shape)
            dst.write(block.clip(0, 255).astype("uint8"), window=Window(0, y, size, h))
    return path


def model_only(checkpoint: Path, scene: Path, tile: int, overlap: int, device: str,
               batch: int, tta: str = "none") -> tuple[float, int, float]:
    """Tiles/s of the model alone on the scene's own tiles, read into memory first, and the
    process's CPU seconds per tile."""
    tile_model = load_tile_model(checkpoint, device, batch, True, tta=tta)
    handle = open_scene(scene)
    grid = Grid(handle.height, handle.width, tile, tile, tile - overlap)
    origins = [(y, x) for y in grid.rows() for x in grid.cols()]
    tiles = [handle.read([0, 1, 2, 3], y, y + tile, x, x + tile) for y, x in origins]
    data = np.stack([t[0] for t in tiles])
    valid = np.stack([t[1] for t in tiles])
    weights = np.ones((len(tiles), tile, tile), np.float32)
    tile_model.contributions(data[:batch], valid[:batch], weights[:batch])  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for s in range(0, len(tiles), batch):
        tile_model.contributions(data[s:s + batch], valid[s:s + batch], weights[s:s + batch])
    cpu = (time.process_time() - cpu) / len(tiles)
    return len(tiles) / (time.perf_counter() - start), len(tiles), cpu


def rss_run(checkpoint: Path, scene: Path, out: Path, tile: int, overlap: int, device: str) -> dict:
    """One predict in a fresh process; its summary (peak RSS included)."""
    cmd = [sys.executable, "-m", "spectralmoe_cli", "-q", "predict", str(scene), "--checkpoint",
           str(checkpoint), "--bands", ",".join(BANDS), "--tile", str(tile), "--overlap",
           str(overlap), "--out", str(out), "--device", device, "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="spectralmoe_dinov3_vits16",
                        help="model of the throughput measurement (a ViT-S: the 'small model')")
    parser.add_argument("--memory-model", default="spectralmoe_tiny",
                        help="model of the memory measurement (memory flatness does not depend on it)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--throughput-size", type=int, default=1536)
    parser.add_argument("--sizes", default="2048,8192")
    parser.add_argument("--parts", default="throughput,tta,memory",
                        help="comma list of throughput, tta and memory")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    report: dict = {"model": args.model, "memory_model": args.memory_model, "tile": args.tile,
                    "overlap": args.overlap,
                    "device": args.device, "batch_size": args.batch_size,
                    "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = random_checkpoint(tmp / "model.safetensors", args.model, BANDS, args.tile,
                                 args.overlap)
        scene = write_scene(tmp / "throughput.tif", args.throughput_size)
        tiles_per_s, n, cpu_per_tile = model_only(ckpt, scene, args.tile, args.overlap,
                                                  args.device, args.batch_size)
        if "throughput" in parts:
            report["throughput"] = throughput(ckpt, scene, tmp, args, tiles_per_s, n)
        if "tta" in parts:
            report["tta"] = tta_cost(ckpt, scene, args, tiles_per_s, cpu_per_tile)
        if "memory" in parts:
            report["memory"] = memory(tmp, args)
    print(json.dumps(report, indent=2))


def throughput(ckpt: Path, scene: Path, tmp: Path, args: argparse.Namespace, tiles_per_s: float,
               n: int) -> dict:
    """(a) and (c): one predict of the scene beside the model alone on its tiles."""
    settings = PredictSettings(bands=BANDS, tile=args.tile, overlap=args.overlap)
    start = time.perf_counter()
    summary = run_predict([str(scene)], ckpt, tmp / "e2e", settings, device=args.device,
                          batch_size=args.batch_size, deterministic=True, progress=False)
    e2e_seconds = time.perf_counter() - start
    e2e = summary["tiles"] / e2e_seconds
    return {
        "scene": f"{args.throughput_size}x{args.throughput_size}x4", "tiles": n,
        "model_only_tiles_per_s": round(tiles_per_s, 3),
        "end_to_end_tiles_per_s": round(e2e, 3),
        "end_to_end_mpix_per_s": round(args.throughput_size ** 2 / 1e6 / e2e_seconds, 4),
        "ratio": round(e2e / tiles_per_s, 3), "target": 0.85,
        "time_split_s": summary["time_split_s"],
    }


def tta_cost(ckpt: Path, scene: Path, args: argparse.Namespace, tiles_per_s: float,
             cpu_per_tile: float) -> dict:
    """(d): on a CPU the cost is CPU time, less skewed by other jobs than wall time; on an
    accelerator it is wall time (the CPU only waits there)."""
    wall = {"none": 1 / tiles_per_s}
    cpu = {"none": cpu_per_tile}
    for mode in ("flip", "d4"):
        rate, _, cpu[mode] = model_only(ckpt, scene, args.tile, args.overlap, args.device,
                                        args.batch_size, mode)
        wall[mode] = 1 / rate
    basis = cpu if args.device == "cpu" else wall
    return {"model_seconds_per_tile": {m: round(v, 4) for m, v in wall.items()},
            "cpu_seconds_per_tile": {m: round(v, 4) for m, v in cpu.items()},
            "cost_basis": "cpu" if basis is cpu else "wall",
            "cost_vs_none": {m: round(basis[m] / basis["none"], 2) for m in ("flip", "d4")},
            "expected": {"flip": 3, "d4": 8}}


def memory(tmp: Path, args: argparse.Namespace) -> dict:
    """(b): peak RSS of predict processes on scenes of growing size (it should stay flat)."""
    runs = {}
    small = random_checkpoint(tmp / "memory.safetensors", args.memory_model, BANDS, args.tile,
                              args.overlap)
    for size in (int(s) for s in args.sizes.split(",")):
        path = write_scene(tmp / f"scene{size}.tif", size)
        run = rss_run(small, path, tmp / f"rss{size}", args.tile, args.overlap, args.device)
        runs[f"{size}x{size}"] = {"peak_rss_mb": run["peak_rss_mb"], "seconds": run["seconds"],
                                  "time_split_s": run["time_split_s"], "tiles": run["tiles"]}
        path.unlink()
    peaks = [m["peak_rss_mb"] for m in runs.values()]
    return {**runs, "ratio_largest_to_smallest": round(max(peaks) / min(peaks), 3), "target": 1.3}

if __name__ == "__main__":
    main()
