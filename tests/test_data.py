"""Labelled folders, class files and label conventions, on the real benchmark tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import ISPRS_CLASSES, potsdam_folder, write_geotiff
from PIL import Image
from rasterio import Affine
from rasterio.windows import Window

from spectralmoe_cli.bands import SAME_BAND_NM, match_bands, resolve_all
from spectralmoe_cli.engine.labelled.classes import load_classes
from spectralmoe_cli.engine.labelled.folders import iter_labelled, open_labelled
from spectralmoe_cli.engine.labelled.pairs import find_pairs
from spectralmoe_cli.engine.train.plan import model_band_order
from spectralmoe_cli.engine.train.samples import CropDataset, SampleReader
from spectralmoe_cli.errors import ConfigError, InputDataError

# Pixel counts of the real Potsdam crop's label as stored (PROVENANCE.md; verified in the PNG)
POTSDAM_COUNTS = {0: 24696, 1: 100557, 2: 64023, 3: 34357, 4: 30670, 5: 7841}


def test_potsdam_labels_follow_mmseg_reduce_zero_label(shared_data, tmp_path):
    folder = potsdam_folder(shared_data, tmp_path / "potsdam")
    classes = load_classes(tmp_path / "isprs.toml", reduce_zero_label=True)
    images = list(iter_labelled(folder, classes, band_count=3))
    assert [i.image.name for i in images] == sorted(p.name for p in (folder / "images").iterdir())
    assert all(i.label.shape == (256, 256) and i.label.dtype == np.uint8 for i in images)
    assert images[0].georef.crs is None and images[0].georef.transform is None  # PNG: no georeference
    values, counts = np.unique(np.concatenate([i.label.ravel() for i in images]), return_counts=True)
    got = dict(zip(values.tolist(), counts.tolist()))
    want = {255: POTSDAM_COUNTS[0], **{k - 1: n for k, n in POTSDAM_COUNTS.items() if k}}
    assert got == want  # 0 (eroded boundary) -> ignore, k -> k-1; no clutter in this crop


def test_label_values_outside_the_class_list_name_file_and_values(shared_data, tmp_path):
    folder = potsdam_folder(shared_data, tmp_path / "potsdam")
    no_car = ISPRS_CLASSES.replace('[[classes]]\nvalue = 4\nname = "car"\ncolor = "#ffff00"\n', "")
    (tmp_path / "no_car.toml").write_text(no_car)
    classes = load_classes(tmp_path / "no_car.toml", reduce_zero_label=True)
    with pytest.raises(InputDataError) as info:
        open_labelled(folder, 3, classes)
    message = str(info.value)
    with_cars = [p.name for p in sorted((folder / "labels").iterdir()) if (np.array(Image.open(p)) == 5).any()]
    assert f"labels/{with_cars[0]}:" in message  # the first tile that has cars is named
    assert "label value(s) 5 before --reduce-zero-label" in message


def test_stored_values_with_zero_as_ignore_equal_the_reduced_convention(shared_data, tmp_path):
    folder = potsdam_folder(shared_data, tmp_path / "potsdam")
    stored = tmp_path / "stored.toml"
    text = ISPRS_CLASSES
    for k in range(5, -1, -1):
        text = text.replace(f"value = {k}\n", f"value = {k + 1}\n")
    stored.write_text("ignore = 0\n" + text)
    reduced = list(iter_labelled(folder, load_classes(tmp_path / "isprs.toml", True), 3))
    plain = list(iter_labelled(folder, load_classes(stored), 3))
    assert all(np.array_equal(a.label, b.label) for a, b in zip(reduced, plain))


def test_sen1floods_water_label_with_negative_ignore(shared_data, tmp_path):
    chip = shared_data / "sen1floods11_sample"
    table = tmp_path / "pairs.csv"
    table.write_text(f"image,label\n{chip / 'Spain_7370579_S2Hand.tif'},{chip / 'Spain_7370579_LabelHand.tif'}\n")
    spec = tmp_path / "water.yaml"
    spec.write_text("ignore: -1\nclasses:\n  - {value: 0, name: dry, color: '#a0a0a0'}\n"
                    "  - {value: 1, name: water, color: '#0000ff'}\n")
    classes = load_classes(spec)
    (image,) = iter_labelled(table, classes, band_count=13)
    values, counts = np.unique(image.label, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist())) == {0: 192010, 1: 70035, 255: 99}
    assert image.georef.crs == "EPSG:4326" and image.georef.width == 512


def test_toml_and_yaml_class_files_agree(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("ignore = [7]\n" + ISPRS_CLASSES)
    yaml_file = tmp_path / "c.yml"
    yaml_file.write_text("ignore: [7]\nclasses:\n" + "".join(
        f"  - value: {v}\n    name: {n}\n    color: '{c}'\n" for v, n, c in
        zip(range(6), ["impervious_surface", "building", "low_vegetation", "tree", "car", "clutter"],
            ["#ffffff", "#0000ff", "#00ffff", "#00ff00", "#ffff00", "#ff0000"])))
    a, b = load_classes(toml), load_classes(yaml_file)
    assert (a.values, a.names, a.colors, a.ignore) == (b.values, b.names, b.colors, b.ignore)
    assert a.ignore == (7, 255)
    assert [c.value for c in a.infos()] == list(range(6)) and a.infos()[1].rgb() == (0, 0, 255)


def test_sparse_class_values_are_numbered_in_value_order(tmp_path):
    spec = tmp_path / "worldcover.toml"
    spec.write_text('ignore = 0\n[[classes]]\nvalue = 80\nname = "water"\ncolor = "#0064c8"\n'
                    '[[classes]]\nvalue = 10\nname = "tree"\ncolor = "#006400"\n')
    classes = load_classes(spec)
    assert classes.names == ("tree", "water")
    stored = np.array([[10, 80, 0], [80, 10, 255]], dtype=np.uint8)
    assert classes.encode(stored, "x").tolist() == [[0, 1, 255], [1, 0, 255]]


@pytest.mark.parametrize("text,words", [
    ('[[classes]]\nvalue = 1\nname = "a"\ncolor = "#000000"\n[[classes]]\nvalue = 1\nname = "b"\ncolor = "#ffffff"\n',
     ["duplicate class value(s) 1"]),
    ('[[classes]]\nvalue = 1\nname = "a"\ncolor = "#000000"\n[[classes]]\nvalue = 2\nname = "a"\ncolor = "#ffffff"\n',
     ["duplicate class name(s) a"]),
    ('ignore = 1\n[[classes]]\nvalue = 1\nname = "a"\ncolor = "#000000"\n', ["both a class and ignored"]),
    ('[[classes]]\nvalue = 1\nname = "a"\ncolor = "blue"\n', ["classes.0.color"]),
    ('[[classes]]\nvalue = 1\nname = "a"\n', ["classes.0.color", "Field required"]),
    ('classes = [\n', ["not valid TOML"]),
    # colours: rgb-coded classes and ignore lists
    ('[[classes]]\nname = "a"\ncolor = "#000000"\n', ["classes.0", "a value"]),
    ('[[classes]]\nrgb = "red"\nname = "a"\ncolor = "#000000"\n', ["classes.0", "not a colour"]),
    ('[[classes]]\nrgb = ["#000000", "#000000"]\nname = "a"\ncolor = "#000000"\n', ["duplicate class rgb"]),
    ('ignore = ["#000000"]\n[[classes]]\nrgb = "#000000"\nname = "a"\ncolor = "#000000"\n',
     ["both a class and ignored"]),
    ('ignore = ["black"]\n[[classes]]\nvalue = 1\nname = "a"\ncolor = "#000000"\n', ["ignore", "not a colour"]),
])
def test_bad_class_files_are_config_errors(tmp_path, text, words):
    path = tmp_path / "classes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_classes(path)
    assert all(w in str(info.value) for w in words), str(info.value)


def _folder(tmp_path: Path, names=("a", "b"), label_names=None, size=(32, 32), label_size=None) -> Path:
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in names:
        write_geotiff(root / "images" / f"{name}.tif", rng.random((3, *size), dtype=np.float32))
    for name in label_names if label_names is not None else names:
        write_geotiff(root / "labels" / f"{name}.tif", rng.integers(0, 2, label_size or size, dtype=np.uint8))
    return root


def _binary(tmp_path: Path):
    path = tmp_path / "binary.toml"
    path.write_text('[[classes]]\nvalue = 0\nname = "no"\ncolor = "#000000"\n'
                    '[[classes]]\nvalue = 1\nname = "yes"\ncolor = "#ffffff"\n')
    return load_classes(path)


@pytest.mark.parametrize("build,words", [
    (lambda t: _folder(t, names=()), ["is empty"]),
    (lambda t: _folder(t, names=("a", "b"), label_names=("a",)), ["1 image(s)", "have no label", "b"]),
    (lambda t: _folder(t, names=("a",), label_names=("a", "c")), ["1 label(s)", "have no image", "c"]),
    (lambda t: _folder(t, label_size=(32, 31)), ["is 31x32 but its image", "is 32x32"]),
    (lambda t: t / "missing", ["does not exist"]),
])
def test_broken_folders_are_input_errors(tmp_path, build, words):
    root = build(tmp_path)
    with pytest.raises(InputDataError) as info:
        open_labelled(root, 3, _binary(tmp_path))
    assert all(w in str(info.value) for w in words), str(info.value)


def test_georeference_and_band_count_mismatches_are_input_errors(tmp_path):
    root = _folder(tmp_path, names=("a",))
    classes = _binary(tmp_path)
    with pytest.raises(InputDataError, match="has 3 band.s. but --bands names 4"):
        open_labelled(root, 4, classes)
    write_geotiff(root / "labels" / "a.tif", np.zeros((32, 32), np.uint8),
                  transform=Affine(0.5, 0.0, 500100.0, 0.0, -0.5, 5000000.0))
    with pytest.raises(InputDataError, match="different georeferences"):
        open_labelled(root, 3, classes)


def test_pairs_csv_resolves_paths_beside_it(tmp_path):
    root = _folder(tmp_path)
    table = root / "pairs.csv"
    table.write_text("image,label\nimages/b.tif,labels/b.tif\nimages/a.tif,labels/a.tif\n")
    assert [(i.name, lab.name) for i, lab in find_pairs(table)] == [("b.tif", "b.tif"), ("a.tif", "a.tif")]
    table.write_text("img,ann\nimages/a.tif,labels/a.tif\n")
    with pytest.raises(InputDataError, match="columns image,label"):
        find_pairs(table)


def test_nan_pixels_are_ignored_and_sit_at_the_mean(tmp_path):
    root = tmp_path / "data"
    image = np.random.default_rng(1).normal(100, 10, (3, 40, 40)).astype(np.float32)
    image[1, 5:8, 5:9] = np.nan      # one band NaN -> the whole pixel is invalid
    image[:, 20, 30] = -9999         # the file's nodata in every band
    write_geotiff(root / "images" / "a.tif", image, nodata=-9999)
    write_geotiff(root / "labels" / "a.tif", np.ones((40, 40), np.uint8))
    classes = _binary(tmp_path)
    (pair,) = open_labelled(root, 3, classes)
    mean, std = (100.0, 90.0, 110.0), (10.0, 20.0, 5.0)
    x, y = SampleReader(classes, (0, 1, 2), mean, std).read(pair, Window(0, 0, 40, 40))
    invalid = np.zeros((40, 40), bool)
    invalid[5:8, 5:9] = True
    invalid[20, 30] = True
    assert np.all(y[invalid] == 255) and np.all(y[~invalid] == 1)
    assert np.all(x[:, invalid] == 0.0) and np.isfinite(x).all()
    expected = (image[2] - 110.0) / 5.0
    np.testing.assert_allclose(x[2][~invalid], expected[~invalid], rtol=1e-6)
    (labelled,) = iter_labelled(root, classes, band_count=3)  # evaluation never scores them either
    assert np.array_equal(labelled.label == 255, invalid)


def test_file_band_order_is_reordered_by_name():
    bgr = resolve_all(["B2", "B3", "B4"])  # Sentinel-2 names of blue, green, red
    model = model_band_order(bgr, ["red", "green", "blue"])
    assert [b.name for b in model] == ["red", "green", "blue"]
    assert [m.index for m in match_bands(bgr, model, SAME_BAND_NM)] == [2, 1, 0]
    irrg = resolve_all(["nir", "red", "green"])  # not the config's bands: the file order stays
    assert [b.name for b in model_band_order(irrg, ["red", "green", "blue"])] == ["nir", "red", "green"]


def test_crops_are_deterministic_and_keep_image_and_label_aligned(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(2)
    for name, size in (("big", 70), ("small", 20)):
        image = rng.random((2, size, size)).astype(np.float32)
        write_geotiff(root / "images" / f"{name}.tif", image)
        write_geotiff(root / "labels" / f"{name}.tif", (image[0] > 0.5).astype(np.uint8))
    classes = _binary(tmp_path)
    pairs = open_labelled(root, 2, classes)
    reader = SampleReader(classes, (0, 1), (0.0, 0.0), (1.0, 1.0))
    data = CropDataset(pairs, reader, crop=32, seed=7, length=40)
    seen_pairs, transforms = [], set()
    for index in range(40):
        x, y = data[index]
        again_x, again_y = data[index]
        assert torch_equal(x, again_x) and torch_equal(y, again_y)
        labelled = y != 255
        assert np.array_equal((x[0].numpy() > 0.5)[labelled], y.numpy()[labelled] == 1)
        plan = data.plan(index)
        seen_pairs.append(plan.pair)
        transforms.add((plan.rotations, plan.flip))
        if pairs[plan.pair].name == "small":
            assert int(labelled.sum()) == 20 * 20  # padded to the crop, padding ignored
    for epoch in range(20):  # every image exactly once per epoch
        assert sorted(seen_pairs[2 * epoch:2 * epoch + 2]) == [0, 1]
    assert len(transforms) == 8
    other = CropDataset(pairs, reader, crop=32, seed=8, length=40)
    assert any(data.plan(i) != other.plan(i) for i in range(10))


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_png_images_read_through_gdal(shared_data, tmp_path):
    folder = potsdam_folder(shared_data, tmp_path / "potsdam", tile=128)
    classes = load_classes(tmp_path / "isprs.toml", reduce_zero_label=True)
    pairs = open_labelled(folder, 3, classes)
    assert len(pairs) == 16
    x, _ = SampleReader(classes, (2, 1, 0), (0.0,) * 3, (1.0,) * 3).read(pairs[0], Window(3, 5, 10, 10))
    png = np.array(Image.open(pairs[0].image))
    assert np.array_equal(x, png[5:15, 3:13, ::-1].transpose(2, 0, 1).astype(np.float32))
