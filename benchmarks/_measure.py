"""What the benchmarks share: a random-weight checkpoint of any model (speed and memory do not
depend on the weights), and the peak RSS of a fresh CLI process by the CLI's own rule.

Imported by the benchmark scripts after they put the checkout on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from spectralmoe_cli.checkpoint import BandInfo, CheckpointMeta, ClassInfo, TileDefaults
from spectralmoe_cli.config import load_config
from spectralmoe_cli.engine.runtime.models import build_model, save_model

ROOT = Path(__file__).resolve().parents[1]
# runs the real CLI entry point, then prints the process's own peak RSS (MB, VmHWM) last: for
# commands whose JSON does not report it (predict's summary does)
MEASURED = ("import sys\n"
            "from spectralmoe_cli import cli\n"
            "from spectralmoe_cli.engine.predict.runner import peak_rss_mb\n"
            "try:\n    cli.main()\n"
            "finally:\n    print(peak_rss_mb(), file=sys.stderr)\n")


def random_checkpoint(path: Path, model: str, bands: list[str], tile: int, overlap: int,
                      classes: int = 6) -> Path:
    cfg = load_config(model).with_data(bands, classes)
    backbone = cfg.backbone.model_copy(update={"weights": "random"})
    depth = cfg.depth.model_copy(update={"weights": "random"}) if cfg.depth else None
    cfg = cfg.model_copy(update={"backbone": backbone, "depth": depth})
    torch.manual_seed(0)
    net = build_model(cfg, pretrained=False)
    meta = CheckpointMeta(model=net.cfg, bands=[BandInfo(name=b) for b in bands],
                          mean=[100.0] * len(bands), std=[50.0] * len(bands),
                          classes=[ClassInfo(value=i, name=f"c{i}", color="#808080")
                                   for i in range(classes)],
                          tile=TileDefaults(size=tile, overlap=overlap), contains=[],
                          provenance={"note": "benchmark: random weights"})
    save_model(path, net, meta)
    return path


def measured_cli(command: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """``spectralmoe -q COMMAND ARGS`` in a fresh process: the completed process and its peak RSS
    in MB; a failure ends the benchmark saying why."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", MEASURED, "-q", command, *args],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{command} failed: {result.stderr[-2000:]}")
    return result, float(result.stderr.strip().splitlines()[-1])
