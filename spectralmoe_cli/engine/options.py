"""The options several jobs share, as pydantic fields: each option's type, range and default, once.

A job's settings class (PredictOptions, FetchOptions, TrainOptions, EvaluateOptions) is built
from these groups and validates what a user gives, from the command line and from a ``--config``
file alike. Types are strict: ``"false"`` is not a boolean and ``"512"`` not a tile size, so a
quoted value in a file fails instead of meaning something else. Lists a file may write as arrays
(bands, bbox, formats) are accepted as comma text too, as the command line writes them.

This module is imported by the CLI to show defaults in ``--help``: it stays light (no torch).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt

from ..net import RetryPolicy

if TYPE_CHECKING:
    from ..stac import SearchRequest
    from .labelled.pairs import LabelOptions

_DEFAULT_POLICY = RetryPolicy()
# The largest tile (predict, evaluate) or training crop, in pixels a side: a ViT's activations
# grow with the square of the tokens, and a larger square does not fit in memory.
MAX_TILE = 4096


def _comma_text(value: Any) -> Any:
    """A list written in a file (``bands = ["red", "green"]``) as the command line writes it."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


def _date_text(value: Any) -> Any:
    """A TOML/YAML date or datetime as the ISO text ``--datetime`` takes."""
    return value.isoformat() if isinstance(value, date) else value


CommaText = Annotated[str, BeforeValidator(_comma_text)]
DateText = Annotated[str, BeforeValidator(_date_text)]


class Options(BaseModel):
    """Base of every settings class: unknown keys are errors, values are not changed later."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryFields(Options):
    """How hard to retry a transient HTTP error; the defaults are the one RetryPolicy's."""

    retries: StrictInt = Field(_DEFAULT_POLICY.retries, ge=0)
    retry_backoff: StrictFloat = Field(_DEFAULT_POLICY.backoff, ge=0)
    timeout: StrictFloat = Field(_DEFAULT_POLICY.timeout, ge=1)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.retries, self.retry_backoff, self.timeout)


class SearchFields(Options):
    """A STAC search: which collection, where (a bbox or a GeoJSON file), when, how cloudy."""

    collection: str | None = None
    bbox: CommaText | None = None
    intersects: Path | None = None
    datetime: DateText | None = None
    max_cloud: StrictFloat | None = Field(None, ge=0, le=100)
    max_items: StrictInt | None = Field(None, ge=1)


class DeviceField(Options):
    device: str = "auto"


class ComputeFields(DeviceField):
    """Where the model runs and how many tiles go through it at once (None: the device's)."""

    batch_size: StrictInt | None = Field(None, ge=1)


def no_match(request: SearchRequest) -> str:
    """What a search that found nothing asked for, so a cron log says why nothing was done."""
    cloud = "" if request.max_cloud is None else f", eo:cloud_cover <= {request.max_cloud:g}"
    return (f"no item of collection {request.collection!r} matches the AOI and datetime "
            f"{request.datetime}{cloud}")


class LabelFields(Options):
    """How labels are found and read beyond ``images/`` + ``labels/``: the class field and
    background of vector labels, and name patterns pairing images with labels."""

    label_field: str = "class"
    background: str | None = None
    image_glob: str | None = None
    label_glob: str | None = None

    def label_options(self) -> LabelOptions:
        from .labelled.pairs import LabelOptions  # numpy and rasterio: only for a run

        return LabelOptions(self.label_field, self.background, self.image_glob, self.label_glob)
