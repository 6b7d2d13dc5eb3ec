"""What ``spectralmoe fetch`` is asked for: one schema for its command-line and ``--config`` values.

Kept apart from the fetch job itself so the CLI can show the defaults without importing
rasterio or pystac.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .options import CommaText, DateText, RetryFields, SearchFields

RESAMPLINGS = ("nearest", "bilinear", "cubic", "average")


class FetchOptions(SearchFields, RetryFields):
    """A search (catalog, collection, AOI, time), the bands to keep and where to write them."""

    catalog: str
    collection: str
    datetime: DateText
    bands: CommaText = "B04,B03,B02,B08"
    out: Path
    resampling: Literal[RESAMPLINGS] = "nearest"
