"""predict side by side with model-only and with the peers, on NAIP scenes of growing size.

One command, one JSON document:

    python benchmarks/peers.py --sizes 1024,2048,4096 --repeats 2 --json

For each size (the example NAIP scene tiled to size², the bundled model, 128 px tiles, overlap 32,
batch 16), every run is a FRESH process, runs are interleaved (a, b, c, a, b, c, ...):
(a) ``spectralmoe predict`` end to end;
(b) model-only: the same model on exactly the tiles predict computes, read into memory first,
    in a process with no setting of ours; only the forward loop is timed;
(c) TerraTorch's ``tiled_inference`` on the whole scene in memory with the same model, tile and
    overlap (``pip install .[benchmarks]``); when it cannot be imported this says so.
geo-inference expects a TorchScript model and exporting ours is not attempted, so it is reported
as not run. Per run: wall time, in-process time, Mpix/s, peak RSS (VmHWM), user and system CPU
time; per size the minimum and all raw values, the pixel agreement between our map and
TerraTorch's, and the two ratios of in-process times. The load average is recorded before and
after, since a shared machine slows every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "naip_m_4709963_se_14_1_20200831.tif"
BANDS = "red,green,blue,nir"
TILE, OVERLAP, BATCH = 128, 32, 16


def tiled_scene(path: Path, size: int) -> Path:
    """The example scene repeated to size x size (same profile, georeferenced at its origin)."""
    import rasterio

    with rasterio.open(EXAMPLE) as src:
        data, profile = src.read(), src.profile
    reps = (1, -(-size // data.shape[1]), -(-size // data.shape[2]))
    profile.update(height=size, width=size, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.tile(data, reps)[:, :size, :size])
    return path


def _load():
    sys.path.insert(0, str(ROOT))
    from spectralmoe_cli.config import zoo_dir
    from spectralmoe_cli.engine.predict.command import DEFAULT_CHECKPOINT
    from spectralmoe_cli.engine.runtime.models import load_tile_model

    return load_tile_model(zoo_dir() / DEFAULT_CHECKPOINT, "cpu", BATCH, True)


def _scene_array(scene: Path) -> tuple[np.ndarray, np.ndarray]:
    """The scene's model bands as float32 and validity, read the way predict reads them."""
    sys.path.insert(0, str(ROOT))
    from spectralmoe_cli.io.scene import open_scene

    handle = open_scene(str(scene))
    return handle.read(list(range(4)), 0, handle.height, 0, handle.width)


def worker_model_only(scene: Path) -> dict:
    """(b): the tiles predict computes (every grid tile with a valid pixel), model alone."""
    from spectralmoe_cli.io.tiling import Grid

    tile_model = _load()
    data, valid = _scene_array(scene)
    grid = Grid(data.shape[1], data.shape[2], TILE, TILE, TILE - OVERLAP)
    origins = [(y, x) for y in grid.rows() for x in grid.cols()
               if valid[y:y + TILE, x:x + TILE].any()]
    tiles = np.stack([data[:, y:y + TILE, x:x + TILE] for y, x in origins])
    masks = np.stack([valid[y:y + TILE, x:x + TILE] for y, x in origins])
    del data, valid
    start = time.perf_counter()
    for s in range(0, len(tiles), BATCH):
        tile_model.probabilities(tiles[s:s + BATCH], masks[s:s + BATCH])
    return {"seconds": time.perf_counter() - start, "tiles": len(origins)}


def worker_terratorch(scene: Path, classes_out: Path) -> dict:
    """(c): TerraTorch's tiled_inference over the whole scene in memory, same model and tiling."""
    import torch
    from terratorch.tasks.tiled_inference import tiled_inference

    tile_model = _load()
    data, valid = _scene_array(scene)
    x = torch.from_numpy(data)[None]
    mask = torch.from_numpy(valid)[None, None]
    x = torch.where(mask, (x - tile_model.mean) / tile_model.std, torch.zeros(()))
    model = tile_model.model

    def forward(batch: torch.Tensor) -> torch.Tensor:
        logits, _ = model(batch)
        return model.head.to_probabilities(logits.float())

    start = time.perf_counter()
    with torch.inference_mode():
        probs = tiled_inference(forward, x, out_channels=tile_model.num_classes,
                                h_crop=TILE, w_crop=TILE, h_stride=TILE - OVERLAP,
                                w_stride=TILE - OVERLAP, average_patches=True,
                                batch_size=BATCH, verbose=False)
    seconds = time.perf_counter() - start
    np.save(classes_out, probs[0].argmax(0).numpy().astype(np.uint8))
    return {"seconds": seconds}


def _fresh(cmd: list[str]) -> dict:
    """Run a command in a fresh process: its last stdout line (JSON), wall time and CPU times."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    out = json.loads(done.stdout)
    return {**out, "wall_s": round(wall, 3), "user_s": round(after.ru_utime - before.ru_utime, 3),
            "sys_s": round(after.ru_stime - before.ru_stime, 3)}


def _worker(kind: str, scene: Path, out: Path | None = None) -> list[str]:
    extra = ["--out", str(out)] if out else []
    return [sys.executable, __file__, "--worker", kind, "--scene", str(scene), *extra]


def run_ours(scene: Path, out: Path) -> dict:
    """(a): the CLI itself, as a user runs it; in-process time and VmHWM from its summary."""
    run = _fresh([sys.executable, "-m", "spectralmoe_cli", "-q", "predict", str(scene),
                  "--bands", BANDS, "--tile", str(TILE), "--overlap", str(OVERLAP),
                  "--batch-size", str(BATCH), "--device", "cpu", "--out", str(out), "--force",
                  "--json"])
    if "error" in run:
        return run
    keep = ("seconds", "tiles", "peak_rss_mb", "time_split_s", "wall_s", "user_s", "sys_s")
    return {k: run[k] for k in keep}


def agreement(ours_out: Path, theirs: Path) -> float | None:
    """Share of pixels where our class map and TerraTorch's argmax agree."""
    import zarr

    stores = list(ours_out.glob("*.zarr"))
    if not stores or not theirs.exists():
        return None
    mine = np.asarray(zarr.open_group(str(stores[0]), mode="r")["classes"][:])
    other = np.load(theirs)
    return round(float((mine == other).mean()), 5)


def _stats(runs: list[dict], pixels: int) -> dict:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0].get("error"), "raw": runs}
    best = min(r["seconds"] for r in ok)
    return {"min_s": round(best, 3), "min_wall_s": min(r["wall_s"] for r in ok),
            "mpix_per_s": round(pixels / 1e6 / best, 4),
            "peak_rss_mb": max(r.get("peak_rss_mb", 0) for r in ok), "raw": ok}


def bench(sizes: list[int], repeats: int, tmp: Path) -> dict:
    try:
        import terratorch  # noqa: F401
        terratorch_note = None
    except ImportError as exc:
        terratorch_note = f"terratorch not installed ({exc}); pip install .[benchmarks]"
    report: dict = {"machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
                    "model": "bundled default", "tile": TILE, "overlap": OVERLAP, "batch": BATCH,
                    "geo_inference": "not run: it expects a TorchScript model; ours is eager",
                    "sizes": {}}
    scenes = {n: tiled_scene(tmp / f"naip_{n}.tif", n) for n in sizes}
    raw = {n: {"ours": [], "model_only": [], "terratorch": []} for n in sizes}
    agree: dict[int, float | None] = {}
    for _ in range(repeats):
        for n in sizes:
            out = tmp / f"out_{n}"
            raw[n]["ours"].append(run_ours(scenes[n], out))
            raw[n]["model_only"].append(_fresh(_worker("model-only", scenes[n])))
            if terratorch_note is None:
                theirs = tmp / f"terratorch_{n}.npy"
                raw[n]["terratorch"].append(_fresh(_worker("terratorch", scenes[n], theirs)))
                agree[n] = agreement(out, theirs)
    for n in sizes:
        entry = {kind: _stats(runs, n * n) for kind, runs in raw[n].items() if runs}
        if terratorch_note:
            entry["terratorch"] = {"error": terratorch_note}
        ours, model = entry["ours"].get("min_s"), entry["model_only"].get("min_s")
        tt = entry["terratorch"].get("min_s")
        entry["end_to_end_over_model_only"] = round(model / ours, 3) if ours and model else None
        entry["ours_over_terratorch"] = round(tt / ours, 3) if ours and tt else None
        entry["pixel_agreement_with_terratorch"] = agree.get(n)
        report["sizes"][str(n)] = entry
    first, last = str(sizes[0]), str(sizes[-1])
    rss = [report["sizes"][k]["ours"].get("peak_rss_mb") for k in (first, last)]
    if all(rss):
        report["ours_peak_rss_largest_over_smallest"] = round(rss[1] / rss[0], 3)
    report["machine"]["load_after"] = os.getloadavg()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048,4096")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the JSON document only")
    parser.add_argument("--worker", choices=["model-only", "terratorch"], help=argparse.SUPPRESS)
    parser.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker_model_only(args.scene) if args.worker == "model-only" \
            else worker_terratorch(args.scene, args.out)
        from spectralmoe_cli.engine.predict.runner import peak_rss_mb  # on the path: _load

        print(json.dumps({**result, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        report = bench([int(s) for s in args.sizes.split(",")], args.repeats, Path(tmp))
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
