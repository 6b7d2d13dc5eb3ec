"""Train the nine methods the same way on Potsdam crops, evaluate them on Vaihingen crops.

The ISPRS Potsdam -> Vaihingen shift (RGB -> IRRG, other city) on the one crop of each in
../shared/data, cut into 128 px tiles, with the *tiny randomly initialised* backbones of the
``*_tiny`` configs: a check that every method trains and evaluates through the same commands, not
a reproduction of the paper's numbers, and no ranking of the methods. As in the benchmark,
Vaihingen's IRRG channels are fed in the RGB slots (``--bands red,green,blue``). Prints JSON and a
Markdown table.

    python benchmarks/compare_methods.py [--steps 500] [--out runs/compare]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "mmseg_isprs_loveda_samples"
METHODS = ("frozen", "lora", "adaptformer", "vpt", "set", "fada", "rein", "depthforge", "spectralmoe")
CLASSES = "\n".join(
    f'[[classes]]\nvalue = {i}\nname = "{name}"\ncolor = "{color}"' for i, (name, color) in enumerate([
        ("impervious_surface", "#ffffff"), ("building", "#0000ff"), ("low_vegetation", "#00ffff"),
        ("tree", "#00ff00"), ("car", "#ffff00"), ("clutter", "#ff0000")]))


def cut(domain: str, stem: str, dest: Path, tile: int = 128) -> Path:
    image = np.array(Image.open(SHARED / domain / "img" / f"{stem}.png"))
    label = np.array(Image.open(SHARED / domain / "ann" / f"{stem}.png"))
    for kind in ("images", "labels"):
        (dest / kind).mkdir(parents=True, exist_ok=True)
    for row in range(0, image.shape[0], tile):
        for col in range(0, image.shape[1], tile):
            name = f"{domain}_{row}_{col}.png"
            Image.fromarray(image[row:row + tile, col:col + tile]).save(dest / "images" / name)
            Image.fromarray(label[row:row + tile, col:col + tile]).save(dest / "labels" / name)
    return dest


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "spectralmoe_cli", "-q", *args], env=env,
                          capture_output=True, text=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compare")
    args = parser.parse_args()
    out = args.out
    source = cut("potsdam", "2_10_0_0_512_512", out / "potsdam")
    target = cut("vaihingen", "area1_0_0_512_512", out / "vaihingen")
    classes = out / "isprs.toml"
    classes.write_text(CLASSES + "\n")
    rows = []
    for method in METHODS:
        run = out / f"run-{method}"
        train = ["train", "--model", f"{method}_tiny", "--train", str(source), "--bands", "red,green,blue",
                 "--classes", str(classes), "--reduce-zero-label", "--out", str(run), "--force",
                 "--steps", str(args.steps), "--batch-size", "4", "--crop", "128", "--lr", "1e-3",
                 "--seed", "0", "--deterministic"]
        cli(*train)
        with open(run / "metrics.csv") as handle:
            records = list(csv.DictReader(handle))
        seconds = statistics.median(float(r["sec_per_step"]) for r in records)
        scores = json.loads(cli("evaluate", str(run / "model.safetensors"), str(target), "--bands",
                                "red,green,blue", "--json").stdout)
        info = json.loads(cli("info", "--checkpoint", str(run / "model.safetensors"), "--json").stdout)
        rows.append({
            "method": method, "trainable_plugin": info["parameters"]["trainable"]["plugin"],
            "trainable_head": info["parameters"]["trainable"]["head"],
            "first_loss_seg": float(records[0]["loss_seg"]), "last_loss_seg": float(records[-1]["loss_seg"]),
            "sec_per_step_median": round(seconds, 4),
            "vaihingen_mIoU": scores["mIoU"], "vaihingen_mAcc": scores["mAcc"],
            "vaihingen_aAcc": scores["aAcc"],
            "per_class_IoU": {c["name"]: c["IoU"] for c in scores["classes"]},
            "train_command": "spectralmoe " + " ".join(train),
        })
    table = ["| method | trainable (plugin + head) | s/step | Vaihingen mIoU % | mAcc % | aAcc % |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['method']} | {r['trainable_plugin']:,} + {r['trainable_head']:,} | "
                     f"{r['sec_per_step_median']:.3f} | {100 * r['vaihingen_mIoU']:.2f} | "
                     f"{100 * r['vaihingen_mAcc']:.2f} | {100 * r['vaihingen_aAcc']:.2f} |")
    print(json.dumps({"steps": args.steps, "batch_size": 4, "crop": 128,
                      "note": "tiny random backbones (48-d, 4 blocks), not the paper's setting: "
                              "these numbers do not rank the methods",
                      "methods": rows, "markdown": "\n".join(table)}, indent=2))


if __name__ == "__main__":
    main()
