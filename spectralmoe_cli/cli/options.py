"""Options several commands share, and the one way every option is declared.

An option's default is never written here: ``option`` reads it from the engine's settings class
(the schema that also validates the value) and shows it in ``--help``, or shows where an unset
value comes from ("the checkpoint's"). Every option's parsed default is ``None``, so a command
can tell what was given on the command line from what was not, and a ``--config`` file can fill
the rest. Options are grouped into help panels by what they are about.
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel
from rich.markup import escape

INPUT = "Input"
LABELS = "Labels"
SPECTRA = "Spectra"
TILING = "Tiling"
OUTPUTS = "Outputs"
COG = "COG output"
COMPUTE = "Compute"
CLUSTER = "Cluster"
SEARCH = "STAC search"
MOSAIC = "Mosaic"
NETWORK = "Network"
TRAINING = "Training"
RUN = "Run"

BANDS_HELP = ("The files' bands in file order, by name: red,green,blue for RGB PNGs, nir,red,green "
              "for IRRG, B04,B03,B02,B08 for a Sentinel-2 stack.")


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def option(schema: type[BaseModel], field: str, *names: str, help: str, panel: str,
           default: str | None = None, metavar: str | None = None) -> Any:
    """``names`` as an option of ``schema.field``; its help ends with the schema's default.

    ``default`` replaces the shown default where the schema's is ``None`` and something else
    decides (e.g. "the checkpoint's"). A required field shows "required": it may come from the
    command line or the ``--config`` file, so the parser itself does not insist on it.
    """
    info = schema.model_fields[field]
    if default is not None:
        note = f"[default: {default}]"
    elif info.is_required():
        note = "[required]"
    elif info.default is None or info.default is False:
        note = ""
    else:
        note = f"[default: {_shown(info.default)}]"
    text = f"{help} {escape(note)}" if note else help
    return typer.Option(None, *names, help=text, rich_help_panel=panel, show_default=False,
                        metavar=metavar)


def switch(schema: type[BaseModel], field: str, *names: str, help: str, panel: str,
           default: str | None = None) -> Any:
    """An on/off option: like ``option``, without a type column (a flag takes no value)."""
    return option(schema, field, *names, help=help, panel=panel, default=default, metavar="")


def config() -> Any:
    return typer.Option(None, "--config", rich_help_panel=RUN, show_default=False,
                        help="TOML or YAML file of option = value (names with - or _), checked "
                             "like the flags; flags given here win over it.")


def as_json(help: str) -> Any:
    return typer.Option(None, "--json", help=help, rich_help_panel=OUTPUTS, show_default=False, metavar="")


def bands(schema: type[BaseModel], help: str, default: str | None = None) -> Any:
    return option(schema, "bands", "--bands", "-b", help=help, panel=INPUT, default=default)


def out(schema: type[BaseModel], help: str) -> Any:
    return option(schema, "out", "--out", "-o", help=help, panel=OUTPUTS)


def nodata(schema: type[BaseModel], help: str = "A value marking invalid pixels in any band; "
                                                "replaces the files' own nodata.") -> Any:
    return option(schema, "nodata", "--nodata", help=help, panel=INPUT)


def device(schema: type[BaseModel], help: str = "auto, cpu, cuda or cuda:N.") -> Any:
    return option(schema, "device", "--device", help=help, panel=COMPUTE)


def batch_size(schema: type[BaseModel]) -> Any:
    return option(schema, "batch_size", "--batch-size", help="Tiles per forward pass (at least 1).",
                  panel=COMPUTE, default="2 on CPU, 16 on GPU")


def tile(schema: type[BaseModel]) -> Any:
    return option(schema, "tile", "--tile", help="Tile size in pixels.", panel=TILING,
                  default="the checkpoint's")


def overlap(schema: type[BaseModel]) -> Any:
    return option(schema, "overlap", "--overlap", help="Overlap between tiles in pixels.",
                  panel=TILING, default="the checkpoint's")


def blend(schema: type[BaseModel]) -> Any:
    return option(schema, "blend", "--blend", help="How overlapping tiles are blended: hann, "
                  "linear, none or center.", panel=TILING)


def collection(schema: type[BaseModel], help: str = "Collection to search, e.g. sentinel-2-l2a.") -> Any:
    return option(schema, "collection", "--collection", help=help, panel=SEARCH)


def bbox(schema: type[BaseModel], help: str) -> Any:
    return option(schema, "bbox", "--bbox", help=help, panel=SEARCH)


def intersects(schema: type[BaseModel], help: str) -> Any:
    return option(schema, "intersects", "--intersects", help=help, panel=SEARCH)


def datetime(schema: type[BaseModel]) -> Any:
    return option(schema, "datetime", "--datetime", panel=SEARCH,
                  help="Search time: P1D (last day), PT6H, P2W, today, yesterday (UTC), "
                       "2024-01-01/2024-01-31, 2024-01-01/.. (open).")


def max_cloud(schema: type[BaseModel]) -> Any:
    return option(schema, "max_cloud", "--max-cloud", panel=SEARCH,
                  help="Keep items with eo:cloud_cover <= PCT (0 to 100).")


def max_items(schema: type[BaseModel]) -> Any:
    return option(schema, "max_items", "--max-items", panel=SEARCH,
                  help="At most N items, newest first (ties by id).")


def retries(schema: type[BaseModel]) -> Any:
    return option(schema, "retries", "--retries", panel=NETWORK,
                  help="Retries of a transient HTTP error (5xx, 429, timeout, reset) before "
                       "exit 75.")


def retry_backoff(schema: type[BaseModel]) -> Any:
    return option(schema, "retry_backoff", "--retry-backoff", panel=NETWORK,
                  help="Seconds before the first retry; doubled each time (at most 60 s).")


def timeout(schema: type[BaseModel]) -> Any:
    return option(schema, "timeout", "--timeout", help="Seconds per HTTP request (at least 1).",
                  panel=NETWORK)



def label_field(schema: type[BaseModel]) -> Any:
    return option(schema, "label_field", "--label-field", panel=LABELS,
                  help="Vector labels (DIR/labels.gpkg, .geojson, .shp...): the field holding class "
                       "names or values.")


def background(schema: type[BaseModel]) -> Any:
    return option(schema, "background", "--background", panel=LABELS, default="ignored",
                  help="Vector labels: the class (name or value) of pixels outside every polygon.")


def image_glob(schema: type[BaseModel] | None = None) -> Any:
    help = "Pair files by name: images matching this pattern with one '*', e.g. '*_sat.jpg'."
    if schema is None:
        return typer.Option(None, "--image-glob", help=help, rich_help_panel=LABELS)
    return option(schema, "image_glob", "--image-glob", panel=LABELS, help=help)


def label_glob(schema: type[BaseModel] | None = None) -> Any:
    help = "With --image-glob: each image's label, its '*' replaced, e.g. '*_mask.png'."
    if schema is None:
        return typer.Option(None, "--label-glob", help=help, rich_help_panel=LABELS)
    return option(schema, "label_glob", "--label-glob", panel=LABELS, help=help)
