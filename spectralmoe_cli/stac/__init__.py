"""STAC, library first: search any STAC API the same way, map item assets to canonical bands.

``fetch`` and ``predict --stac`` share this layer; nothing here reads pixels or writes rasters.

- ``timerange.parse_datetime``: ``P1D``, ``yesterday``, ISO ranges -> one RFC 3339 interval
- ``aoi``: ``--bbox`` / ``--intersects`` validated once
- ``search``: conformance-aware filter and ordering with a client-side twin
- ``assets.band_sources``: item + band names -> GDAL path, band index, scale/offset, nodata
- ``radiometry``: ``raster:bands`` and the Sentinel-2 processing-baseline offset
- ``local``: the self-contained local items and catalog that ``fetch`` writes
"""

from .aoi import Aoi, load_intersects, parse_bbox
from .assets import BandSource, band_sources, check_collection_bands, gdal_path
from .radiometry import Radiometry, band_radiometry, processing_baseline
from .search import SearchRequest, SearchResult, get_collection, open_catalog, search
from .timerange import parse_datetime

__all__ = [
    "Aoi", "BandSource", "Radiometry", "SearchRequest", "SearchResult", "band_radiometry",
    "band_sources", "check_collection_bands", "gdal_path", "get_collection", "load_intersects",
    "open_catalog", "parse_bbox", "parse_datetime", "processing_baseline", "search",
]
