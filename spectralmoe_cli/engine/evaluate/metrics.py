"""Segmentation scores with mmseg ``IoUMetric``'s definitions, from one pooled confusion matrix.

Counts are pooled over every labelled pixel of every image (never averaged per image), so a
folder scores the same whether it is split into few large or many small files. A class with
neither ground truth nor prediction has no IoU (NaN) and is skipped by the means; a class that is
only predicted has IoU 0. A prediction outside 0..K-1 (255 where the input was invalid) at a
labelled pixel counts as a miss: it lowers recall and aAcc but is no class's false positive,
exactly as mmseg's histogram over 0..K-1 drops it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ...labels import IGNORE_INDEX


class ConfusionMatrix:
    """Pixel counts [K, K+1]: rows are ground truth, columns predictions, the last column 'none'."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, prediction: np.ndarray, label: np.ndarray) -> None:
        """Add one image (or batch); label pixels equal to the ignore index are not scored."""
        if prediction.shape != label.shape:
            raise ValueError(f"prediction shape {prediction.shape} != label shape {label.shape}")
        k = self.num_classes
        label = label.reshape(-1).astype(np.int64)
        prediction = prediction.reshape(-1).astype(np.int64)
        scored = label != self.ignore_index
        if np.any(scored & ((label < 0) | (label >= k))):
            raise ValueError(f"label values outside 0..{k - 1} and not {self.ignore_index}")
        label, prediction = label[scored], prediction[scored]
        column = np.where((prediction >= 0) & (prediction < k), prediction, k)
        self.counts += np.bincount(label * (k + 1) + column,
                                   minlength=k * (k + 1)).reshape(k, k + 1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: the mean is NaN, say nothing
        return float(np.nanmean(values)) if values.size else float("nan")


@dataclass(frozen=True)
class Metrics:
    """Per-class and summary scores as fractions in [0, 1] (NaN where undefined)."""

    class_names: list[str]
    confusion: np.ndarray
    iou: np.ndarray
    acc: np.ndarray
    precision: np.ndarray
    f1: np.ndarray
    gt_pixels: np.ndarray
    pred_pixels: np.ndarray
    aacc: float
    miou: float
    macc: float
    mf1: float
    kappa: float
    pixels: int

    @property
    def recall(self) -> np.ndarray:
        """Recall is mmseg's per-class accuracy, TP / (TP + FN)."""
        return self.acc

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes None."""
        def num(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "aAcc": num(self.aacc), "mIoU": num(self.miou), "mAcc": num(self.macc),
            "mF1": num(self.mf1), "kappa": num(self.kappa), "pixels": self.pixels,
            "classes": [
                {"value": i, "name": name, "IoU": num(self.iou[i]), "Acc": num(self.acc[i]),
                 "precision": num(self.precision[i]), "recall": num(self.acc[i]),
                 "F1": num(self.f1[i]), "gt_pixels": int(self.gt_pixels[i]),
                 "pred_pixels": int(self.pred_pixels[i])}
                for i, name in enumerate(self.class_names)
            ],
            "confusion": self.confusion.tolist(),
        }


def compute_metrics(matrix: ConfusionMatrix, class_names: list[str] | None = None) -> Metrics:
    """IoU_c = TP/(TP+FP+FN), Acc_c = TP/(TP+FN), aAcc = ΣTP/Σlabelled, nan-means, kappa."""
    k = matrix.num_classes
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    counts = matrix.counts.astype(np.float64)
    tp = np.diag(counts[:, :k])
    gt = counts.sum(axis=1)
    pred = counts[:, :k].sum(axis=0)
    total = gt.sum()
    iou = _ratio(tp, gt + pred - tp)
    acc = _ratio(tp, gt)
    expected = float((gt * pred).sum()) / total ** 2 if total else float("nan")
    observed = float(tp.sum()) / total if total else float("nan")
    kappa = (observed - expected) / (1.0 - expected) if total and expected < 1.0 else float("nan")
    f1 = _ratio(2 * tp, gt + pred)
    return Metrics(
        class_names=names, confusion=matrix.counts.copy(), iou=iou, acc=acc,
        precision=_ratio(tp, pred), f1=f1, gt_pixels=gt.astype(np.int64),
        pred_pixels=pred.astype(np.int64), aacc=observed, miou=_nanmean(iou),
        macc=_nanmean(acc), mf1=_nanmean(f1), kappa=kappa, pixels=int(total),
    )
