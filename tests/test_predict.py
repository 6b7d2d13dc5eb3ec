"""predict: chunk invariance, blending, nodata, band handling, georeferencing, outputs, resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
import zarr
from checkpoints import RGBN, make_checkpoint
from helpers import ROOT, assert_one_line_error, run_cli
from rasterio.crs import CRS
from rio_cogeo.cogeo import cog_validate
from scenes import smooth_field, write_scene

from spectralmoe_cli.engine.predict.runner import run_predict
from spectralmoe_cli.engine.predict.settings import PredictSettings

TILE, OVERLAP = 64, 16


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def constant_ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "constant.safetensors", constant_class=1)


def predict(scene, ckpt, out, **kw) -> dict:
    options = dict(tile=TILE, overlap=OVERLAP, bands=["red", "green", "blue", "nir"])
    options.update(kw)
    summary = run_predict([str(scene)], ckpt, out, PredictSettings(**options), device="cpu",
                          progress=False)
    if "error" in summary:
        raise summary["error"]
    return summary


def outputs(summary: dict) -> dict:
    return summary["results"][0]["outputs"]


def class_array(summary: dict) -> np.ndarray:
    with rasterio.open(outputs(summary)["cog"]) as src:
        return src.read(1)


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / "scene.tif", smooth_field(230, 270, 4))


def test_chunk_invariance(scene, ckpt, tmp_path):
    hashes, cog_bytes = set(), set()
    for chunk in (64, 150, 4096):  # -> chunks of 96, 144 and one chunk for the whole scene
        summary = predict(scene, ckpt, tmp_path / f"c{chunk}", chunk=chunk, probabilities=True)
        hashes.add(digest(class_array(summary)))
        probs = zarr.open_group(outputs(summary)["zarr"], mode="r")["probabilities"][:]
        hashes.add("p" + digest(probs))
        cog_bytes.add(hashlib.sha256(Path(outputs(summary)["cog"]).read_bytes()).hexdigest())
    assert len([h for h in hashes if not h.startswith("p")]) == 1
    assert len([h for h in hashes if h.startswith("p")]) == 1
    assert len(cog_bytes) == 1
    classes = class_array(summary)
    assert (classes != 255).all() and len(np.unique(classes)) > 1  # a real, non-trivial map


def test_constant_model_gives_a_constant_map_without_seams(scene, constant_ckpt, tmp_path):
    summary = predict(scene, constant_ckpt, tmp_path, probabilities=True)
    assert (class_array(summary) == 1).all()
    probs = zarr.open_group(outputs(summary)["zarr"], mode="r")["probabilities"][:]
    # softmax of logits (0, 1, 0) is constant; blending a constant with any weights keeps it
    expected = np.rint(np.exp(1) / (np.exp(1) + 2) * 250)
    assert (probs[1] == expected).all()


def test_blend_modes_all_cover_every_pixel(scene, ckpt, tmp_path):
    maps = {}
    for blend in ("hann", "linear", "none", "center"):
        maps[blend] = class_array(predict(scene, ckpt, tmp_path / blend, blend=blend))
        assert (maps[blend] != 255).all(), blend
    assert not np.array_equal(maps["hann"], maps["none"])  # the weights really differ


def test_nan_block_becomes_nodata_and_does_not_leak(tmp_path, ckpt, constant_ckpt):
    data = smooth_field(200, 200, 4, seed=3)
    clean = write_scene(tmp_path / "clean.tif", data)
    holed = data.copy()
    holed[:, 90:130, 100:150] = np.nan
    hole = write_scene(tmp_path / "hole.tif", holed)
    base = class_array(predict(clean, ckpt, tmp_path / "a"))
    got = class_array(predict(hole, ckpt, tmp_path / "b"))
    assert (got[90:130, 100:150] == 255).all()
    mask = np.zeros_like(got, bool)
    mask[90:130, 100:150] = True
    assert (got[~mask] != 255).all()
    # tiles that do not touch the hole are unaffected, bit for bit
    stride = TILE - OVERLAP
    touched = np.zeros_like(mask)
    for y in list(range(0, 200 - TILE, stride)) + [200 - TILE]:
        for x in list(range(0, 200 - TILE, stride)) + [200 - TILE]:
            if mask[y:y + TILE, x:x + TILE].any():
                touched[y:y + TILE, x:x + TILE] = True
    assert (~touched).sum() > 1000
    np.testing.assert_array_equal(got[~touched], base[~touched])
    # with a pointwise-constant model the neighbours are exactly unchanged
    const = class_array(predict(hole, constant_ckpt, tmp_path / "c"))
    assert (const[~mask] == 1).all() and (const[mask] == 255).all()


def test_declared_nodata_any_band_invalidates_and_zero_is_not_assumed(tmp_path, ckpt):
    data = smooth_field(120, 130, 4, seed=5)
    data[:, :10, :10] = 0.0  # zeros in a file that declares no nodata are valid data
    data[2, 50:60, 50:60] = -9999.0  # one band at the declared nodata invalidates the pixel
    plain = write_scene(tmp_path / "plain.tif", data)
    declared = write_scene(tmp_path / "declared.tif", data, nodata=-9999.0)
    a = class_array(predict(plain, ckpt, tmp_path / "a"))
    b = class_array(predict(declared, ckpt, tmp_path / "b"))
    assert (a != 255).all()
    assert (b[50:60, 50:60] == 255).all() and (b[:10, :10] != 255).all()
    c = class_array(predict(plain, ckpt, tmp_path / "c", nodata=-9999.0))  # --nodata override
    assert (c[50:60, 50:60] == 255).all()


def test_permuting_bands_with_bands_option_gives_identical_output(scene, ckpt, tmp_path):
    with rasterio.open(scene) as src:
        data, profile = src.read(), src.profile
    order = [3, 1, 0, 2]
    permuted = tmp_path / "permuted.tif"
    with rasterio.open(permuted, "w", **profile) as dst:
        dst.write(data[order])
    names = [RGBN[i] for i in order]
    a = class_array(predict(scene, ckpt, tmp_path / "a"))
    b = class_array(predict(permuted, ckpt, tmp_path / "b", bands=names))
    np.testing.assert_array_equal(a, b)
    # Sentinel-2 names resolve to the same bands: B08,B03,B04,B02 == nir,green,red,blue
    c = class_array(predict(permuted, ckpt, tmp_path / "c", bands=["B8", "B03", "B4", "B02"]))
    np.testing.assert_array_equal(a, c)


def test_band_descriptions_are_used_when_bands_is_omitted(tmp_path, ckpt):
    data = smooth_field(80, 90, 5, seed=1)
    path = write_scene(tmp_path / "described.tif", data,
                       descriptions=["B02", "B03", "B04", "B08", "QA"])
    reference = write_scene(tmp_path / "ref.tif", data[[2, 1, 0, 3]])
    a = class_array(predict(path, ckpt, tmp_path / "a", bands=None))
    b = class_array(predict(reference, ckpt, tmp_path / "b"))
    np.testing.assert_array_equal(a, b)


def test_georeferencing_is_exact_and_outputs_are_valid(tmp_path, ckpt, shared_data):
    naip = shared_data / "naip_4band_opengeos" / "m_4709963_se_14_1_20200831.tif"
    summary = predict(naip, ckpt, tmp_path, tile=64, overlap=16, probabilities=True)
    out = outputs(summary)
    with rasterio.open(naip) as src, rasterio.open(out["cog"]) as cog:
        assert cog.crs == src.crs and cog.transform == src.transform and cog.shape == src.shape
        assert cog.nodata == 255 and cog.dtypes[0] == "uint8"
        assert cog.overviews(1), "a COG of this size has overviews"
        assert cog.colormap(1)[0][:3] == (31, 119, 180)
        assert json.loads(cog.tags(1)["CLASS_NAMES"]) == {"0": "class0", "1": "class1", "2": "class2"}
        assert cog.profile["blockxsize"] == 512 and cog.compression.name.upper() == "DEFLATE"
        naip_valid = (src.read() != 0).all(axis=0)
        classes = cog.read(1)
        assert ((classes == 255) == ~naip_valid).all()  # NAIP declares nodata 0
    assert cog_validate(out["cog"], quiet=True)[0]
    # Zarr: CRS and transform through rioxarray and through GDAL
    ds = xr.open_zarr(out["zarr"], decode_coords="all")
    assert ds.classes.rio.crs == src.crs
    assert ds.classes.rio.transform() == src.transform
    assert ds.classes.shape == src.shape
    with rasterio.open(f'ZARR:"{out["zarr"]}":/classes') as gz:
        assert gz.crs == src.crs and gz.transform == src.transform
        np.testing.assert_array_equal(gz.read(1), classes)
    attrs = zarr.open_group(out["zarr"], mode="r").attrs
    assert attrs["proj:code"] == "EPSG:26914" and attrs["spatial:shape"] == [723, 934]
    assert attrs["spatial:transform"] == list(src.transform)[:6]
    # STAC item
    item = json.loads(Path(out["item"]).read_text())
    assert item["properties"]["proj:code"] == "EPSG:26914"
    assert item["properties"]["proj:shape"] == [723, 934]
    assert item["links"][0]["rel"] == "derived_from"
    asset = item["assets"]["classes"]
    assert asset["file:size"] == os.path.getsize(out["cog"])
    assert asset["file:checksum"] == "1220" + hashlib.sha256(Path(out["cog"]).read_bytes()).hexdigest()
    assert [c["name"] for c in asset["classification:classes"]] == ["class0", "class1", "class2"]
    assert item["properties"]["spectralmoe:model"]["checkpoint_hash"].startswith("sha256:")
    assert -100 < item["bbox"][0] < -98 and 46 < item["bbox"][1] < 48
    assert Path(out["quicklook"]).read_bytes()[:4] == b"\x89PNG"


def test_epsg4326_scene(tmp_path, shared_data):
    s2 = shared_data / "sen1floods11_sample" / "Spain_7370579_S2Hand.tif"
    ckpt = make_checkpoint(tmp_path / "s2.safetensors", bands=["blue", "green", "red", "nir"],
                           mean=1000.0, std=500.0)
    summary = predict(s2, ckpt, tmp_path / "out", bands=None, chunk=256)
    with rasterio.open(s2) as src, rasterio.open(outputs(summary)["cog"]) as cog:
        assert cog.crs == CRS.from_epsg(4326) and cog.transform == src.transform
    ds = xr.open_zarr(outputs(summary)["zarr"], decode_coords="all")
    assert ds.classes.rio.crs.to_epsg() == 4326
    item = json.loads(Path(outputs(summary)["item"]).read_text())
    assert item["properties"]["proj:code"] == "EPSG:4326"


@pytest.mark.parametrize("shape", [(1, 1), (100, 37), (37, 100)])
def test_tiny_scenes_are_covered(tmp_path, ckpt, shape):
    path = write_scene(tmp_path / "small.tif", smooth_field(*shape, 4))
    summary = predict(path, ckpt, tmp_path / "out")
    classes = class_array(summary)
    assert classes.shape == shape and (classes != 255).all()
    assert cog_validate(outputs(summary)["cog"], quiet=True)[0]


def test_zarr_scene_input(tmp_path, ckpt, scene):
    da = rioxarray.open_rasterio(scene)
    store = tmp_path / "scene.zarr"
    da.to_dataset(name="reflectance").to_zarr(store, zarr_format=2)
    a = class_array(predict(scene, ckpt, tmp_path / "a"))
    b = class_array(predict(store, ckpt, tmp_path / "b"))
    np.testing.assert_array_equal(a, b)


def test_rerun_skips_and_force_recomputes(scene, ckpt, tmp_path):
    first = predict(scene, ckpt, tmp_path)
    assert first["done"] == 1
    again = predict(scene, ckpt, tmp_path)
    assert again["skipped"] == 1 and again["tiles"] == 0
    forced = predict(scene, ckpt, tmp_path, force=True)
    assert forced["done"] == 1 and forced["tiles"] > 0
    other = predict(scene, ckpt, tmp_path, overlap=8)
    assert outputs(other)["cog"] != outputs(first)["cog"]  # settings change the output name


def test_zarr_only_and_cog_only(scene, ckpt, tmp_path):
    z = predict(scene, ckpt, tmp_path / "z", formats=("zarr",))
    assert "cog" not in outputs(z) and Path(outputs(z)["zarr"]).is_dir()
    c = predict(scene, ckpt, tmp_path / "c", formats=("cog",))
    assert "zarr" not in outputs(c) and Path(outputs(c)["cog"]).is_file()
    item = json.loads(Path(outputs(c)["item"]).read_text())
    assert set(item["assets"]) == {"classes", "quicklook"}


@pytest.mark.slow
def test_kill_and_resume_gives_an_identical_map(tmp_path, ckpt):
    scene = write_scene(tmp_path / "big.tif", smooth_field(700, 700, 4, seed=9))
    args = ["predict", scene, "--checkpoint", ckpt, "--bands", "red,green,blue,nir",
            "--tile", TILE, "--overlap", OVERLAP, "--chunk", 96]
    reference = run_cli(*args, "--out", tmp_path / "ref", "--json")
    assert reference.returncode == 0, reference.stderr
    ref_cog = json.loads(reference.stdout)["results"][0]["outputs"]["cog"]

    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "spectralmoe_cli", *map(str, args), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    done_dir = None
    while time.time() < deadline:
        partial = list(out.glob("*.zarr.partial"))
        done_dir = partial[0] / "_chunks_done" if partial else None
        if done_dir is not None and done_dir.is_dir() and len(list(done_dir.glob("[0-9]*.[0-9]*"))) >= 12:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert done_dir is not None and list(out.glob("*.zarr.partial")), "killed too late to test resume"
    assert not list(out.glob("*.tif")), "nothing looks finished after a kill"
    resumed = run_cli(*args, "--out", out, "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)["results"][0]
    assert result["chunks_resumed"] >= 12 and result["chunks_computed"] < 64 - 11
    assert Path(result["outputs"]["cog"]).read_bytes() == Path(ref_cog).read_bytes()
    assert not list(out.glob("*.partial*"))


def test_a_second_run_on_the_same_output_is_locked_out(scene, ckpt, tmp_path):
    import fcntl

    from spectralmoe_cli.checkpoint import read_metadata
    from spectralmoe_cli.engine.predict.scene import output_name
    from spectralmoe_cli.io.scene import open_scene
    settings = PredictSettings(tile=TILE, overlap=OVERLAP, bands=RGBN)
    name = output_name(open_scene(scene), read_metadata(ckpt), settings, [0, 1, 2, 3])
    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / f".{name}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        summary = run_predict([str(scene)], ckpt, tmp_path, settings, device="cpu", progress=False)
    assert summary["failed"] == 1 and "another spectralmoe run" in summary["results"][0]["error"]
    assert summary["error"].exit_code == 75


def test_many_scenes_one_failure_exit_4_and_summary(scene, ckpt, tmp_path):
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(scene.read_bytes()[:3000])
    result = run_cli("predict", scene, bad, tmp_path / "missing.tif", "--checkpoint", ckpt,
                     "--bands", "red,green,blue,nir", "--tile", TILE, "--overlap", OVERLAP,
                     "--out", tmp_path / "out", "--json")
    assert result.returncode == 4, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["failed"]) == (1, 2)
    assert set(summary["time_split_s"]) == {"read", "infer", "write"} and summary["peak_rss_mb"] > 0
    on_disk = json.loads((tmp_path / "out" / "spectralmoe-summary.json").read_text())
    assert on_disk["failed"] == 2
    assert "Traceback" not in result.stderr


def test_bad_inputs_exit_codes(scene, ckpt, tmp_path):
    base = ["--checkpoint", ckpt, "--tile", TILE, "--overlap", OVERLAP, "--out", tmp_path / "o"]
    assert_one_line_error(run_cli("predict", tmp_path / "nope.tif", "--bands", "red,green,blue,nir", *base),
                          3, "does not exist")
    assert_one_line_error(run_cli("predict", tmp_path, "--bands", "red,green,blue,nir", *base),
                          3, "is a directory")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(scene.read_bytes()[:3000])
    assert_one_line_error(run_cli("predict", truncated, "--bands", "red,green,blue,nir", *base), 3)
    text = tmp_path / "notes.tif"
    text.write_text("hello")
    assert_one_line_error(run_cli("predict", text, "--bands", "red", *base), 3, "cannot open")
    one_band = write_scene(tmp_path / "one.tif", smooth_field(40, 40, 1))
    assert_one_line_error(run_cli("predict", one_band, "--bands", "red", *base), 3,
                          "lacks band(s) green, blue, nir")
    assert_one_line_error(run_cli("predict", one_band, *base), 3, "no band descriptions")
    assert_one_line_error(run_cli("predict", scene, "--bands", "red,green,blue,ultraviolet", *base),
                          3, "unknown band name 'ultraviolet'")
    assert_one_line_error(run_cli("predict", scene, "--bands", "red,green,B4,nir", *base),
                          3, "duplicate band")
    assert_one_line_error(run_cli("predict", scene, "--bands", "red,green,blue", *base),
                          3, "names 3 band(s)")
    assert_one_line_error(run_cli("predict", scene, "--bands", "red,green,blue,nir",
                                  "--checkpoint", tmp_path / "none.safetensors", "--out", tmp_path / "o"),
                          2, "does not exist")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(run_cli("predict", scene, "--bands", "red,green,blue,nir", "--checkpoint", ckpt,
                                  "--out", blocker / "sub"), 2, "cannot write to --out")
    assert_one_line_error(run_cli("predict", scene, "--bands", "red,green,blue,nir", *base,
                                  "--blend", "gaussian"), 2, "--blend")
    assert not list((tmp_path / "o").glob("*.tif")) if (tmp_path / "o").exists() else True


def test_crs_less_raster_is_allowed_with_a_warning(tmp_path, ckpt):
    path = write_scene(tmp_path / "nocrs.tif", smooth_field(50, 60, 4), crs=None)
    result = run_cli("predict", path, "--checkpoint", ckpt, "--bands", "red,green,blue,nir",
                     "--tile", TILE, "--overlap", OVERLAP, "--out", tmp_path / "o", "--json")
    assert result.returncode == 0, result.stderr
    assert "has no CRS" in result.stderr
    out = json.loads(result.stdout)["results"][0]["outputs"]
    with rasterio.open(out["cog"]) as cog:
        assert cog.crs is None and cog.shape == (50, 60)
    assert json.loads(Path(out["item"]).read_text())["geometry"] is None


def test_mask2former_checkpoint_predicts(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m2f.safetensors", model="spectralmoe_tiny_m2f")
    path = write_scene(tmp_path / "scene.tif", smooth_field(90, 110, 4))
    summary = predict(path, ckpt, tmp_path / "out", probabilities=True)
    classes = class_array(summary)
    assert classes.shape == (90, 110) and (classes != 255).all()
    probs = zarr.open_group(outputs(summary)["zarr"], mode="r")["probabilities"][:].astype(int)
    assert np.abs(probs.sum(axis=0) - 250).max() <= 3  # normalised class scores
