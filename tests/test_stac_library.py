"""The STAC library on real items (Planetary Computer, Earth Search, USGS, DEA) and its parsers."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pystac
import pytest

from spectralmoe_cli.bands import resolve_all
from spectralmoe_cli.errors import BandError, InputDataError, UsageError
from spectralmoe_cli.stac import (
    band_sources,
    check_collection_bands,
    gdal_path,
    load_intersects,
    parse_bbox,
    parse_datetime,
    processing_baseline,
)
from spectralmoe_cli.stac.local import check_item_id

PC_S2 = "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"
PC_S2_RASTER = "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json"
ES_S2_V0 = "S2A_28QCH_20200714_0_L2A.json"
LANDSAT8 = "LC08_L2SP_028030_20200114_20200824_02_T1_SR.json"
LANDSAT7 = "LE07_L2SP_044033_20210329_20210424_02_T1_SR.json"
DEA = "ga_ls8c_ard_3-1-0_088080_2020-05-25_final.stac-item.json"


def _item(shared_data, name: str, **properties) -> pystac.Item:
    doc = json.loads((shared_data / "stac_examples" / name).read_text())
    doc["properties"].update(properties)
    return pystac.Item.from_dict(doc)


def _by_band(sources):
    return {s.band.name: s for s in sources}


def test_planetary_computer_rededge_bands_map_by_name_not_by_generic_common_name(shared_data):
    # PC labels B05, B06, B07 and B8A all "common_name: rededge"; only the name tells them apart
    item = _item(shared_data, PC_S2_RASTER)
    sources = _by_band(band_sources(item, ["B05", "B06", "B07", "B8A", "B04", "B08"]))
    assert {k: s.asset_key for k, s in sources.items()} == {
        "rededge071": "B05", "rededge075": "B06", "rededge078": "B07", "nir08": "B8A",
        "red": "B04", "nir": "B08"}
    red = sources["red"]
    assert red.href.startswith("/vsicurl/https://sentinel2l2a01.blob.core.windows.net/")
    assert red.href.endswith("_B04_10m.tif") and red.band_index == 1
    assert red.nodata == 0 and red.data_type == "uint16"
    # baseline 02.12: DN / 10000, no offset; the multi-band "visual" asset is never chosen
    assert (red.scale, red.offset) == (1e-4, 0.0)
    assert all(s.asset_key != "visual" for s in sources.values())


def test_landsat_band_numbers_are_read_with_the_sensor(shared_data):
    oli = _by_band(band_sources(_item(shared_data, LANDSAT8), ["red", "nir08", "swir16"]))
    assert {k: s.asset_key for k, s in oli.items()} == {
        "red": "red", "nir08": "nir08", "swir16": "swir16"}
    # USGS C2 L2 items carry no raster:bands: the documented product scale applies
    assert (oli["red"].scale, oli["red"].offset) == (2.75e-5, -0.2)
    assert "landsat collection 2 level-2" in oli["red"].radiometry.rule
    etm = _by_band(band_sources(_item(shared_data, LANDSAT7), ["nir08", "blue"]))
    assert etm["nir08"].eo_band["name"] == "B4" and etm["blue"].eo_band["name"] == "B1"


def test_earth_search_v0_without_eo_bands_maps_asset_keys(shared_data):
    item = _item(shared_data, ES_S2_V0)
    sources = _by_band(band_sources(item, ["B8A", "B02", "B11"]))
    assert {k: s.asset_key for k, s in sources.items()} == {
        "nir08": "B8A", "blue": "B02", "swir16": "B11"}
    assert processing_baseline(item.properties, item.id) == 2.14  # from sentinel:product_id


def test_dea_product_prefixed_band_names(shared_data):
    sources = _by_band(band_sources(_item(shared_data, DEA), ["red", "swir16", "pan"]))
    assert {k: s.asset_key for k, s in sources.items()} == {
        "red": "nbart_red", "swir16": "nbart_swir_1", "pan": "nbart_panchromatic"}
    assert sources["red"].scale == 1.0 and sources["red"].offset == 0.0


def test_missing_band_names_the_band_and_what_the_item_has(shared_data):
    with pytest.raises(BandError, match=r"no band rededge071.*it has: .*coastal"):
        band_sources(_item(shared_data, LANDSAT8), ["B05"])


def test_collection_item_assets_check(shared_data):
    collection = json.loads((shared_data / "stac_examples" / "sentinel-2-l2a.collection.json")
                            .read_text())
    check_collection_bands(collection["item_assets"], {"platform": "Sentinel-2A"},
                           resolve_all(["B04", "B8A", "B12"]), collection["id"])
    with pytest.raises(BandError, match="collection 'sentinel-2-l2a' has no band pan"):
        check_collection_bands(collection["item_assets"], {"platform": "Sentinel-2A"},
                               resolve_all(["pan"]), collection["id"])


@pytest.mark.parametrize("properties,expected", [
    ({"s2:processing_baseline": "05.09"}, (1e-4, -0.1)),          # offset added by us
    ({"s2:processing_baseline": "04.00",
      "earthsearch:boa_offset_applied": True}, (1e-4, 0.0)),     # provider removed it
    ({"s2:processing_baseline": "03.01"}, (1e-4, 0.0)),           # before the offset era
    ({"s2:processing_baseline": None,
      "s2:product_uri": "S2B_MSIL2A_20230629T212529_N0509_R043_T06VVN_20230629T2.SAFE"},
     (1e-4, -0.1)),                                               # baseline from the name
])
def test_processing_baseline_offset(shared_data, properties, expected):
    item = _item(shared_data, PC_S2_RASTER, **properties)
    red = band_sources(item, ["red"])[0]
    assert (red.scale, red.offset) == pytest.approx(expected)


def test_declared_baseline_offset_is_not_applied_twice(shared_data):
    doc = json.loads((shared_data / "stac_examples" / PC_S2_RASTER).read_text())
    doc["properties"]["s2:processing_baseline"] = "05.10"
    doc["assets"]["B04"]["raster:bands"][0].update(scale=0.0001, offset=-0.1)
    red = band_sources(pystac.Item.from_dict(doc), ["red"])[0]
    assert (red.scale, red.offset) == (0.0001, -0.1)
    assert 1000 * red.scale + red.offset == pytest.approx(0.0)


def test_stac_1_1_bands_field(shared_data):
    doc = json.loads((shared_data / "stac_examples" / PC_S2_RASTER).read_text())
    asset = doc["assets"]["B04"]
    asset["bands"] = [{"name": "B04", "eo:common_name": "red", "nodata": 0,
                       "raster:scale": 0.0001, "raster:offset": -0.1}]
    for key in ("eo:bands", "raster:bands"):
        asset.pop(key)
    red = band_sources(pystac.Item.from_dict(doc), ["red"])[0]
    assert (red.asset_key, red.scale, red.offset, red.nodata) == ("B04", 0.0001, -0.1, 0.0)


@pytest.mark.parametrize("href,base,allow_local,expected", [
    ("https://a.example/x/B04.tif", None, False, "/vsicurl/https://a.example/x/B04.tif"),
    ("B04.tif", "https://a.example/items/i.json", False, "/vsicurl/https://a.example/items/B04.tif"),
    ("s3://bucket/key/B04.tif", None, False, "/vsis3/bucket/key/B04.tif"),
    ("B04.tif", "/data/item/i.json", True, "/data/item/B04.tif"),
])
def test_gdal_paths(href, base, allow_local, expected):
    assert gdal_path(href, base, allow_local=allow_local, what="t") == expected


@pytest.mark.parametrize("href,base", [
    ("../../etc/B04.tif", "https://a.example/items/i.json"),
    ("https://a.example/items/../../B04.tif", None),
    ("/etc/hostname", "https://a.example/items/i.json"),
    ("file:///etc/hostname", None),
    ("/vsimem/x.tif", None),
    ("ftp://a.example/B04.tif", None),
])
def test_unsafe_hrefs_are_refused(href, base):
    with pytest.raises(InputDataError, match="href"):
        gdal_path(href, base, allow_local=False, what="item 'x' asset 'red'")


@pytest.mark.parametrize("item_id", ["../../escaped", "/abs", "a/b", "..", ".hidden", "", "a..b"])
def test_unsafe_item_ids_are_refused(item_id):
    with pytest.raises(InputDataError, match="outside --out"):
        check_item_id(item_id)


def test_real_item_ids_are_safe(shared_data):
    for name in (PC_S2, ES_S2_V0, LANDSAT8, LANDSAT7, DEA):
        item = _item(shared_data, name)
        assert check_item_id(item.id) == item.id


NOW = datetime(2024, 3, 10, 14, 30, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,expected", [
    ("P1D", "2024-03-09T14:30:00Z/2024-03-10T14:30:00Z"),
    ("PT6H", "2024-03-10T08:30:00Z/2024-03-10T14:30:00Z"),
    ("P2W", "2024-02-25T14:30:00Z/2024-03-10T14:30:00Z"),
    ("yesterday", "2024-03-09T00:00:00Z/2024-03-09T23:59:59.999999Z"),
    ("today", "2024-03-10T00:00:00Z/2024-03-10T14:30:00Z"),
    ("2024-01-01/2024-01-31", "2024-01-01T00:00:00Z/2024-01-31T23:59:59.999999Z"),
    ("2024-01-01/..", "2024-01-01T00:00:00Z/.."),
    ("../2024-01-31T12:00:00+01:00", "../2024-01-31T11:00:00Z"),
    ("2024-02-29", "2024-02-29T00:00:00Z/2024-02-29T23:59:59.999999Z"),
])
def test_datetime_ranges(text, expected):
    assert parse_datetime(text, now=NOW) == expected


@pytest.mark.parametrize("text,words", [
    ("P1M", "years and months"), ("P", "not a duration"), ("2024-13-01", "cannot read"),
    ("2024-02-01/2024-01-01", "ends before"), ("../..", "at least one end"),
])
def test_bad_datetimes(text, words):
    with pytest.raises(UsageError, match=words):
        parse_datetime(text, now=NOW)


def test_aoi_parsing(tmp_path):
    assert parse_bbox("11.3,48.05,11.45,48.15").bbox == (11.3, 48.05, 11.45, 48.15)
    for bad in ("1,2,3", "a,b,c,d", "11.45,48.05,11.3,48.15", "0,-95,1,1"):
        with pytest.raises(UsageError, match="--bbox"):
            parse_bbox(bad)
    polygon = {"type": "Polygon", "coordinates": [[[11.3, 48.0], [11.5, 48.0], [11.4, 48.2],
                                                   [11.3, 48.0]]]}
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": polygon}]}))
    aoi = load_intersects(path)
    assert aoi.bbox == (11.3, 48.0, 11.5, 48.2) and aoi.search_args() == {"intersects": polygon}
    path.write_text(json.dumps({"type": "Point", "coordinates": [11.3, 48.0]}))
    with pytest.raises(UsageError, match="Polygon or MultiPolygon"):
        load_intersects(path)
    with pytest.raises(UsageError, match="cannot read the file"):
        load_intersects(tmp_path / "missing.geojson")
