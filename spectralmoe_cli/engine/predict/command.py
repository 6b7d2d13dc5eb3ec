"""``spectralmoe predict``: from the options a user gave to a finished run and its summary.

The checkpoint (the bundled model unless one is given) decides the tiling left unset; the SCENE
arguments and the STAC search become the scenes to segment; then the runner maps them. A failed
scene does not stop the others: its error comes back beside the summary, to be raised once the
summary has been printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...checkpoint import read_metadata
from ...config import zoo_dir
from ...errors import SpectralMoEError, UsageError
from .distributed import parse_cluster
from .mosaic import mosaic_target
from .runner import empty_summary, run_predict
from .settings import PredictOptions
from .sources import scene_sources, stac_options

DEFAULT_CHECKPOINT = "default.safetensors"  # in the model zoo: the small bundled model


@dataclass
class PredictRun:
    """A run's summary (zero scenes when there was nothing to do, and ``nothing`` says why) and
    its error, if any."""

    summary: dict
    nothing: str = ""
    error: SpectralMoEError | None = None


def predict(options: PredictOptions, progress: bool = True) -> PredictRun:
    """Segment the scenes the options name (files, items, a search) into maps under ``out``."""
    checkpoint = options.checkpoint or zoo_dir() / DEFAULT_CHECKPOINT
    meta = read_metadata(checkpoint)
    settings = options.settings(meta)
    if options.scheduler and options.cluster:
        raise UsageError("give --scheduler or --cluster, not both")
    stac = stac_options(options.stac, options.collection, options.bbox, options.intersects,
                        options.datetime, options.max_cloud, options.max_items, options.policy(),
                        options.allow_local_assets)
    sources = scene_sources(list(options.scenes), stac, settings.bands, meta,
                            mosaic_target(options.mosaic, options.crs, options.resolution))
    if not sources:  # an empty night still leaves the summary a script reads: zero scenes
        return PredictRun(empty_summary(meta, options.out, stac.no_match()), stac.no_match())
    summary = run_predict(sources, checkpoint, options.out, settings, device=options.device,
                          batch_size=options.batch_size, deterministic=options.deterministic,
                          progress=progress, compile_model=options.compile,
                          scheduler=options.scheduler,
                          local_workers=parse_cluster(options.cluster) if options.cluster else None)
    return PredictRun(summary, error=summary.pop("error", None))
