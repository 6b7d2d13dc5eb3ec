"""Class polygons as GeoPackage and GeoParquet: the same features from one pipeline, whatever the
chunking; the GeoParquet file is valid (``geo`` metadata, WKB, CRS as PROJJSON) and reads back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pyogrio.raw
import pytest
import shapely
import zarr
from affine import Affine
from checkpoints import make_checkpoint
from helpers import run_cli, write_geotiff
from rasterio.crs import CRS
from served_world import FAST

from spectralmoe_cli.io.polygons import write_class_polygons
from spectralmoe_cli.labels import CLASS_MAP_NODATA

CLASSES = [(0, "water", (0, 0, 255)), (1, "trees", (0, 128, 0)), (2, "roofs", (200, 0, 0))]
TRANSFORM = Affine(2.0, 0.0, 600000.0, 0.0, -2.0, 5100000.0)
UTM = CRS.from_epsg(32632)


def class_map() -> np.ndarray:
    """Smooth blobs (so polygons cross chunk borders, with holes) and a nodata hole."""
    yy, xx = np.mgrid[0:90, 0:110]
    field = np.sin(yy / 7.0) * np.cos(xx / 11.0) + 0.3 * np.sin((xx + yy) / 5.0)
    classes = np.digitize(field, [-0.3, 0.4]).astype(np.uint8)
    classes[40:52, 10:45] = CLASS_MAP_NODATA
    return classes


def store(path: Path, classes: np.ndarray, chunk: int) -> Path:
    group = zarr.open_group(str(path), mode="w")
    group.create_array("classes", shape=classes.shape, chunks=(chunk, chunk), dtype="uint8",
                       fill_value=CLASS_MAP_NODATA)[:] = classes
    return path


def polygons(tmp_path: Path, chunk: int, crs: CRS | None = UTM, **kw) -> dict[str, Path]:
    out = {"gpkg": tmp_path / f"c{chunk}.gpkg", "parquet": tmp_path / f"c{chunk}.parquet"}
    write_class_polygons(store(tmp_path / f"c{chunk}.zarr", class_map(), chunk), out, crs,
                         TRANSFORM, CLASSES, **kw)
    return out


def read_gpkg(path: Path) -> list[tuple[int, str, float, bytes]]:
    meta, _, geometry, fields = pyogrio.raw.read(str(path))
    assert list(meta["fields"]) == ["class", "name", "area_m2"]
    return sorted(zip(fields[0].tolist(), fields[1].tolist(), fields[2].tolist(),
                      [bytes(g) for g in geometry]))


def read_parquet(path: Path) -> list[tuple[int, str, float, bytes]]:
    table = pq.read_table(path)
    assert table.column_names == ["class", "name", "area_m2", "geometry"]
    return sorted(zip(*(table[c].to_pylist() for c in table.column_names)))


def geo(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"geo"])


def test_geoparquet_holds_the_same_polygons_as_the_geopackage(tmp_path):
    out = polygons(tmp_path, 32)
    features = read_parquet(out["parquet"])
    assert features == read_gpkg(out["gpkg"]) and len(features) > 10
    raster = class_map()
    for value, name, _ in CLASSES:
        mine = [f for f in features if f[0] == value]
        assert mine and all(f[1] == name for f in mine)
        area = (raster == value).sum() * 4.0
        assert sum(shapely.from_wkb(f[3]).area for f in mine) == pytest.approx(area, rel=0.01)
        assert sum(f[2] for f in mine) == pytest.approx(area, rel=1e-9)
    assert all(shapely.from_wkb(f[3]).geom_type == "Polygon" for f in features)
    assert not list(tmp_path.glob("*.part*"))


def test_polygons_do_not_depend_on_the_chunks(tmp_path):
    small, large = polygons(tmp_path, 24), polygons(tmp_path, 128)
    assert read_parquet(small["parquet"]) == read_parquet(large["parquet"])
    assert read_gpkg(small["gpkg"]) == read_gpkg(large["gpkg"])


def test_geo_metadata_follows_the_spec(tmp_path):
    path = polygons(tmp_path, 32)["parquet"]
    meta = geo(path)
    assert {"version", "primary_column", "columns"} <= meta.keys()
    assert meta["version"] in ("1.0.0", "1.1.0") and meta["primary_column"] == "geometry"
    column = meta["columns"]["geometry"]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert CRS.from_user_input(json.dumps(column["crs"])) == UTM
    bounds = shapely.total_bounds([shapely.from_wkb(f[3]) for f in read_parquet(path)])
    assert column["bbox"] == bounds.tolist()
    assert column["bbox"][0] >= 600000.0 and column["bbox"][3] <= 5100000.0


def test_geoparquet_reads_back_in_geopandas(tmp_path):
    geopandas = pytest.importorskip("geopandas")
    out = polygons(tmp_path, 32)
    frame = geopandas.read_parquet(out["parquet"])
    assert frame.crs.to_epsg() == 32632
    gpkg = geopandas.read_file(out["gpkg"])
    assert sorted(frame["area_m2"]) == sorted(gpkg["area_m2"])
    assert frame.geometry.area.sum() == pytest.approx(gpkg.geometry.area.sum(), rel=1e-12)


def test_min_area_and_simplify_apply_to_both_formats(tmp_path):
    every = read_parquet(polygons(tmp_path / "all", 32)["parquet"])
    small = sorted(f[2] for f in every)[len(every) // 2]
    out = polygons(tmp_path / "some", 32, min_area=small, simplify=3.0)
    kept = read_parquet(out["parquet"])
    assert kept == read_gpkg(out["gpkg"])
    assert 0 < len(kept) < len(every) and min(f[2] for f in kept) >= small
    assert all(shapely.from_wkb(f[3]).is_valid for f in kept)


def test_a_map_without_crs_or_classes_still_gives_valid_files(tmp_path):
    out = {"gpkg": tmp_path / "e.gpkg", "parquet": tmp_path / "e.parquet"}
    empty = np.full((40, 40), CLASS_MAP_NODATA, dtype=np.uint8)
    assert write_class_polygons(store(tmp_path / "e.zarr", empty, 16), out, None, TRANSFORM,
                                CLASSES) == 0
    assert read_parquet(out["parquet"]) == [] == read_gpkg(out["gpkg"])
    column = geo(out["parquet"])["columns"]["geometry"]
    assert column["crs"] is None and "bbox" not in column  # null: no CRS, not longitude/latitude


def test_a_failed_write_leaves_no_file(tmp_path):
    zarr.open_group(str(tmp_path / "broken.zarr"), mode="w")  # no classes array
    out = {"gpkg": tmp_path / "b.gpkg", "parquet": tmp_path / "b.parquet"}
    with pytest.raises(KeyError):
        write_class_polygons(tmp_path / "broken.zarr", out, UTM, TRANSFORM, CLASSES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.zarr"]


@pytest.mark.slow
def test_predict_writes_geoparquet_beside_the_geopackage_and_resumes(tmp_path):
    bands = ["red", "green", "blue", "nir"]
    ckpt = make_checkpoint(tmp_path / "m.safetensors", class_names=["water", "trees", "roofs"],
                           mean=128.0, std=30.0)
    yy, xx = np.mgrid[0:70, 0:80]
    data = np.stack([128 + 100 * np.sin(yy / (6.0 + b)) * np.cos(xx / (9.0 - b))
                     for b in range(4)]).clip(1, 255).astype(np.uint8)
    scene = write_geotiff(tmp_path / "scene.tif", data, nodata=0, transform=TRANSFORM)

    def predict(*args: str) -> dict:
        done = run_cli("predict", scene, "--bands", ",".join(bands), "--tile", "32",
                       "--overlap", "8", "--chunk", "48", "--format", "cog,gpkg,parquet",
                       "--checkpoint", ckpt, "--out", tmp_path / "out", "--json", *FAST, *args,
                       timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)["results"][0]

    first = predict()
    outputs = {k: Path(v) for k, v in first["outputs"].items()}
    assert outputs["parquet"].suffix == ".parquet"
    assert read_parquet(outputs["parquet"]) == read_gpkg(outputs["gpkg"])
    assert CRS.from_user_input(json.dumps(geo(outputs["parquet"])["columns"]["geometry"]["crs"])
                               ) == UTM
    item = json.loads(outputs["item"].read_text())
    assert item["assets"]["polygons_parquet"] == {
        "href": f"./{outputs['parquet'].name}", "type": "application/vnd.apache.parquet",
        "roles": ["data"], "title": "class polygons (class, name, area_m2)",
        "classification:classes": item["assets"]["polygons_gpkg"]["classification:classes"]}
    assert item["assets"]["polygons_gpkg"]["type"] == "application/geopackage+sqlite3"

    made = outputs["parquet"].stat().st_mtime_ns
    assert predict()["status"] == "skipped"  # complete: kept as it is
    assert outputs["parquet"].stat().st_mtime_ns == made
    outputs["parquet"].unlink()
    again = predict()
    assert again["status"] == "done" and outputs["parquet"].exists()
    assert read_parquet(outputs["parquet"]) == read_gpkg(outputs["gpkg"])
