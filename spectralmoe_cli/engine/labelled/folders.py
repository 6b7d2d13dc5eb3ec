"""Labelled folders: ``DIR/images/*`` + ``DIR/labels/*`` with matching stems, or a CSV of pairs.

Everything is checked once, up front, before any training or evaluation starts: every image
has a label and vice versa, band counts match ``--bands``, image and label have the same size
and (where both are georeferenced) the same grid, and every label value is a known class.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from rasterio.windows import Window

from ...errors import InputDataError
from ...io.pixels import band_nodata, nodata_mask
from ...io.rasters import Georef, block_windows, open_raster, read_physical
from ...labels import IGNORE_INDEX
from .classes import ClassSpec

RASTER_SUFFIXES = {".tif", ".tiff", ".png", ".jp2", ".vrt", ".img", ".jpg", ".jpeg"}
LAYOUT_HINT = ("a labelled folder holds images/ and labels/ with matching file names "
               "(a.tif + a.tif or a.png), or give a CSV file with columns image,label")


@dataclass(frozen=True)
class Pair:
    """One labelled image and what the checks learned about it."""

    image: Path
    label: Path
    georef: Georef
    image_nodata: list[float | None]  # per band
    label_nodata: float | None

    @property
    def name(self) -> str:
        return self.image.stem


@dataclass(frozen=True)
class LabelledImage:
    """What evaluation needs from the label side: the image to predict and its class numbers."""

    image: Path
    label: np.ndarray
    georef: Georef


def _rasters(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in RASTER_SUFFIXES:
            continue
        if path.stem in found:
            raise InputDataError(f"{folder}: two files named {path.stem!r} ({found[path.stem].name}, "
                                 f"{path.name}); keep one per name")
        found[path.stem] = path
    return found


def _names(stems: list[str]) -> str:
    return ", ".join(stems[:5]) + (f" (+{len(stems) - 5} more)" if len(stems) > 5 else "")


def _folder_pairs(root: Path) -> list[tuple[Path, Path]]:
    images_dir, labels_dir = root / "images", root / "labels"
    for sub in (images_dir, labels_dir):
        if not sub.is_dir():
            raise InputDataError(f"{root} has no {sub.name}/ folder: {LAYOUT_HINT}")
    images, labels = _rasters(images_dir), _rasters(labels_dir)
    if not images and not labels:
        raise InputDataError(f"{root} is empty: no rasters in images/ or labels/")
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise InputDataError(f"{len(unlabelled)} image(s) in {images_dir} have no label in "
                             f"{labels_dir}: {_names(unlabelled)}")
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise InputDataError(f"{len(orphans)} label(s) in {labels_dir} have no image in "
                             f"{images_dir}: {_names(orphans)}")
    return [(images[stem], labels[stem]) for stem in sorted(images)]


def _csv_pairs(table: Path) -> list[tuple[Path, Path]]:
    with table.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"image", "label"} <= set(reader.fieldnames):
            raise InputDataError(f"{table}: a pairs CSV needs a header with columns image,label")
        rows = [(row["image"], row["label"]) for row in reader]
    if not rows:
        raise InputDataError(f"{table} lists no image,label pairs")
    pairs = []
    for number, (image, label) in enumerate(rows, start=2):
        if not image or not label:
            raise InputDataError(f"{table} line {number}: an empty image or label path")
        paths = tuple(p if p.is_absolute() else table.parent / p for p in (Path(image), Path(label)))
        for path in paths:
            if not path.is_file():
                raise InputDataError(f"{table} line {number}: {path} does not exist")
        pairs.append(paths)
    return pairs


def find_pairs(source: str | Path) -> list[tuple[Path, Path]]:
    """(image, label) paths of a labelled folder or pairs CSV, in a stable order."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _csv_pairs(source)
    if not source.is_dir():
        raise InputDataError(f"{source} does not exist or is not a folder: {LAYOUT_HINT}")
    return _folder_pairs(source)


def _inspect(image: Path, label: Path, band_count: int, nodata: float | None) -> Pair:
    with open_raster(image) as ds:
        if ds.count != band_count:
            raise InputDataError(f"{image} has {ds.count} band(s) but --bands names {band_count}")
        georef, image_nodata = Georef.of(ds), band_nodata(ds.nodatavals, nodata)
    with open_raster(label) as ds:
        if ds.count != 1:
            raise InputDataError(f"{label} has {ds.count} bands; a label raster has one")
        if ds.dtypes[0].startswith("complex"):
            raise InputDataError(f"{label}: complex label values")
        label_georef, label_nodata = Georef.of(ds), ds.nodata
    if (label_georef.width, label_georef.height) != (georef.width, georef.height):
        raise InputDataError(f"{label} is {label_georef.width}x{label_georef.height} but its image "
                             f"{image} is {georef.width}x{georef.height}")
    if not georef.same_place(label_georef):
        raise InputDataError(f"{label} and its image {image} have different georeferences "
                             f"({label_georef.crs} vs {georef.crs}, or another pixel grid)")
    return Pair(image, label, georef, image_nodata, label_nodata)


def read_label(pair: Pair, classes: ClassSpec, window: Window | None = None) -> np.ndarray:
    """Class numbers (uint8, 255 ignore) of a window (or the whole label)."""
    with open_raster(pair.label) as ds:
        stored = ds.read(1, window=window)
    return classes.encode(stored, str(pair.label), nodata_mask(stored, pair.label_nodata))


def check_labels(pair: Pair, classes: ClassSpec, block: int = 1024) -> None:
    """Every label value is a class or ignored (read block by block)."""
    for window in block_windows(pair.georef.width, pair.georef.height, block):
        read_label(pair, classes, window)


def open_labelled(source: str | Path, band_count: int, classes: ClassSpec,
                  nodata: float | None = None, check_values: bool = True) -> list[Pair]:
    """Find and check every pair of a labelled folder or CSV; raise InputDataError on the first bad one."""
    pairs = [_inspect(image, label, band_count, nodata) for image, label in find_pairs(source)]
    if check_values:
        for pair in pairs:
            check_labels(pair, classes)
    return pairs


def invalid_mask(pair: Pair, block: int = 1024) -> np.ndarray:
    """[H, W] pixels whose input is unusable (any band nodata or non-finite), read in blocks."""
    mask = np.zeros((pair.georef.height, pair.georef.width), dtype=bool)
    with open_raster(pair.image) as ds:
        for window in block_windows(ds.width, ds.height, block):
            rows, cols = window.toslices()
            mask[rows, cols] = read_physical(ds, pair.image_nodata, window)[1]
    return mask


def iter_labelled(source: str | Path, classes: ClassSpec, band_count: int,
                  nodata: float | None = None) -> Iterator[LabelledImage]:
    """For evaluation: each image path with its class numbers, 255 where unlabelled or where the
    input is invalid (those pixels are never scored, as they are never trained on)."""
    for pair in open_labelled(source, band_count, classes, nodata, check_values=False):
        label = read_label(pair, classes)
        label[invalid_mask(pair)] = IGNORE_INDEX
        yield LabelledImage(pair.image, label, pair.georef)


def manifest(pairs: list[Pair], root: Path | None = None) -> dict:
    """File list with SHA-256 of every file, and one digest over all: which data made a model."""
    files, overall = [], hashlib.sha256()
    for pair in pairs:
        entry = {}
        for key, path in (("image", pair.image), ("label", pair.label)):
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            shown = path.relative_to(root) if root is not None and path.is_relative_to(root) else path
            entry[key], entry[f"{key}_sha256"] = str(shown), digest.hexdigest()
            overall.update(f"{entry[key]}\0{digest.hexdigest()}\n".encode())
        files.append(entry)
    return {"files": files, "count": len(files), "sha256": overall.hexdigest()}
