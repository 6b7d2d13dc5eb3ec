"""Which image goes with which label: the folder layouts, name patterns and the CSV form.

A labelled source is ``DIR/images/*`` + ``DIR/labels/*`` with matching stems, ``DIR/images/*`` +
one vector file ``DIR/labels.gpkg`` (or .geojson, .shp, .parquet...), files paired by name
patterns (``--image-glob '*_sat.jpg' --label-glob '*_mask.png'``: the text the ``*`` stands for
in an image's name names its label), or a CSV with columns image,label. Every image needs a label
and every label an image; anything else is an input error naming the files.
"""

from __future__ import annotations

import csv
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputDataError, UsageError

RASTER_SUFFIXES = {".tif", ".tiff", ".png", ".jp2", ".vrt", ".img", ".jpg", ".jpeg"}
LAYOUT_HINT = ("a labelled folder holds images/ and labels/ with matching file names "
               "(a.tif + a.tif or a.png), or images/ and one vector file labels.gpkg (.geojson, "
               ".shp, ...), or give a CSV file with columns image,label")
VECTOR_SIDECARS = {".shx", ".dbf", ".prj", ".cpg", ".qpj", ".sbn", ".sbx", ".xml", ".qmd", ".aux"}


@dataclass(frozen=True)
class LabelOptions:
    """How labels are found and read beyond the plain layout: the class field and background of
    vector labels, and name patterns pairing images with labels."""

    field: str = "class"
    background: str | None = None
    image_glob: str | None = None
    label_glob: str | None = None

    def check(self) -> None:
        for flag, pattern in (("--image-glob", self.image_glob), ("--label-glob", self.label_glob)):
            if pattern is not None and (pattern.count("*") != 1 or "/" in pattern):
                raise UsageError(f"{flag} {pattern!r} needs exactly one '*' (the part image and label "
                                 f"names share) and no folder, e.g. '*_sat.jpg' and '*_mask.png'")
        if self.label_glob is not None and self.image_glob is None:
            raise UsageError("--label-glob needs --image-glob")


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


def name_list(stems: list[str]) -> str:
    return ", ".join(stems[:5]) + (f" (+{len(stems) - 5} more)" if len(stems) > 5 else "")


def _vector_file(root: Path) -> Path | None:
    """``root/labels.<ext>``: the one vector file beside images/ (a shapefile's sidecars aside)."""
    found = [p for p in sorted(root.glob("labels.*")) if p.is_file()
             and p.suffix.lower() not in VECTOR_SIDECARS | RASTER_SUFFIXES]
    if len(found) > 1:
        raise InputDataError(f"{root} holds {len(found)} label files ({', '.join(p.name for p in found)}); "
                             f"keep one")
    return found[0] if found else None


def _folder_pairs(root: Path) -> list[tuple[Path, Path]]:
    images_dir, labels_dir = root / "images", root / "labels"
    vector = _vector_file(root)
    if vector is not None and labels_dir.is_dir():
        raise InputDataError(f"{root} holds both labels/ and {vector.name}; keep one")
    if vector is not None and images_dir.is_dir():
        images = _rasters(images_dir)
        if not images:
            raise InputDataError(f"{root} is empty: no rasters in images/")
        return [(images[stem], vector) for stem in sorted(images)]
    for sub in (images_dir, labels_dir):
        if not sub.is_dir():
            raise InputDataError(f"{root} has no {sub.name}/ folder: {LAYOUT_HINT}")
    images, labels = _rasters(images_dir), _rasters(labels_dir)
    if not images and not labels:
        raise InputDataError(f"{root} is empty: no rasters in images/ or labels/")
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise InputDataError(f"{len(unlabelled)} image(s) in {images_dir} have no label in "
                             f"{labels_dir}: {name_list(unlabelled)}")
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise InputDataError(f"{len(orphans)} label(s) in {labels_dir} have no image in "
                             f"{images_dir}: {name_list(orphans)}")
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


def _matching(folder: Path, pattern: str) -> dict[str, Path]:
    """Files of ``folder`` matching ``pattern`` (one '*'), keyed by what the '*' stands for."""
    head, tail = pattern.split("*")
    return {p.name[len(head):len(p.name) - len(tail)]: p for p in sorted(folder.iterdir())
            if p.is_file() and fnmatch.fnmatchcase(p.name, pattern)}


def _glob_pairs(root: Path, options: LabelOptions) -> list[tuple[Path, Path]]:
    """Pairs by name pattern: the text the image pattern's '*' matches names the label. Files are
    looked for in images/ and labels/ where those exist, else in the folder itself."""
    images_dir = root / "images" if (root / "images").is_dir() else root
    images = _matching(images_dir, options.image_glob)
    if not images:
        raise InputDataError(f"no file in {images_dir} matches --image-glob {options.image_glob!r}")
    if options.label_glob is None:
        vector = _vector_file(root)
        if vector is None:
            raise UsageError("--image-glob needs --label-glob (or a vector file labels.gpkg beside the images)")
        return [(images[key], vector) for key in sorted(images)]
    labels_dir = root / "labels" if (root / "labels").is_dir() else root
    labels = _matching(labels_dir, options.label_glob)
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise InputDataError(f"{len(unlabelled)} image(s) in {images_dir} have no label "
                             f"{options.label_glob!r} in {labels_dir}: "
                             f"{name_list([images[k].name for k in unlabelled])}")
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise InputDataError(f"{len(orphans)} label(s) in {labels_dir} have no image "
                             f"{options.image_glob!r} in {images_dir}: "
                             f"{name_list([labels[k].name for k in orphans])}")
    return [(images[key], labels[key]) for key in sorted(images)]


def find_pairs(source: str | Path, options: LabelOptions = LabelOptions()) -> list[tuple[Path, Path]]:
    """(image, label) paths of a labelled folder or pairs CSV, in a stable order."""
    options.check()
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _csv_pairs(source)
    if not source.is_dir():
        raise InputDataError(f"{source} does not exist or is not a folder: {LAYOUT_HINT}")
    return _glob_pairs(source, options) if options.image_glob else _folder_pairs(source)
