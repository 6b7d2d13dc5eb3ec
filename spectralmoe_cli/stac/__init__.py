"""STAC, library first: search any STAC API the same way, map item assets to canonical bands.

``fetch`` and ``predict --stac`` share this layer; nothing here reads pixels or writes rasters.

- ``timerange.parse_datetime``: ``P1D``, ``yesterday``, ISO ranges -> one RFC 3339 interval
- ``aoi``: ``--bbox`` / ``--intersects`` validated once
- ``search``: conformance-aware filter and ordering with a client-side twin
- ``assets.band_sources``: item + band names -> GDAL path, band index, scale/offset, nodata
- ``radiometry``: ``raster:bands`` and the Sentinel-2 processing-baseline offset
- ``local``: the self-contained local items and catalog that ``fetch`` writes
- ``item_ref``: an item named on the command line (file or URL), told apart from rasters
"""

from .aoi import Aoi, load_intersects, parse_bbox
from .assets import BandSource, band_sources, check_collection, check_collection_bands, gdal_path
from .item_ref import is_item_ref, load_item
from .radiometry import Radiometry, band_radiometry, processing_baseline
from .search import SearchRequest, SearchResult, get_collection, item_href, open_catalog, search
from .timerange import parse_datetime

__all__ = [
    "Aoi", "BandSource", "Radiometry", "SearchRequest", "SearchResult", "band_radiometry",
    "band_sources", "check_collection", "check_collection_bands", "gdal_path", "get_collection",
    "is_item_ref", "item_href", "load_intersects", "load_item", "open_catalog", "parse_bbox",
    "parse_datetime", "processing_baseline", "search",
]
