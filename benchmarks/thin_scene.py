"""Measure what a thin scene costs per pixel against a square one of about the same pixel count.

Prints one JSON document: seconds per megapixel of ``spectralmoe predict`` (its own "seconds",
model loading excluded) on a 5x20000 strip and on a 316x316 square, and their ratio. Random
weights (speed does not depend on them). ``--root`` measures another checkout of the package
(``git archive <commit> | tar -x -C DIR``), so a change can be compared with what came before:

    python benchmarks/thin_scene.py [--root DIR] [--model spectralmoe_tiny] [--tile 512]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _measure import random_checkpoint  # noqa: E402

from benchmarks.predict import BANDS  # noqa: E402

CASES = {"strip": (5, 20000), "square": (316, 316)}


def write_scene(path: Path, height: int, width: int) -> Path:
    """A 4-band uint8 scene of smooth patterns (small: held in memory at once)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    data = np.stack([100 + 60 * np.sin(yy * f + 1) * np.cos(xx * f) for f in (0.01, 0.02, 0.015, 0.03)])
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 4, "dtype": "uint8",
               "crs": CRS.from_epsg(32633), "transform": Affine(1, 0, 500000, 0, -1, 5200000)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.clip(0, 255).astype("uint8"))
    return path


def run(root: Path, checkpoint: Path, scene: Path, out: Path, tile: int, overlap: int,
        device: str) -> dict:
    """One predict in a fresh process, on the package under ``root``; its summary."""
    cmd = [sys.executable, "-m", "spectralmoe_cli", "-q", "predict", str(scene), "--checkpoint",
           str(checkpoint), "--bands", ",".join(BANDS), "--tile", str(tile), "--overlap",
           str(overlap), "--out", str(out), "--device", device, "--json"]
    env = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, cwd=root)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--model", default="spectralmoe_tiny")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="the fastest of these counts")
    args = parser.parse_args()
    report: dict = {"root": str(args.root.resolve()), "model": args.model, "tile": args.tile,
                    "overlap": args.overlap, "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = random_checkpoint(tmp / "model.safetensors", args.model, BANDS, args.tile,
                                 args.overlap)
        for name, (height, width) in CASES.items():
            scene = write_scene(tmp / f"{name}.tif", height, width)
            runs = [run(args.root.resolve(), ckpt, scene, tmp / f"{name}{n}", args.tile,
                        args.overlap, args.device) for n in range(args.repeats)]
            best = min(runs, key=lambda summary: summary["seconds"])
            report[name] = {"scene": f"{height}x{width}", "pixels": best["pixels"],
                            "tiles": best["tiles"], "seconds": best["seconds"],
                            "s_per_mpix": round(best["seconds"] / (best["pixels"] / 1e6), 3)}
    report["ratio_strip_to_square"] = round(report["strip"]["s_per_mpix"] / report["square"]["s_per_mpix"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
