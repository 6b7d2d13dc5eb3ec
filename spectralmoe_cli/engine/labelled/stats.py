"""Per-band mean and standard deviation over the valid pixels of many rasters, streamed.

Each block is summarised (count, mean, sum of squared deviations) in float64 and merged with
Chan et al.'s pairwise update, so memory is one block whatever the folder size and the result
does not suffer from the cancellation of a naive sum of squares. A pixel is valid when every
band is finite and none equals nodata (the file's, or ``--nodata``); the std is the population
std (ddof 0), as numpy's default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...bands import Band, parse_band_list, resolve_all
from ...errors import InputDataError
from ...io.pixels import band_nodata
from ...io.rasters import block_windows, open_raster, read_physical
from ...normalisation import normalisation_problem
from .pairs import RASTER_SUFFIXES, LabelOptions, find_pairs


class RunningMoments:
    """Count, mean and M2 (sum of squared deviations) per band, merged exactly block by block."""

    def __init__(self, bands: int) -> None:
        self.count = 0
        self.mean = np.zeros(bands)
        self.m2 = np.zeros(bands)

    def add(self, values: np.ndarray) -> None:
        """Add valid pixels given as [bands, n]."""
        if values.shape[1] == 0:
            return
        values = values.astype(np.float64)
        mean = values.mean(axis=1)
        self._merge(values.shape[1], mean, ((values - mean[:, None]) ** 2).sum(axis=1))

    def _merge(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * count / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count) if self.count else np.full(self.mean.shape, np.nan)


@dataclass(frozen=True)
class BandStats:
    names: list[str]
    mean: list[float]
    std: list[float]
    valid_pixels: int
    pixels: int
    files: int

    def to_json(self) -> dict:
        return {"bands": [{"name": n, "mean": m, "std": s} for n, m, s in zip(self.names, self.mean, self.std)],
                "valid_pixels": self.valid_pixels, "pixels": self.pixels, "files": self.files}

    def render(self) -> str:
        width = max(len("band"), *(len(n) for n in self.names))
        lines = [f"{'band':<{width}}  {'mean':>14}  {'std':>14}"]
        lines += [f"{n:<{width}}  {m:>14.6g}  {s:>14.6g}" for n, m, s in zip(self.names, self.mean, self.std)]
        lines.append(f"{self.valid_pixels} valid of {self.pixels} pixels in {self.files} file(s)")
        return "\n".join(lines)


def image_files(source: str | Path, options: LabelOptions = LabelOptions()) -> list[Path]:
    """Images of a labelled folder (its images/, or those --image-glob pairs), a pairs CSV, a
    plain folder, or one file."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() != ".csv":
        return [source]
    if source.is_dir() and not (source / "images").is_dir() and options.image_glob is None:
        files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in RASTER_SUFFIXES)
        if not files:
            raise InputDataError(f"{source} holds no rasters ({', '.join(sorted(RASTER_SUFFIXES))})")
        return files
    return [image for image, _ in find_pairs(source, options)]


def compute_stats(files: list[Path], bands: list[Band], nodata: float | None = None,
                  block: int = 512) -> BandStats:
    """Stream every file block by block; InputDataError on a band-count mismatch or no valid pixel."""
    moments = RunningMoments(len(bands))
    pixels = 0
    for path in files:
        with open_raster(path) as ds:
            if ds.count != len(bands):
                raise InputDataError(f"{path} has {ds.count} band(s) but --bands names {len(bands)}")
            missing = band_nodata(ds.nodatavals, nodata)
            for window in block_windows(ds.width, ds.height, block):
                values, invalid = read_physical(ds, missing, window)
                moments.add(values[:, ~invalid])
                pixels += invalid.size
    if moments.count == 0:
        raise InputDataError(f"no valid pixels in {len(files)} file(s): every pixel is nodata or NaN")
    std = moments.std
    if np.any(std == 0):
        flat = [b.name for b, s in zip(bands, std) if s == 0]
        raise InputDataError(f"band(s) {', '.join(flat)} are constant over the valid pixels; "
                             f"they cannot be normalised")
    return BandStats([b.name for b in bands], [float(m) for m in moments.mean],
                     [float(s) for s in std], moments.count, pixels, len(files))


def load_stats(path: str | Path, bands: list[Band]) -> tuple[list[float], list[float]]:
    """Mean and std from a ``spectralmoe stats --json`` file, matched to ``bands`` by name."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        by_name = {b["name"]: (float(b["mean"]), float(b["std"])) for b in data["bands"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputDataError(f"{path} is not a 'spectralmoe stats --json' file ({exc})") from exc
    missing = [b.name for b in bands if b.name not in by_name]
    if missing:
        raise InputDataError(f"{path} has no statistics for band(s) {', '.join(missing)}")
    mean = [by_name[b.name][0] for b in bands]
    std = [by_name[b.name][1] for b in bands]
    if problem := normalisation_problem(mean, std):
        raise InputDataError(f"{path}: {problem}")
    return mean, std


def folder_stats(source: str | Path, band_list: str, nodata: float | None = None,
                 options: LabelOptions = LabelOptions()) -> BandStats:
    """What ``spectralmoe stats`` reports for a source and a ``--bands`` list."""
    return compute_stats(image_files(source, options), resolve_all(parse_band_list(band_list)), nodata)
