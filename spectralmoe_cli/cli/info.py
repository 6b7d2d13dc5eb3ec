"""``spectralmoe info``: describe a model or a checkpoint without loading any weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def info(
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="A model name from the zoo (see --list) or a TOML config path."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c",
                                              help="A trained .safetensors checkpoint."),
    as_json: bool = typer.Option(False, "--json", metavar="", help="Print JSON instead of text."),
    list_models: bool = typer.Option(False, "--list", metavar="", help="List the named models and exit."),
) -> None:
    """Describe a model: architecture, trainable and frozen parameters by part, bands, classes.

    Builds the architecture without weights (nothing is downloaded). Example:

        spectralmoe info --model spectralmoe_dinov3_vitl16 --json
    """
    from ..config import available_models
    from ..engine.info import describe, render

    if list_models:
        typer.echo("\n".join(available_models()))
        return
    report = describe(model=model, checkpoint=checkpoint)
    typer.echo(json.dumps(report, indent=2) if as_json else render(report))
