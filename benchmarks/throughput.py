"""Model-only and end-to-end predict throughput, FLOPs per tile, MFU, busy fraction, peak memory.

One command, one JSON document. Random weights (speed does not depend on them):

    python benchmarks/throughput.py                      # CPU: a small model
    python benchmarks/throughput.py --device cuda:0      # GPU: DINOv3 ViT-L/16 + DFM ViT-L, bf16

MFU = achieved model FLOP/s ÷ the device's peak (dense bf16 for known GPUs; pass
--peak-tflops for others, e.g. a CPU). FLOPs are counted once per tile with
torch.utils.flop_counter on the meta device (multiply-add = 2 FLOPs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _measure import random_checkpoint  # noqa: E402
from predict import BANDS, write_scene  # noqa: E402

from spectralmoe_cli.config import load_config  # noqa: E402
from spectralmoe_cli.engine.predict.runner import peak_rss_mb, run_predict  # noqa: E402
from spectralmoe_cli.engine.predict.settings import PredictSettings  # noqa: E402
from spectralmoe_cli.engine.runtime.models import load_tile_model  # noqa: E402
from spectralmoe_cli.nn.segmentor import Segmentor  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "L40S": 362.0,
                    "A10G": 125.0, "L4": 121.0}


def flops_per_tile(model: str, tile: int) -> float:
    with torch.device("meta"):
        net = Segmentor(load_config(model).with_data(BANDS, 6)).eval().requires_grad_(False)
        x = torch.randn(1, len(BANDS), tile, tile)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(x)
    return float(counter.get_total_flops())


def device_peak(device: torch.device, given: float | None) -> tuple[float | None, str]:
    if given:
        return given * 1e12, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_BF16_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name} dense bf16"
        return None, name
    return None, "cpu (pass --peak-tflops for MFU)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="default: spectralmoe_dinov3_vitl16 on GPU, "
                                                      "spectralmoe_dinov3_vits16 on CPU")
    parser.add_argument("--tile", type=int, default=None, help="default: 512 GPU, 256 CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 GPU, 2 CPU")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--scene-size", type=int, default=None, help="default: 10980 GPU, 1024 CPU")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    model = args.model or ("spectralmoe_dinov3_vitl16" if gpu else "spectralmoe_dinov3_vits16")
    tile = args.tile or (512 if gpu else 256)
    batch = args.batch_size or (16 if gpu else 2)
    iterations = args.iterations or (20 if gpu else 4)
    scene_size = args.scene_size or (10980 if gpu else 1024)
    overlap = tile // 4
    report: dict = {"model": model, "tile": tile, "overlap": overlap, "batch_size": batch,
                    "device": args.device, "precision": "bf16 autocast" if gpu else "fp32",
                    "torch": torch.__version__, "threads": torch.get_num_threads()}
    flops = flops_per_tile(model, tile)
    report["flops_per_tile"] = flops
    report["tflops_per_tile"] = round(flops / 1e12, 4)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = random_checkpoint(tmp / "model.safetensors", model, BANDS, tile, overlap)
        tm = load_tile_model(ckpt, args.device, batch, deterministic=not gpu, compile_model=args.compile)
        device = tm.device
        rng = np.random.default_rng(0)
        tiles = rng.normal(100, 50, (batch, len(BANDS), tile, tile)).astype(np.float32)
        valid = np.ones((batch, tile, tile), bool)
        for _ in range(2):
            tm.probabilities(tiles, valid)  # warm-up (and compilation)
        sync(device)
        if gpu:
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(iterations):
            tm.probabilities(tiles, valid)
        sync(device)
        seconds = time.perf_counter() - start
        model_tps = iterations * batch / seconds
        peak, peak_source = device_peak(device, args.peak_tflops)
        report["model_only"] = {
            "tiles_per_s": round(model_tps, 3),
            "mpix_per_s": round(model_tps * tile * tile / 1e6, 3),
            "achieved_tflops": round(model_tps * flops / 1e12, 3),
            "mfu": round(model_tps * flops / peak, 4) if peak else None,
            "peak_tflops": peak / 1e12 if peak else None, "peak_source": peak_source,
            "peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if gpu
            else round(peak_rss_mb(), 1),
        }
        scene = write_scene(tmp / "scene.tif", scene_size)
        settings = PredictSettings(bands=BANDS, tile=tile, overlap=overlap, chunk=4096 if gpu else 2048)
        start = time.perf_counter()
        summary = run_predict([str(scene)], ckpt, tmp / "out", settings, device=args.device,
                              batch_size=batch, deterministic=not gpu, progress=False,
                              compile_model=args.compile)
        wall = time.perf_counter() - start
        e2e_tps = summary["tiles"] / wall
        split = summary["time_split_s"]
        report["end_to_end"] = {
            "scene": f"{scene_size}x{scene_size}x4", "tiles": summary["tiles"],
            "seconds": round(wall, 3), "tiles_per_s": round(e2e_tps, 3),
            "mpix_per_s": round(scene_size ** 2 / 1e6 / wall, 3),
            "ratio_to_model_only": round(e2e_tps / model_tps, 3),
            "busy_fraction": round(summary["tiles"] / model_tps / wall, 3),
            "time_split_s": split,
            "peak_rss_mb": summary["peak_rss_mb"],
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
