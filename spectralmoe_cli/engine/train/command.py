"""``spectralmoe train``: fine-tune a plugin and its head on a labelled folder; backbones stay frozen.

Everything is checked before anything is written: options, device, the run directory, model,
class file, bands and every training pair (train_plan). Only then is the model stack loaded and
trained (train_loop). The result is a checkpoint that carries its bands, normalisation
statistics, classes and provenance, so predict needs nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..runtime.devices import pick_device
from .options import TrainOptions
from .plan import check_run_dir, plan_run
from .run_dir import RunDir

log = logging.getLogger(__name__)


def train(opts: TrainOptions) -> Path | None:
    """Run (or resume) training; return the final checkpoint, or None if the run had finished."""
    opts.check()
    device = pick_device(opts.device)
    run = RunDir(opts.out)
    if not opts.resume and not opts.force and run.is_run():
        # the same command resumes a stopped run (as an interrupt says); other options are refused
        log.info("%s holds a run: resuming it if it was started with these options", run.root)
        opts = opts.model_copy(update={"resume": True})
    check_run_dir(run, opts)
    latest = run.latest() if opts.resume and run.is_run() else None
    plan = plan_run(opts, run)
    if latest is not None and latest.get("finished"):
        return None
    from .loop import fit  # the model stack (timm, seconds to import) only for good input

    return fit(opts, plan, run, device)
