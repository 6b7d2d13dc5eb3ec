"""Metrics follow mmseg IoUMetric's definitions; reports carry them faithfully."""

from __future__ import annotations

import csv
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from spectralmoe_cli.engine.evaluate.metrics import ConfusionMatrix, compute_metrics
from spectralmoe_cli.engine.evaluate.reports import render_table, write_report

# rows: ground truth 0..3; columns: predicted 0..3 and "none" (255 = invalid input)
HAND = np.array([
    [50, 10, 0, 5, 0],   # class 0: present in both
    [5, 30, 0, 0, 5],    # class 1: present in both; 5 pixels without a prediction
    [0, 0, 0, 0, 0],     # class 2: absent from ground truth and prediction -> skipped
    [0, 0, 0, 0, 0],     # class 3: only predicted (5 false positives) -> IoU 0, Acc NaN
])


def _maps_from_counts(counts: np.ndarray, ignored: int = 7) -> tuple[np.ndarray, np.ndarray]:
    k = counts.shape[0]
    labels, preds = [], []
    for gt in range(k):
        for col in range(k + 1):
            labels += [gt] * counts[gt, col]
            preds += [255 if col == k else col] * counts[gt, col]
    labels += [255] * ignored  # ignored pixels, whatever is predicted there, are not scored
    preds += [0, 1, 2, 3, 255, 0, 3][:ignored]
    order = np.random.default_rng(0).permutation(len(labels))
    return np.array(preds, np.uint8)[order].reshape(1, -1), np.array(labels, np.uint8)[order].reshape(1, -1)


def test_hand_made_confusion_matrix_gives_hand_computed_scores():
    pred, label = _maps_from_counts(HAND)
    matrix = ConfusionMatrix(4)
    matrix.update(pred, label)
    assert np.array_equal(matrix.counts, HAND)
    m = compute_metrics(matrix, ["a", "b", "c", "d"])

    iou = [Fraction(50, 65 + 55 - 50), Fraction(30, 40 + 40 - 30), None, Fraction(0)]
    acc = [Fraction(50, 65), Fraction(30, 40), None, None]
    for got, want in zip(m.iou, iou):
        assert math.isnan(got) if want is None else got == pytest.approx(float(want), abs=1e-15)
    for got, want in zip(m.acc, acc):
        assert math.isnan(got) if want is None else got == pytest.approx(float(want), abs=1e-15)
    assert m.miou == pytest.approx(float((iou[0] + iou[1] + iou[3]) / 3), abs=1e-15)
    assert m.macc == pytest.approx(float((acc[0] + acc[1]) / 2), abs=1e-15)
    assert m.aacc == pytest.approx(80 / 105, abs=1e-15)
    observed = Fraction(80, 105)
    expected = Fraction(65 * 55 + 40 * 40, 105 * 105)
    assert m.kappa == pytest.approx(float((observed - expected) / (1 - expected)), abs=1e-15)
    assert m.precision[0] == pytest.approx(50 / 55) and m.precision[3] == 0.0
    assert math.isnan(m.precision[2])
    assert m.f1[0] == pytest.approx(100 / 120) and m.f1[3] == 0.0 and math.isnan(m.f1[2])
    assert m.pixels == 105 and list(m.gt_pixels) == [65, 40, 0, 0] and list(m.pred_pixels) == [55, 40, 0, 5]


def _numpy_reference(pred: np.ndarray, label: np.ndarray, k: int) -> dict:
    valid = label != 255
    iou, acc = [], []
    for c in range(k):
        tp = np.sum((pred == c) & (label == c) & valid)
        fp = np.sum((pred == c) & (label != c) & valid)
        fn = np.sum((pred != c) & (label == c) & valid)
        iou.append(tp / (tp + fp + fn) if tp + fp + fn else np.nan)
        acc.append(tp / (tp + fn) if tp + fn else np.nan)
    return {"iou": np.array(iou), "acc": np.array(acc),
            "aacc": np.sum((pred == label) & valid) / np.sum(valid)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_an_independent_numpy_computation(seed):
    rng = np.random.default_rng(seed)
    k = 6
    label = rng.integers(0, k - 1, size=(3, 64, 80)).astype(np.uint8)  # class 5 never in GT
    label[rng.random(label.shape) < 0.1] = 255
    pred = np.where(rng.random(label.shape) < 0.6, label, rng.integers(0, k, size=label.shape))
    pred = pred.astype(np.uint8)
    pred[rng.random(label.shape) < 0.05] = 255
    matrix = ConfusionMatrix(k)
    for p, y in zip(pred, label):  # image by image, pooled
        matrix.update(p, y)
    m = compute_metrics(matrix)
    ref = _numpy_reference(pred, label, k)
    np.testing.assert_allclose(m.iou, ref["iou"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.acc, ref["acc"], rtol=0, atol=1e-12)
    assert m.miou == pytest.approx(np.nanmean(ref["iou"]), abs=1e-12)
    assert m.macc == pytest.approx(np.nanmean(ref["acc"]), abs=1e-12)
    assert m.aacc == pytest.approx(ref["aacc"], abs=1e-12)
    assert m.iou[5] == 0.0 and math.isnan(m.acc[5])


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match="outside 0..2"):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.full((2, 2), 7))


def test_reports_carry_the_metrics(tmp_path):
    pred, label = _maps_from_counts(HAND)
    matrix = ConfusionMatrix(4)
    matrix.update(pred, label)
    m = compute_metrics(matrix, ["impervious", "building", "water", "car"])
    files = write_report(m, tmp_path / "report", extra={"checkpoint": "model.safetensors"})
    assert sorted(p.name for p in files) == ["confusion.csv", "confusion.png", "metrics.json",
                                             "per_class.csv", "report.md"]
    data = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert data["checkpoint"] == "model.safetensors"
    assert data["mIoU"] == pytest.approx(m.miou) and data["classes"][2]["IoU"] is None
    assert data["confusion"] == HAND.tolist()
    rows = list(csv.DictReader((tmp_path / "report" / "per_class.csv").open()))
    assert [r["name"] for r in rows] == ["impervious", "building", "water", "car"]
    assert float(rows[1]["IoU"]) == pytest.approx(0.6) and rows[2]["IoU"] == ""
    confusion = list(csv.reader((tmp_path / "report" / "confusion.csv").open()))
    assert confusion[0][-1] == "none" and confusion[2][1:] == ["5", "30", "0", "0", "5"]
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| 1 | building | 60.00 | 75.00 |" in markdown and "mIoU 43.81" in markdown
    with Image.open(tmp_path / "report" / "confusion.png") as png:
        assert png.format == "PNG" and png.width > 200
    table = render_table(m)
    assert "building" in table and "nan" in table and "kappa 0.5513" in table
