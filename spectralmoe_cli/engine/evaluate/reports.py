"""Evaluation report writers: JSON, CSV, Markdown, a confusion-matrix PNG and a text table.

JSON and CSV hold fractions at full precision for machines; the Markdown and text tables show
percentages (two decimals, as mmseg prints them) for people. Every file is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...files import csv_text, write_atomic, write_json_atomic, write_text_atomic
from .metrics import Metrics

CLASS_COLUMNS = ("IoU", "Acc", "precision", "recall", "F1")


def _pct(value: float | None) -> str:
    return "nan" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _kappa(value: float | None) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.4f}"


def _rows(metrics: Metrics) -> list[list[str]]:
    return [[str(c["value"]), c["name"], *(_pct(c[k]) for k in CLASS_COLUMNS),
             str(c["gt_pixels"]), str(c["pred_pixels"])]
            for c in metrics.to_dict()["classes"]]


def _header() -> list[str]:
    return ["value", "class", *(f"{k} %" for k in CLASS_COLUMNS), "gt pixels", "pred pixels"]


def summary_line(metrics: Metrics) -> str:
    return (f"mIoU {_pct(metrics.miou)}  mAcc {_pct(metrics.macc)}  aAcc {_pct(metrics.aacc)}  "
            f"mF1 {_pct(metrics.mf1)}  kappa {_kappa(metrics.kappa)}  ({metrics.pixels} pixels)")


def render_table(metrics: Metrics) -> str:
    """A fixed-width per-class table and the summary line, for terminals and logs."""
    rows = [_header(), *_rows(metrics)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 1 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", summary_line(metrics)])


def write_json(metrics: Metrics, path: Path, extra: dict | None = None) -> Path:
    """Metrics (NaN as null) plus any context the caller adds (checkpoint, folder...)."""
    write_json_atomic(path, {**(extra or {}), **metrics.to_dict()}, allow_nan=False)
    return path


def write_csv(metrics: Metrics, path: Path) -> Path:
    """One row per class, fractions (empty cell where undefined)."""
    keys = ("value", "name", *CLASS_COLUMNS, "gt_pixels", "pred_pixels")
    rows = [["" if c[k] is None else c[k] for k in keys] for c in metrics.to_dict()["classes"]]
    write_text_atomic(path, csv_text([keys, *rows]))
    return path


def write_confusion_csv(metrics: Metrics, path: Path) -> Path:
    """Raw counts: rows ground truth, columns predictions, last column 'none' (no valid prediction)."""
    header = ["ground_truth \\ prediction", *metrics.class_names, "none"]
    rows = [[name, *(int(v) for v in row)] for name, row in zip(metrics.class_names, metrics.confusion)]
    write_text_atomic(path, csv_text([header, *rows]))
    return path


def write_markdown(metrics: Metrics, path: Path, title: str = "Evaluation") -> Path:
    lines = [f"# {title}", "", summary_line(metrics), "",
             "| " + " | ".join(_header()) + " |",
             "|" + "|".join("---" if i == 1 else "---:" for i in range(len(_header()))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(metrics)]
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def plot_confusion(metrics: Metrics, path: Path) -> Path:
    """Row-normalised confusion matrix (share of each true class), annotated when it fits."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = metrics.confusion.astype(np.float64)
    if not counts[:, -1].any():
        counts = counts[:, :-1]
    columns = metrics.class_names + (["none"] if counts.shape[1] > len(metrics.class_names) else [])
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    k = len(metrics.class_names)
    side = max(4.0, 0.55 * max(k, len(columns)) + 2.0)
    fig = Figure(figsize=(side, side * 0.9))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(k), metrics.class_names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(f"mIoU {_pct(metrics.miou)} %, aAcc {_pct(metrics.aacc)} %")
    if k <= 25:
        for i in range(k):
            for j in range(len(columns)):
                ax.text(j, i, f"{100 * share[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120))
    return path


def write_report(metrics: Metrics, out_dir: Path, extra: dict | None = None) -> list[Path]:
    """Every report file in ``out_dir``: metrics.json, per_class.csv, confusion.csv/.png, report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        write_json(metrics, out_dir / "metrics.json", extra),
        write_csv(metrics, out_dir / "per_class.csv"),
        write_confusion_csv(metrics, out_dir / "confusion.csv"),
        write_markdown(metrics, out_dir / "report.md"),
        plot_confusion(metrics, out_dir / "confusion.png"),
    ]
