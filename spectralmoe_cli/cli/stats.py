"""``spectralmoe stats``: the normalisation statistics of a folder, as text or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .options import BANDS_HELP


def stats(
    source: Path = typer.Argument(..., help="A labelled folder (uses its images/), a folder of "
                                            "rasters, an image,label CSV, or one raster."),
    bands: str = typer.Option(..., "--bands", "-b", help=BANDS_HELP),
    as_json: bool = typer.Option(False, "--json", metavar="", help="Print JSON (what train --stats reads)."),
    nodata: Optional[float] = typer.Option(None, "--nodata",
                                           help="A value marking invalid pixels in any band; "
                                                "replaces the files' own nodata."),
    image_glob: Optional[str] = opt.image_glob(),
    label_glob: Optional[str] = opt.label_glob(),
) -> None:
    """Per-band mean and std over the valid pixels of a folder: the normalisation statistics.

    Streams every raster block by block, so folders larger than memory work. A pixel is
    invalid where any band is NaN or nodata. train computes the same numbers itself; save
    them once for many runs with:

        spectralmoe stats data/train --bands red,green,blue --json > stats.json
        spectralmoe train ... --stats stats.json
    """
    from ..engine.labelled.pairs import LabelOptions
    from ..engine.labelled.stats import folder_stats

    result = folder_stats(source, bands, nodata, LabelOptions(image_glob=image_glob, label_glob=label_glob))
    typer.echo(json.dumps(result.to_json(), indent=2) if as_json else result.render())
