"""A predict run over many scenes: one model load, per-scene isolation, a summary for cron."""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path


from ...checkpoint import read_metadata
from ...errors import PartialFailure, SpectralMoEError, error_for_code
from ...files import write_json_atomic
from ..runtime.models import load_tile_model
from ..runtime.progress import Progress
from .scene import ScenePredictor, SceneResult, check_output_dir
from .settings import PredictSettings
from .sources import StacSource

log = logging.getLogger(__name__)
SUMMARY_NAME = "spectralmoe-summary.json"
RUNS = "runs"  # each run's own summary, beside the shared latest one


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB.

    Linux: VmHWM, which starts afresh at exec (ru_maxrss would carry over the peak of the process
    that launched us). Elsewhere: ru_maxrss (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def summarize(results: list[SceneResult], seconds: float, meta, runner: dict) -> dict:
    done = [r for r in results if r.status == "done"]
    pixels = sum(r.pixels for r in done)
    return {
        "scenes": len(results),
        "done": len(done),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "pixels": pixels,
        "tiles": sum(r.tiles for r in results),
        "seconds": round(seconds, 3),
        "mpix_per_s": round(pixels / 1e6 / seconds, 4) if seconds > 0 else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "time_split_s": {k: round(sum(r.seconds[k] for r in results), 3)
                         for k in ("read", "infer", "write")},
        **runner,
        "checkpoint": {"model": meta.model.name, "hash": meta.content_hash},
        "results": [asdict(r) for r in results],
    }


def write_summary(summary: dict, out_dir: Path) -> Path:
    """``OUT/spectralmoe-summary.json`` (the last run to finish) and this run's own copy under
    ``OUT/runs/``, so runs sharing one ``--out`` each keep their summary."""
    path = out_dir / SUMMARY_NAME
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    own = out_dir / RUNS / f"{path.stem}-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}.json"
    summary["run_summary_file"] = str(own)
    write_json_atomic(own, summary)
    write_json_atomic(path, summary)
    return path


def empty_summary(meta, out_dir: Path, why: str) -> dict:
    """The summary of a run with nothing to do (a search that found nothing), written like any."""
    check_output_dir(out_dir)
    summary = {**summarize([], 0.0, meta, {}), "nothing_to_do": why}
    summary["summary_file"] = str(write_summary(summary, out_dir))
    return summary


def run_predict(scenes: list[str | StacSource], checkpoint: Path, out_dir: Path, settings: PredictSettings,
                device: str = "auto", batch_size: int | None = None,
                deterministic: bool | None = None, progress: bool = True,
                compile_model: bool = False, scheduler: str | None = None,
                local_workers: int | None = None) -> dict:
    """Predict every scene; the summary's "error" holds PartialFailure (or the scenes' own error)."""
    settings.validate()
    check_output_dir(out_dir)
    cluster = None
    bar = Progress(enabled=progress)
    results = []
    try:
        if scheduler is not None or local_workers is not None:
            from .distributed import DaskRunner, ModelSpec

            meta = read_metadata(checkpoint)
            tile_model = None
            # workers may run elsewhere: every path they are given must be absolute
            out_dir = out_dir.resolve()
            scenes = [str(Path(s).resolve()) if isinstance(s, (str, Path)) and Path(s).exists() else s
                      for s in scenes]
            cluster = DaskRunner(ModelSpec(str(Path(checkpoint).resolve()), meta.content_hash, device,
                                           batch_size, deterministic, compile_model, settings.tta),
                                 scheduler, local_workers)
            runner = {"scheduler": cluster.client.scheduler.address,
                      "workers": len(cluster.client.scheduler_info()["workers"])}
        else:
            tile_model = load_tile_model(checkpoint, device, batch_size, deterministic, compile_model,
                                         settings.tta)
            meta = tile_model.meta
            runner = {"device": str(tile_model.device), "batch_size": tile_model.batch_size,
                      "deterministic": tile_model.deterministic}
        start = time.perf_counter()
        predictor = ScenePredictor(meta, tile_model, settings, out_dir, bar, cluster)
        for source in scenes:
            results.append(predictor.run(source, log_errors=len(scenes) > 1))
    finally:
        bar.close()
        if cluster is not None:
            cluster.close()
    summary = summarize(results, time.perf_counter() - start, meta, runner)
    summary["summary_file"] = str(write_summary(summary, out_dir))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        summary["error"] = _failure(failed, len(results))
    return summary


def _failure(failed: list[SceneResult], total: int) -> SpectralMoEError:
    """One scene's error as-is; several failures (or some successes) -> exit 4."""
    codes = {r.exit_code for r in failed}
    if len(failed) == total and len(codes) == 1:
        message = failed[0].error if total == 1 else f"all {total} scenes failed: {failed[0].error}"
        return error_for_code(failed[0].exit_code or 1, message)
    names = ", ".join(Path(r.scene).name for r in failed[:5])
    message = f"{len(failed)} of {total} scene(s) failed ({names}); see the summary"
    if codes & {None, 1}:  # a bug among the failures outranks "partial": it must not pass as 4
        return SpectralMoEError(f"{message}; one failed with an internal error (a bug)")
    return PartialFailure(message)
