"""Hyperspectral scenes: bands named by wavelength, depth RGB by wavelength, matching a
checkpoint within a tolerance, and per-pixel spectral resampling.

No labelled hyperspectral set is available here, so the 32-band test cube (466-940 nm, 32
evenly spaced centres, as WHU-OHS) is built from the real 13-band Sentinel-2 chip by linear
interpolation of each pixel's spectrum between the Sentinel-2 band centres. Everything is cut
to 64x64 pixels to stay small.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from helpers import assert_one_line_error, run_cli, write_geotiff
from spectralmoe_cli import bands
from spectralmoe_cli.errors import BandError
from spectralmoe_cli.io.spectra import interpolation_mix

CHIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sen1floods11_sample"
S2_NM = {"B1": 443, "B2": 490, "B3": 560, "B4": 665, "B5": 705, "B6": 740, "B7": 783, "B8": 842,
         "B8A": 865, "B9": 945}
HSI_NM = np.linspace(466.0, 940.0, 32)
SIZE = 64
CLASSES = """\
[[classes]]
value = 0
name = "land"
color = "#a0a0a0"
[[classes]]
value = 1
name = "water"
color = "#0000ff"
"""


def _names(centres) -> list[str]:
    return [f"{round(float(c))}nm" for c in centres]


def hyperspectral_cube() -> tuple[np.ndarray, np.ndarray]:
    """[32, 64, 64] reflectance x10000 interpolated from Sentinel-2, and the water label."""
    if not CHIP.is_dir():  # real data is optional: without it these tests skip, as the others do
        pytest.skip("../shared/data is not beside the checkout")
    with rasterio.open(CHIP / "Spain_7370579_S2Hand.tif") as src:
        order = [d for d in src.descriptions if d in S2_NM]
        s2 = src.read([src.descriptions.index(d) + 1 for d in order],
                      window=((200, 200 + SIZE), (200, 200 + SIZE))).astype(np.float32)
    centres = np.array([S2_NM[d] for d in order], dtype=np.float64)
    pixels = s2.reshape(len(order), -1).T
    cube = np.stack([np.interp(HSI_NM, centres, p) for p in pixels], axis=1)
    with rasterio.open(CHIP / "Spain_7370579_LabelHand.tif") as src:
        label = src.read(1, window=((200, 200 + SIZE), (200, 200 + SIZE)))
    label = np.where(label < 0, 255, label).astype(np.uint8)
    return cube.reshape(32, SIZE, SIZE).astype(np.float32), label


def _write_cube(path: Path, cube: np.ndarray, descriptions: list[str] | None = None,
                wavelengths_um: list[float] | None = None) -> Path:
    write_geotiff(path, cube)
    with rasterio.open(path, "r+") as dst:
        for i in range(cube.shape[0]):
            if descriptions:
                dst.set_band_description(i + 1, descriptions[i])
            if wavelengths_um:
                dst.update_tags(i + 1, wavelength=f"{wavelengths_um[i]:.4f}",
                                wavelength_units="Micrometers")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A 32-band training folder and scene, and spectralmoe_tiny trained on it for 2 steps."""
    root = tmp_path_factory.mktemp("hsi")
    cube, label = hyperspectral_cube()
    write_geotiff(root / "train" / "images" / "chip.tif", cube)
    write_geotiff(root / "train" / "labels" / "chip.tif", label, nodata=None)
    (root / "classes.toml").write_text(CLASSES)
    _write_cube(root / "scene.tif", cube, descriptions=_names(HSI_NM))
    run = root / "run"
    result = run_cli(*_train("spectralmoe_tiny", root, run))
    assert result.returncode == 0, result.stderr[-3000:]
    return {"root": root, "cube": cube, "checkpoint": run / "model.safetensors", "log": result.stderr}


def _train(model: str, root: Path, out: Path) -> list[str]:
    return ["train", "--model", model, "--train", root / "train", "--bands", ",".join(_names(HSI_NM)),
            "--classes", root / "classes.toml", "--out", out, "--steps", "2", "--batch-size", "1",
            "--crop", "32", "--workers", "0", "--checkpoint-every", "0", "--device", "cpu"]


def _predict(scene: Path, checkpoint: Path, out: Path, *extra: str):
    return run_cli("predict", scene, "--checkpoint", checkpoint, "--out", out, "--tile", "32",
                   "--overlap", "8", "--format", "cog", *extra)


def _class_map(out: Path) -> np.ndarray:
    (cog,) = out.glob("*.tif")
    with rasterio.open(cog) as src:
        return src.read(1)


def test_wavelength_names_parse_in_nm_and_um():
    assert bands.resolve("665nm") == bands.resolve("0.665um") == bands.Band("wl665nm", 0.665)
    assert bands.wavelength_from_metadata("0.4662", "Micrometers").name == "wl466nm"
    assert bands.wavelength_from_metadata("940", None).name == "wl940nm"


def test_depth_rgb_comes_from_the_bands_nearest_665_560_490_nm():
    hsi = bands.resolve_all(_names(HSI_NM))
    picked = [hsi[i].name for i in bands.rgb_indices(hsi)]
    assert picked == ["wl665nm", "wl558nm", "wl497nm"]
    named = bands.resolve_all(["nir", "red", "green", "blue"])
    assert bands.rgb_indices(named) == [1, 2, 3]  # names win over wavelengths


def test_no_band_within_40_nm_of_blue_is_a_band_error():
    with pytest.raises(BandError, match="blue band.*490"):
        bands.rgb_indices(bands.resolve_all(["540nm", "560nm", "665nm", "842nm"]))


def test_matching_within_the_tolerance_and_beyond_it():
    model = bands.resolve_all(["466nm", "481nm"])
    near = bands.match_bands(bands.resolve_all(["469nm", "484nm"]), model, 5.0)
    assert [m.index for m in near] == [0, 1] and near[0].offset_nm == pytest.approx(3.0)
    with pytest.raises(BandError, match=r"wl466nm .*nearest is wl426nm, -40.0 nm off"):
        bands.match_bands(bands.resolve_all(["426nm", "521nm"]), model, 5.0)


def test_a_centre_within_1_nm_names_the_band_and_2_nm_does_not():
    model = bands.resolve_all(["red", "green", "blue", "nir"])
    named = bands.resolve_all(["842nm", "490nm", "666nm", "559nm"])  # 666 - 665 nm: 1.0000000000000009
    assert [m.index for m in bands.match_bands(named, model, bands.SAME_BAND_NM)] == [2, 3, 1, 0]
    with pytest.raises(BandError, match=r"lacks band\(s\) red .*wl667nm, \+2.0 nm off; beyond the 1 nm"):
        bands.match_bands(bands.resolve_all(["667nm", "560nm", "490nm", "842nm"]), model,
                          bands.SAME_BAND_NM)


def test_interpolation_reproduces_a_linear_spectrum_and_never_extrapolates():
    scene = [(0, 400.0), (1, 500.0), (2, 700.0)]
    mix = interpolation_mix(scene, [450.0, 500.0, 650.0])
    spectrum = np.array([2 * 400.0 + 1, 2 * 500.0 + 1, 2 * 700.0 + 1], np.float32)
    data = spectrum[list(mix.sources)].reshape(-1, 1, 1)
    np.testing.assert_allclose(mix.apply(data).ravel(), [901.0, 1001.0, 1301.0], rtol=1e-6)
    with pytest.raises(BandError, match="outside the scene's range 400-700 nm"):
        interpolation_mix(scene, [720.0])


@pytest.mark.slow
def test_train_logs_and_info_reports_the_depth_rgb_bands(trained):
    assert "depth model reads R, G, B from bands wl665nm, wl558nm, wl497nm" in trained["log"]
    result = run_cli("info", "--checkpoint", trained["checkpoint"], "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["depth_model"]["rgb_bands"] == ["wl665nm", "wl558nm", "wl497nm"]
    assert [b["name"] for b in report["bands"]][:2] == ["wl466nm", "wl481nm"]


@pytest.mark.slow
def test_predict_by_name_then_3_nm_off_then_40_nm_off(trained, tmp_path):
    root, checkpoint = trained["root"], trained["checkpoint"]
    exact = _predict(root / "scene.tif", checkpoint, tmp_path / "exact")
    assert exact.returncode == 0, exact.stderr[-3000:]
    reference = _class_map(tmp_path / "exact")
    assert reference.shape == (SIZE, SIZE) and set(np.unique(reference)) <= {0, 1}

    # the same pixels, centres 3 nm off, described by wavelength metadata (µm), not by name
    shifted = _write_cube(tmp_path / "shifted.tif", trained["cube"],
                          wavelengths_um=list((HSI_NM + 3.0) / 1000.0))
    near = _predict(shifted, checkpoint, tmp_path / "near")
    assert near.returncode == 0, near.stderr[-3000:]
    assert "matched by wavelength within 5 nm" in near.stderr and "wl466nm<-wl469nm (+3.0 nm)" in near.stderr
    np.testing.assert_array_equal(_class_map(tmp_path / "near"), reference)

    # every centre 40 nm off its checkpoint band (the first below, the others above)
    far_nm = np.concatenate([[HSI_NM[0] - 40.0], HSI_NM[1:] + 40.0])
    far = _write_cube(tmp_path / "far.tif", trained["cube"], descriptions=_names(far_nm))
    assert_one_line_error(_predict(far, checkpoint, tmp_path / "far"), 3, "wl466nm",
                          "nearest is wl426nm", "-40.0 nm")
    resampled = _predict(far, checkpoint, tmp_path / "resampled", "--resample-spectra")
    assert resampled.returncode == 0, resampled.stderr[-3000:]
    assert "spectrum resampled onto the model's 32 band(s)" in resampled.stderr
    assert set(np.unique(_class_map(tmp_path / "resampled"))) <= {0, 1}


@pytest.mark.slow
def test_a_32_band_training_without_a_blue_band_exits_3(tmp_path):
    root = tmp_path
    cube, label = hyperspectral_cube()
    write_geotiff(root / "train" / "images" / "chip.tif", cube[16:])
    write_geotiff(root / "train" / "labels" / "chip.tif", label)
    (root / "classes.toml").write_text(CLASSES)
    result = run_cli("train", "--model", "spectralmoe_tiny", "--train", root / "train",
                     "--bands", ",".join(_names(HSI_NM[16:])), "--classes", root / "classes.toml",
                     "--out", root / "run", "--steps", "1", "--device", "cpu")
    assert_one_line_error(result, 3, "depth model needs a", "within ±40 nm")
    assert not (root / "run").exists()


@pytest.mark.slow
def test_dofa_trains_on_32_bands_by_wavelength_and_predicts(trained, tmp_path):
    root = trained["root"]
    result = run_cli(*_train("spectralmoe_dofa_tiny", root, tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(run_cli("info", "--checkpoint", tmp_path / "run" / "model.safetensors", "--json").stdout)
    assert info["backbone"]["name"] == "dofa_vitb16" and len(info["bands"]) == 32
    assert info["bands"][0] == {"name": "wl466nm", "wavelength": 0.466}
    predicted = _predict(root / "scene.tif", tmp_path / "run" / "model.safetensors", tmp_path / "out")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert _class_map(tmp_path / "out").shape == (SIZE, SIZE)
