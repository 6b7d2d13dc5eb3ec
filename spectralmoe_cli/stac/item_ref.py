"""A STAC item named on the command line: a JSON file or an http(s) URL.

``predict`` takes rasters and items side by side, so it tells them apart by name, before opening
anything: a local ``.json``/``.geojson`` file is an item; a URL is an item when its path ends in
``.json``/``.geojson``, or has an ``/items/`` segment (where every STAC API serves items) and no
raster suffix; anything else is a raster. URLs are read with the search's retry policy: a server
that stays down is exit 75, a missing or malformed item exit 3.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pystac
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from ..errors import InputDataError, TransientError
from ..net import RetryPolicy, describe, is_transient

ITEM_SUFFIXES = (".json", ".geojson")
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".nc", ".h5", ".zarr")


def is_url(text: str) -> bool:
    return urlparse(text).scheme in ("http", "https")


def is_item_ref(text: str) -> bool:
    """Whether a SCENE argument names a STAC item rather than a raster."""
    if is_url(text):
        path = urlparse(text).path.lower()
        return path.endswith(ITEM_SUFFIXES) or ("/items/" in path
                                                and not path.endswith(RASTER_SUFFIXES))
    return "://" not in text and text.lower().endswith(ITEM_SUFFIXES)


def load_item(ref: str, policy: RetryPolicy) -> pystac.Item:
    """The item, its self href set to where it was read (relative asset hrefs resolve there)."""
    if not is_url(ref) and not Path(ref).is_file():
        raise InputDataError(f"scene {ref} does not exist")
    try:
        if is_url(ref):
            io = StacApiIO(max_retries=policy.urllib3(), timeout=policy.timeout)
            return pystac.Item.from_file(ref, stac_io=io)
        return pystac.Item.from_file(str(Path(ref).resolve()))
    except APIError as exc:
        if is_transient(exc):
            raise TransientError(f"STAC item {ref} is unreachable: {describe(exc)} "
                                 f"(safe to rerun)") from exc
        raise InputDataError(f"cannot read STAC item {ref}: {describe(exc)}") from exc
    except (OSError, ValueError, KeyError, TypeError, pystac.STACError,
            pystac.STACTypeError) as exc:
        raise InputDataError(f"{ref} is not a STAC item ({describe(exc)})") from exc
