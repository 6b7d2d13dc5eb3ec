"""evaluate: the tiled engine's maps scored with mmseg's definitions, checked independently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from checkpoints import make_checkpoint
from helpers import assert_one_line_error, potsdam_folder, run_cli
from PIL import Image

RGB = "red,green,blue"


@pytest.fixture(scope="module")
def vaihingen(tmp_path_factory, request):
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not shared.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    root = tmp_path_factory.mktemp("vaihingen")
    folder = potsdam_folder(shared, root / "data", tile=128, domain="vaihingen")
    names = ["impervious_surface", "building", "low_vegetation", "tree", "car", "clutter"]
    ckpt = make_checkpoint(root / "m.safetensors", bands=["red", "green", "blue"], num_classes=6,
                           mean=110.0, std=55.0, tile=64, overlap=16, class_names=names)
    return folder, root / "isprs.toml", ckpt


def _numpy_scores(pred: np.ndarray, label: np.ndarray, k: int) -> dict:
    """mmseg IoUMetric, written out independently: pooled areas, NaN classes skipped."""
    scored = label != 255
    p, g = pred[scored].astype(int), label[scored].astype(int)
    inter = np.array([np.sum((p == c) & (g == c)) for c in range(k)], float)
    area_p = np.array([np.sum(p == c) for c in range(k)], float)
    area_g = np.array([np.sum(g == c) for c in range(k)], float)
    union = area_p + area_g - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
        acc = inter / area_g
    return {"miou": np.nanmean(iou), "macc": np.nanmean(acc), "aacc": inter.sum() / area_g.sum(),
            "iou": iou}


def test_evaluate_equals_predict_then_numpy(vaihingen, tmp_path):
    folder, classes, ckpt = vaihingen
    result = run_cli("evaluate", ckpt, folder, "--bands", RGB, "--classes", classes,
                     "--reduce-zero-label", "--out", tmp_path / "report", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    preds, labels = [], []
    for image in sorted((folder / "images").iterdir()):
        run = run_cli("predict", image, "--checkpoint", ckpt, "--bands", RGB, "--out",
                      tmp_path / "maps", "--format", "cog", "--json")
        assert run.returncode == 0, run.stderr
        with rasterio.open(json.loads(run.stdout)["results"][0]["outputs"]["cog"]) as src:
            preds.append(src.read(1))
        raw = np.array(Image.open(folder / "labels" / image.name)).astype(int)
        labels.append(np.where(raw == 0, 255, raw - 1))
    expected = _numpy_scores(np.concatenate([p.ravel() for p in preds]),
                             np.concatenate([g.ravel() for g in labels]), 6)
    assert scores["mIoU"] == pytest.approx(expected["miou"], abs=1e-12)
    assert scores["mAcc"] == pytest.approx(expected["macc"], abs=1e-12)
    assert scores["aAcc"] == pytest.approx(expected["aacc"], abs=1e-12)
    for reported, iou in zip(scores["classes"], expected["iou"]):
        if np.isnan(iou):  # neither ground truth nor prediction: skipped, reported as null
            assert reported["IoU"] is None
        else:
            assert reported["IoU"] == pytest.approx(iou, abs=1e-12)
    assert scores["classes"][5]["gt_pixels"] == 0  # no clutter in the Vaihingen crop
    report = tmp_path / "report"
    assert {p.name for p in report.iterdir()} >= {"metrics.json", "per_class.csv", "confusion.csv",
                                                  "report.md", "confusion.png"}
    assert json.loads((report / "metrics.json").read_text())["model"] == "spectralmoe_tiny"


def test_min_miou_gate_exits_4_after_reporting(vaihingen, tmp_path):
    folder, classes, ckpt = vaihingen
    result = run_cli("evaluate", ckpt, folder, "--bands", RGB, "--classes", classes,
                     "--reduce-zero-label", "--min-miou", "99", "--out", tmp_path)
    assert_one_line_error(result, 4, "below --min-miou 99.00 %")
    assert "mIoU" in result.stdout and (tmp_path / "metrics.json").exists()
    passing = run_cli("evaluate", ckpt, folder, "--bands", RGB, "--classes", classes,
                      "--reduce-zero-label", "--min-miou", "0.0")
    assert passing.returncode == 0, passing.stderr


def test_evaluate_bad_inputs(vaihingen, tmp_path):
    folder, classes, ckpt = vaihingen
    assert_one_line_error(run_cli("evaluate", ckpt, folder, "--bands", RGB), 2, "--classes")
    other = tmp_path / "other.toml"
    other.write_text(classes.read_text().replace("building", "house"))
    assert_one_line_error(run_cli("evaluate", ckpt, folder, "--bands", RGB, "--classes", other,
                                  "--reduce-zero-label"), 2, "house")
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "labels").mkdir()
    assert_one_line_error(run_cli("evaluate", ckpt, empty, "--bands", RGB, "--classes", classes), 3)
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "labels").mkdir()
    first = sorted((folder / "images").iterdir())[0]
    (bad / "images" / first.name).write_bytes(first.read_bytes())
    label = np.array(Image.open(folder / "labels" / first.name))
    label[:4, :4] = 9
    Image.fromarray(label).save(bad / "labels" / first.name)
    assert_one_line_error(run_cli("evaluate", ckpt, bad, "--bands", RGB, "--classes", classes,
                                  "--reduce-zero-label"), 3, "label value(s) 9")
