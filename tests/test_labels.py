"""Labels as users have them: RGB-coded masks, merged classes, vector labels, name patterns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.features
import rasterio.warp
import shapely
from checkpoints import make_checkpoint
from helpers import ISPRS_CLASSES, assert_one_line_error, potsdam_folder, run_cli
from PIL import Image
from safetensors.torch import load_file

from spectralmoe_cli.engine.labelled.classes import load_classes
from spectralmoe_cli.engine.labelled.folders import open_labelled, read_label
from spectralmoe_cli.engine.labelled.pairs import LabelOptions, find_pairs
from spectralmoe_cli.engine.labelled.stats import folder_stats
from spectralmoe_cli.errors import ConfigError, InputDataError

RGB = "red,green,blue"
# ISPRS colours of the classes numbered 0..5 after --reduce-zero-label; stored 0 (the eroded
# boundary, ignored) is black in the RGB copies
ISPRS_RGB = ["#ffffff", "#0000ff", "#00ffff", "#00ff00", "#ffff00", "#ff0000"]
NAMES = ["impervious_surface", "building", "low_vegetation", "tree", "car", "clutter"]
RGB_CLASSES = 'ignore = ["#000000"]\n' + "".join(
    f'[[classes]]\nrgb = "{c}"\nname = "{n}"\ncolor = "{c}"\n' for c, n in zip(ISPRS_RGB, NAMES))


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def rgb_copy(folder: Path, dest: Path) -> Path:
    """The same labelled folder with RGB-coded labels: stored k -> ISPRS colour of class k-1."""
    shutil.copytree(folder / "images", dest / "images")
    (dest / "labels").mkdir()
    lut = np.array([(0, 0, 0), *map(_rgb, ISPRS_RGB)], dtype=np.uint8)
    for path in sorted((folder / "labels").iterdir()):
        Image.fromarray(lut[np.array(Image.open(path))]).save(dest / "labels" / path.name)
    return dest


def _confusion(result) -> np.ndarray:
    assert result.returncode == 0, result.stderr[-3000:]
    return np.array(json.loads(result.stdout)["confusion"])


@pytest.mark.slow
@pytest.mark.timeout(1800)  # two short trainings and two evaluations of four 256 px tiles
def test_rgb_coded_masks_train_and_evaluate_as_the_index_labels(shared_data, tmp_path):
    index = potsdam_folder(shared_data, tmp_path / "index")
    coded = rgb_copy(index, tmp_path / "coded")
    (tmp_path / "rgb.toml").write_text(RGB_CLASSES)
    assert np.array(Image.open(next((coded / "labels").iterdir()))).shape == (256, 256, 3)
    common = ["--model", "spectralmoe_tiny", "--bands", RGB, "--steps", "3", "--batch-size", "2",
              "--crop", "64", "--checkpoint-every", "0", "--deterministic", "--workers", "0"]
    runs = {}
    for name, folder, classes, extra in (("index", index, tmp_path / "isprs.toml", ["--reduce-zero-label"]),
                                         ("coded", coded, tmp_path / "rgb.toml", [])):
        out = tmp_path / f"run_{name}"
        result = run_cli("train", "--train", folder, "--classes", classes, "--out", out, *common, *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = Path(result.stdout.strip().splitlines()[-1])
    weights = [load_file(runs[name]) for name in ("index", "coded")]
    assert weights[0].keys() == weights[1].keys()
    assert all(bool((weights[0][k] == weights[1][k]).all()) for k in weights[0])  # same samples, same labels
    by_index = _confusion(run_cli("evaluate", runs["index"], index, "--bands", RGB, "--json"))
    by_colour = _confusion(run_cli("evaluate", runs["coded"], coded, "--bands", RGB, "--json"))
    assert by_index.sum() > 200_000 and np.array_equal(by_index, by_colour)
    reduced, coloured = load_classes(tmp_path / "isprs.toml", True), load_classes(tmp_path / "rgb.toml")
    for a, b in zip(open_labelled(index, 3, reduced), open_labelled(coded, 3, coloured)):
        assert b.mode == "rgb" and np.array_equal(read_label(a, reduced), read_label(b, coloured))


def _predicted(ckpt: Path, folder: Path, out: Path) -> dict[str, np.ndarray]:
    maps = {}
    for image in sorted((folder / "images").iterdir()):
        run = run_cli("predict", image, "--checkpoint", ckpt, "--bands", RGB, "--out", out,
                      "--format", "cog", "--json")
        assert run.returncode == 0, run.stderr
        with rasterio.open(json.loads(run.stdout)["results"][0]["outputs"]["cog"]) as src:
            maps[image.name] = src.read(1)
    return maps


def test_merged_classes_by_values_and_by_colours_score_as_numpy(shared_data, tmp_path):
    index = potsdam_folder(shared_data, tmp_path / "index", tile=256, domain="vaihingen")
    coded = rgb_copy(index, tmp_path / "coded")
    by_value = tmp_path / "merged_values.toml"
    by_value.write_text('ignore = [0, 6]\n'
                        '[[classes]]\nvalue = [1, 2]\nname = "built"\ncolor = "#ff0000"\n'
                        '[[classes]]\nvalue = [4, 3]\nname = "vegetation"\ncolor = "#00ff00"\n'
                        '[[classes]]\nvalue = 5\nname = "car"\ncolor = "#ffff00"\n')
    by_colour = tmp_path / "merged_colours.yaml"
    by_colour.write_text("ignore: ['#000000', '#FF0000']\nclasses:\n"
                         "  - {rgb: ['#ffffff', '#0000ff'], name: built, color: '#ff0000'}\n"
                         "  - {rgb: ['#00ffff', '#00ff00'], name: vegetation, color: '#00ff00'}\n"
                         "  - {rgb: '#ffff00', name: car, color: '#ffff00'}\n")
    ckpt = make_checkpoint(tmp_path / "m.safetensors", bands=["red", "green", "blue"], num_classes=3,
                           mean=110.0, std=55.0, tile=64, overlap=16,
                           class_names=["built", "vegetation", "car"])
    maps = _predicted(ckpt, index, tmp_path / "maps")
    expected = np.zeros((3, 4), np.int64)  # rows: truth, columns: prediction, last: none
    merge = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2}
    for name, pred in maps.items():
        stored = np.array(Image.open(index / "labels" / name))
        for value, truth in merge.items():
            for column in range(3):
                expected[truth, column] += int(np.sum((stored == value) & (pred == column)))
            expected[truth, 3] += int(np.sum((stored == value) & (pred > 2)))
    assert (expected[:, :3].sum(axis=0) > 0).sum() >= 2  # the map is not one class
    values = _confusion(run_cli("evaluate", ckpt, index, "--bands", RGB, "--classes", by_value, "--json"))
    colours = _confusion(run_cli("evaluate", ckpt, coded, "--bands", RGB, "--classes", by_colour, "--json"))
    assert np.array_equal(values, expected) and np.array_equal(colours, expected)
    spec = load_classes(by_value)
    assert spec.values == ((1, 2), (3, 4), (5,)) and spec.names == ("built", "vegetation", "car")
    assert spec.to_json()["values"] == [[1, 2], [3, 4], 5]


def test_integer_class_files_keep_their_spec_json(tmp_path):
    (tmp_path / "isprs.toml").write_text(ISPRS_CLASSES)
    spec = load_classes(tmp_path / "isprs.toml", reduce_zero_label=True)
    assert spec.to_json() == {"values": list(range(6)), "names": NAMES, "colors": ISPRS_RGB,
                              "ignore": [255], "reduce_zero_label": True}
    assert type(spec).from_json(spec.to_json(), "x").values == spec.values


def test_palette_labels_are_matched_by_colour(shared_data, tmp_path):
    index = potsdam_folder(shared_data, tmp_path / "index", tile=256)
    palette = tmp_path / "palette"
    shutil.copytree(index / "images", palette / "images")
    (palette / "labels").mkdir()
    lut = [(0, 0, 0), *map(_rgb, ISPRS_RGB)]
    for path in sorted((index / "labels").iterdir()):
        image = Image.fromarray(np.array(Image.open(path)), mode="L").convert("P")
        image.putpalette([c for rgb in lut for c in rgb] + [0] * (768 - 3 * len(lut)))
        image.save(palette / "labels" / path.name)
    (tmp_path / "rgb.toml").write_text(RGB_CLASSES)
    reduced = load_classes(tmp_path / "isprs.toml", reduce_zero_label=True)
    coloured = load_classes(tmp_path / "rgb.toml")
    for a, b in zip(open_labelled(index, 3, reduced), open_labelled(palette, 3, coloured)):
        assert b.mode == "palette"
        assert np.array_equal(read_label(a, reduced), read_label(b, coloured))


# --- vector labels over the georeferenced NAIP scene ---------------------------------------------

NAIP = "naip_4band_opengeos/m_4709963_se_14_1_20090818.tif"
RGBN = ["red", "green", "blue", "nir"]
VECTOR_CLASSES = ('[[classes]]\nvalue = 1\nname = "field"\ncolor = "#e0c060"\n'
                  '[[classes]]\nvalue = 2\nname = "trees"\ncolor = "#207020"\n'
                  '[[classes]]\nvalue = 3\nname = "water"\ncolor = "#2060c0"\n')


def _utm_polygons(bounds) -> list[tuple[shapely.Geometry, str]]:
    """Overlapping polygons over the scene (and past its edge), vertices off the pixel grid."""
    left, bottom, right, top = bounds
    w, h = right - left, top - bottom

    def at(fx: float, fy: float) -> tuple[float, float]:
        return left + fx * w + 1.37, bottom + fy * h + 2.11

    return [
        (shapely.Polygon([at(-0.1, 0.5), at(0.45, 0.52), at(0.5, 1.1), at(-0.1, 1.05)]), "field"),
        (shapely.Polygon([at(0.3, 0.1), at(0.9, 0.2), at(0.7, 0.7), at(0.35, 0.6)]), "trees"),
        (shapely.Polygon([at(0.6, 0.5), at(0.8, 0.45), at(0.95, 0.9), at(0.55, 0.85)],
                         holes=[[at(0.7, 0.6), at(0.75, 0.6), at(0.72, 0.7)]]), "water"),
        (shapely.MultiPolygon([shapely.box(*at(0.05, 0.05), *at(0.2, 0.3)),
                               shapely.box(*at(0.8, 0.02), *at(1.2, 0.15))]), "2"),
    ]


def _write_vector(path: Path, polygons, crs: str, scene_crs, field: str = "class") -> Path:
    """The polygons reprojected from the scene's CRS to ``crs`` and written with pyogrio."""
    geoms = [shapely.geometry.shape(rasterio.warp.transform_geom(scene_crs, crs, shapely.geometry.mapping(g)))
             for g, _ in polygons]
    pyogrio.raw.write(path, shapely.to_wkb(np.array(geoms, dtype=object)),
                      [np.array([v for _, v in polygons], dtype=object)], [field], crs=crs,
                      geometry_type="Unknown", driver="GPKG" if path.suffix == ".gpkg" else "GeoJSON")
    return path


@pytest.fixture
def naip_vector(shared_data, tmp_path):
    scene = shared_data / NAIP
    with rasterio.open(scene) as ds:
        profile, bounds, crs, transform, shape = ds.profile, ds.bounds, ds.crs, ds.transform, ds.shape
    polygons = _utm_polygons(bounds)
    folder = tmp_path / "vector"
    (folder / "images").mkdir(parents=True)
    shutil.copy(scene, folder / "images" / "naip.tif")
    vector = _write_vector(folder / "labels.gpkg", polygons, "EPSG:4326", crs)
    (tmp_path / "classes.toml").write_text(VECTOR_CLASSES)
    # the reference: the same polygons (read back from the file) rasterised by rasterio in the test
    _, _, wkb, (values,) = pyogrio.raw.read(vector, columns=["class"])
    number = {"field": 0, "trees": 1, "water": 2, "2": 1}
    shapes = [(rasterio.warp.transform_geom("EPSG:4326", crs, shapely.geometry.mapping(g)), number[v])
              for g, v in zip(shapely.from_wkb(wkb), values)]
    label = rasterio.features.rasterize(shapes, out_shape=shape, transform=transform, fill=255, dtype="uint8")
    raster = tmp_path / "raster"
    (raster / "images").mkdir(parents=True)
    (raster / "labels").mkdir()
    shutil.copy(scene, raster / "images" / "naip.tif")
    profile.update(count=1, nodata=None, dtype="uint8")
    with rasterio.open(raster / "labels" / "naip.tif", "w", **profile) as dst:
        dst.write(np.where(label == 255, 255, label + 1).astype(np.uint8), 1)
    return folder, raster, tmp_path / "classes.toml", label


def test_vector_labels_burn_as_rasterio_and_evaluate_the_same(naip_vector, tmp_path):
    folder, raster, classes, label = naip_vector
    counts = np.bincount(label.ravel(), minlength=256)
    assert all(counts[c] > 5000 for c in (0, 1, 2, 255)), counts[[0, 1, 2, 255]]
    spec = load_classes(classes)
    (pair,) = open_labelled(folder, 4, spec)
    assert pair.mode == "vector"
    assert np.array_equal(read_label(pair, spec), label)
    ckpt = make_checkpoint(tmp_path / "m.safetensors", bands=RGBN, num_classes=3, tile=128, overlap=16,
                           class_names=["field", "trees", "water"])
    bands = ",".join(RGBN)
    by_vector = _confusion(run_cli("evaluate", ckpt, folder, "--bands", bands, "--classes", classes, "--json"))
    by_raster = _confusion(run_cli("evaluate", ckpt, raster, "--bands", bands, "--classes", classes, "--json"))
    assert by_vector.sum() > 100_000 and np.array_equal(by_vector, by_raster)
    # --background names the class of pixels outside every polygon
    (filled,) = open_labelled(folder, 4, spec, options=LabelOptions(background="water"))
    assert np.array_equal(read_label(filled, spec), np.where(label == 255, 2, label))
    # stats reads the images of a vector-labelled folder like any other
    assert folder_stats(folder, ",".join(RGBN)).to_json() == folder_stats(raster, ",".join(RGBN)).to_json()


@pytest.mark.slow
def test_training_on_vector_labels_records_the_field(naip_vector, tmp_path):
    folder, _, classes, _ = naip_vector
    out = tmp_path / "run"
    result = run_cli("train", "--model", "spectralmoe_tiny", "--train", folder, "--bands", ",".join(RGBN),
                     "--classes", classes, "--out", out, "--steps", "2", "--batch-size", "1", "--crop", "64",
                     "--checkpoint-every", "0", "--workers", "1", "--background", "field")
    assert result.returncode == 0, result.stderr[-3000:]
    recipe = json.loads((out / "run.json").read_text())["recipe"]
    assert recipe["vector_labels"] == {"field": "class", "background": "field"}


# --- bad input: one line, exit 3 ------------------------------------------------------------------

def test_bad_labels_are_one_line_exit_3(shared_data, naip_vector, tmp_path):
    folder, _, classes, _ = naip_vector
    ckpt = make_checkpoint(tmp_path / "m.safetensors", bands=RGBN, num_classes=3, tile=128, overlap=16,
                           class_names=["field", "trees", "water"])
    # an unknown colour: named with its pixel count, five at most, and the file
    index = potsdam_folder(shared_data, tmp_path / "index", tile=256)
    coded = rgb_copy(index, tmp_path / "coded")
    first = sorted((coded / "labels").iterdir())[0]
    pixels = np.array(Image.open(first))
    for k, colour in enumerate([(18, 52, 86), (1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12), (13, 14, 15)]):
        pixels[k, : 10 + k] = colour
    Image.fromarray(pixels).save(first)
    (tmp_path / "rgb.toml").write_text(RGB_CLASSES)
    isprs = make_checkpoint(tmp_path / "isprs.safetensors", bands=["red", "green", "blue"], num_classes=6,
                            class_names=NAMES)
    result = run_cli("evaluate", isprs, coded, "--bands", RGB, "--classes", tmp_path / "rgb.toml")
    assert_one_line_error(result, 3, first.name, "#0d0e0f (15 px)", "#070809 (13 px)", "+1 more colours")
    assert "#123456" not in result.stderr  # the sixth most frequent is counted, not named
    # a polygon file without the field
    bands = ["--bands", ",".join(RGBN)]
    assert_one_line_error(run_cli("evaluate", ckpt, folder, *bands, "--classes", classes, "--label-field", "landuse"),
                          3, "labels.gpkg", "no field 'landuse'", "fields: class")
    # a value not in the class file
    bad = tmp_path / "bad_value"
    (bad / "images").mkdir(parents=True)
    shutil.copy(folder / "images" / "naip.tif", bad / "images")
    with rasterio.open(folder / "images" / "naip.tif") as ds:
        polygons = [(g, "lava" if v == "water" else v) for g, v in _utm_polygons(ds.bounds)]
        _write_vector(bad / "labels.geojson", polygons, "EPSG:3857", ds.crs)
    assert_one_line_error(run_cli("evaluate", ckpt, bad, *bands, "--classes", classes), 3,
                          "labels.geojson", "'lava'", "not in the class file")
    # an image without a CRS, with vector labels
    plain = tmp_path / "plain"
    shutil.copytree(index / "images", plain / "images")
    shutil.copy(folder / "labels.gpkg", plain / "labels.gpkg")
    isprs_rgb = make_checkpoint(tmp_path / "rgb3.safetensors", bands=["red", "green", "blue"], num_classes=3,
                                class_names=["field", "trees", "water"])
    assert_one_line_error(run_cli("evaluate", isprs_rgb, plain, "--bands", RGB, "--classes", classes),
                          3, "has no CRS", "georeferenced")
    with pytest.raises(ConfigError, match="--background 'lava' is no class"):
        open_labelled(folder, 4, load_classes(classes), options=LabelOptions(background="lava"))


# --- pairing by name pattern ----------------------------------------------------------------------

def test_pairs_by_name_pattern_in_a_flat_folder(shared_data, tmp_path):
    index = potsdam_folder(shared_data, tmp_path / "index", tile=256)
    flat = tmp_path / "deepglobe"
    flat.mkdir()
    for path in sorted((index / "images").iterdir()):
        shutil.copy(path, flat / f"{path.stem}_sat.png")
        shutil.copy(index / "labels" / path.name, flat / f"{path.stem}_mask.png")
    options = LabelOptions(image_glob="*_sat.png", label_glob="*_mask.png")
    pairs = find_pairs(flat, options)
    assert [(i.name, lab.name) for i, lab in pairs] == [(f"{p.stem}_sat.png", f"{p.stem}_mask.png")
                                                         for p in sorted((index / "images").iterdir())]
    spec = load_classes(tmp_path / "isprs.toml", reduce_zero_label=True)
    by_pattern = [read_label(p, spec) for p in open_labelled(flat, 3, spec, options=options)]
    by_name = [read_label(p, spec) for p in open_labelled(index, 3, spec)]
    assert all(np.array_equal(a, b) for a, b in zip(by_pattern, by_name))
    stats = run_cli("stats", flat, "--bands", RGB, "--image-glob", "*_sat.png", "--label-glob", "*_mask.png",
                    "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout) == folder_stats(index, RGB).to_json() | {"files": 4}
    (flat / f"{pairs[0][1].name}").unlink()
    with pytest.raises(InputDataError, match="1 image.s. in .* have no label '\\*_mask.png'"):
        find_pairs(flat, options)
    assert_one_line_error(run_cli("stats", flat, "--bands", RGB, "--image-glob", "sat.png"), 2, "exactly one '*'")
