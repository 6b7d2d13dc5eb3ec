"""Mask2Former head vs light head: time per tile and peak memory of a forward pass, as JSON.

Usage: python benchmarks/heads.py [--model spectralmoe_tiny_m2f] [--tile 256] [--repeats 10]

Both heads run on the same model config (weights random: speed does not depend on them), batch 1,
eval mode, no autograd. Each head is measured in a fresh process so that one's memory does not
hide the other's. Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated`` above what the
model holds; on CPU the peak resident set size (ru_maxrss) above the RSS before the first forward.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # measure this checkout's package, installed or not

import psutil  # noqa: E402
import torch  # noqa: E402

from spectralmoe_cli.config import load_config  # noqa: E402
from spectralmoe_cli.nn.segmentor import Segmentor  # noqa: E402

HEADS = ("light", "mask2former")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _times_ms(fn, repeats: int, device: torch.device) -> dict[str, float]:
    """Median and best of ``repeats`` runs: the best is the one least disturbed by other load."""
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median": round(statistics.median(times), 2), "best": round(min(times), 2)}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def measure(model_name: str, head: str, tile: int, repeats: int) -> dict:
    """One head, in this process: peak memory of the first forward, then median times."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = load_config(model_name)
    cfg = cfg.model_copy(update={"head": cfg.head.model_copy(update={"type": head})})
    torch.manual_seed(0)
    model = Segmentor(cfg).to(device).eval()
    if tile % model.backbone.patch_size:
        raise SystemExit(f"--tile must be a multiple of the patch size {model.backbone.patch_size}")
    x = torch.randn(1, model.in_chans, tile, tile, device=device)
    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            model(x)
            peak = torch.cuda.max_memory_allocated(device) - before
            memory = "cuda max_memory_allocated above the model"
        else:
            before = psutil.Process().memory_info().rss
            model(x)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
            memory = "peak RSS above the RSS before the first forward"
        feats, _ = model.features(x)
        queries = model.plugin.queries() if model.head.uses_queries else None
        model_ms = _times_ms(lambda: model(x), repeats, device)
        head_ms = _times_ms(lambda: model.head.segmentation(model.head(feats, queries), (tile, tile)),
                            repeats, device)
    return {
        "head_parameters": sum(p.numel() for p in model.head.parameters()),
        "model_ms_per_tile": model_ms,
        "head_ms_per_tile": head_ms,
        "peak_memory_mb": round(max(peak, 0) / 2**20, 1),
        "memory": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="spectralmoe_tiny_m2f", help="zoo name or TOML path")
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels")
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards per head")
    parser.add_argument("--only", choices=HEADS, help=argparse.SUPPRESS)  # the per-head child
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.model, args.only, args.tile, args.repeats)))
        return
    results = {}
    for head in HEADS:
        child = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--tile", str(args.tile),
             "--repeats", str(args.repeats), "--only", head],
            capture_output=True, text=True)
        if child.returncode:
            sys.stderr.write(child.stderr)
            raise SystemExit(child.returncode)
        results[head] = json.loads(child.stdout)
    light, m2f = results["light"], results["mask2former"]
    print(json.dumps({
        "model": args.model, "tile": args.tile, "batch": 1, "repeats": args.repeats,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2),  # CPU timings need an idle machine
        "heads": results,
        "mask2former_over_light": {
            "model_time_best": _ratio(m2f["model_ms_per_tile"]["best"], light["model_ms_per_tile"]["best"]),
            "head_time_best": _ratio(m2f["head_ms_per_tile"]["best"], light["head_ms_per_tile"]["best"]),
            "peak_memory": _ratio(m2f["peak_memory_mb"], light["peak_memory_mb"]),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
