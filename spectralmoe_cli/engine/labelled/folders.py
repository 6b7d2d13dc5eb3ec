"""Labelled folders: ``DIR/images/*`` + ``DIR/labels/*`` with matching stems, ``DIR/images/*`` +
one vector file ``DIR/labels.gpkg`` (or .geojson, .shp, .parquet...), files paired by name
patterns (``--image-glob '*_sat.jpg' --label-glob '*_mask.png'``), or a CSV of pairs.

Everything is checked once, up front, before any training or evaluation starts: every image
has a label and vice versa, band counts match ``--bands``, image and label have the same size
and (where both are georeferenced) the same grid, and every label value or colour is a known
class. A label raster is read by value (one band) or by colour (three bands, RGBA, or a palette
when the class file gives colours); vector labels are burnt on each image's grid.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from ...errors import ConfigError, InputDataError, UsageError
from ...io.rasters import Georef, block_windows, file_nodata, invalid_pixels, open_raster
from ...io.vectors import VectorFile, burn, read_vector
from .classes import IGNORE_INDEX, ClassSpec

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


@dataclass(frozen=True)
class Polygons:
    """Vector labels of one image: polygons in the image's CRS with their class numbers."""

    geometries: np.ndarray = field(compare=False)
    numbers: np.ndarray = field(compare=False)
    fill: int


@dataclass(frozen=True)
class Pair:
    """One labelled image and what the checks learned about it."""

    image: Path
    label: Path
    georef: Georef
    image_nodata: list[float | None]  # per band
    label_nodata: float | None
    mode: str = "values"  # values | rgb | palette | vector: how class numbers are read
    palette: tuple[int, ...] | None = None  # 0xRRGGBB of each palette index (palette mode)
    polygons: Polygons | None = None  # vector mode

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
                             f"{_names([images[k].name for k in unlabelled])}")
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise InputDataError(f"{len(orphans)} label(s) in {labels_dir} have no image "
                             f"{options.image_glob!r} in {images_dir}: "
                             f"{_names([labels[k].name for k in orphans])}")
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


def _raster_mode(ds, label: Path, classes: ClassSpec) -> tuple[str, tuple[int, ...] | None]:
    """How a label raster's pixels become classes: by value, by colour, or by palette colour."""
    if ds.dtypes[0].startswith("complex"):
        raise InputDataError(f"{label}: complex label values")
    if ds.count in (3, 4):
        if ds.dtypes[0] != "uint8":
            raise InputDataError(f"{label} has {ds.count} bands of {ds.dtypes[0]}; an RGB-coded "
                                 f"label has 8-bit colours")
        if not classes.has_rgb:
            raise InputDataError(f"{label} is an RGB-coded label ({ds.count} bands) but the class file "
                                 f"{classes.source} gives no colours; add rgb = \"#rrggbb\" to each class")
        return "rgb", None
    if ds.count != 1:
        raise InputDataError(f"{label} has {ds.count} bands; a label raster has one (class values) "
                             f"or three (RGB colours)")
    if classes.has_rgb and ds.colorinterp[0] == ColorInterp.palette:
        table = ds.colormap(1)
        return "palette", tuple((r << 16) | (g << 8) | b for r, g, b, _ in
                                (table.get(i, (0, 0, 0, 0)) for i in range(256)))
    if not classes.has_values:
        raise InputDataError(f"{label} has one band of values but the class file {classes.source} "
                             f"matches colours only; give each class a value too")
    return "values", None


def _inspect(image: Path, label: Path, band_count: int, nodata: float | None,
             classes: ClassSpec) -> Pair:
    with open_raster(image) as ds:
        if ds.count != band_count:
            raise InputDataError(f"{image} has {ds.count} band(s) but --bands names {band_count}")
        georef, image_nodata = Georef.of(ds), file_nodata(ds, nodata)
    with open_raster(label) as ds:
        mode, palette = _raster_mode(ds, label, classes)
        label_georef, label_nodata = Georef.of(ds), ds.nodata
    if (label_georef.width, label_georef.height) != (georef.width, georef.height):
        raise InputDataError(f"{label} is {label_georef.width}x{label_georef.height} but its image "
                             f"{image} is {georef.width}x{georef.height}")
    if not georef.same_place(label_georef):
        raise InputDataError(f"{label} and its image {image} have different georeferences "
                             f"({label_georef.crs} vs {georef.crs}, or another pixel grid)")
    return Pair(image, label, georef, image_nodata, label_nodata, mode, palette)


def _class_numbers(vector: VectorFile, classes: ClassSpec) -> dict[str, int]:
    """Each distinct field value's class number (255: ignored): a class name, value or colour."""
    numbers, unknown = {}, []
    for text in sorted(set(vector.values)):
        try:
            number = classes.number_of(text)
        except KeyError:
            unknown.append(text)
            continue
        numbers[text] = IGNORE_INDEX if number is None else number
    if unknown:
        raise InputDataError(f"{vector.path}: field {vector.field!r} value(s) {_names([repr(v) for v in unknown])} are "
                             f"not in the class file {classes.source} (classes "
                             f"{', '.join(classes.names)}); use class names, values or colours")
    return numbers


def _background(classes: ClassSpec, options: LabelOptions) -> int:
    if options.background is None:
        return IGNORE_INDEX
    try:
        number = classes.number_of(options.background)
    except KeyError:
        number = None
    if number is None:
        raise ConfigError(f"--background {options.background!r} is no class of {classes.source} "
                          f"(classes {', '.join(classes.names)})")
    return number


def _inspect_vector(image: Path, vector: VectorFile, band_count: int, nodata: float | None,
                    numbers: dict[str, int], fill: int) -> Pair:
    with open_raster(image) as ds:
        if ds.count != band_count:
            raise InputDataError(f"{image} has {ds.count} band(s) but --bands names {band_count}")
        georef, image_nodata = Georef.of(ds), file_nodata(ds, nodata)
        bounds = tuple(ds.bounds)
    if georef.crs is None or georef.transform is None:
        raise InputDataError(f"{image} has no CRS; vector labels ({vector.path.name}) need "
                             f"georeferenced images")
    mine = vector.within(georef.crs, bounds)
    polygons = Polygons(mine.geometries, np.array([numbers[v] for v in mine.values], dtype=np.uint8), fill)
    return Pair(image, vector.path, georef, image_nodata, None, "vector", None, polygons)


def _is_vector(label: Path) -> bool:
    return label.suffix.lower() not in RASTER_SUFFIXES


def _label_codes(pair: Pair, classes: ClassSpec, window: Window | None) -> tuple[np.ndarray, dict[int, int]]:
    """Class numbers of a window, and the pixel counts of colours no class matches."""
    if pair.mode == "vector":
        georef = pair.georef
        window = window or Window(0, 0, georef.width, georef.height)
        return burn(pair.polygons.geometries, pair.polygons.numbers, Affine(*georef.transform),
                    window, pair.polygons.fill), {}
    with open_raster(pair.label) as ds:
        stored = ds.read(window=window)
    unlabelled = None
    if pair.label_nodata is not None and not np.isnan(pair.label_nodata):
        unlabelled = (stored[:3] == pair.label_nodata).all(axis=0)
    if pair.mode == "values":
        return classes.encode(stored[0], str(pair.label), unlabelled), {}
    if pair.mode == "palette":
        codes = np.asarray(pair.palette, dtype=np.int64)[stored[0]]
        stored = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255])
    elif stored.shape[0] == 4:  # RGBA: transparent pixels carry no label
        transparent = stored[3] == 0
        unlabelled = transparent if unlabelled is None else unlabelled | transparent
    return classes.encode_rgb(stored[:3], str(pair.label), unlabelled)


def read_label(pair: Pair, classes: ClassSpec, window: Window | None = None) -> np.ndarray:
    """Class numbers (uint8, 255 ignore) of a window (or the whole label)."""
    numbers, unknown = _label_codes(pair, classes, window)
    if unknown:
        raise InputDataError(classes.unknown_colours_message(unknown, str(pair.label)))
    return numbers


def check_labels(pair: Pair, classes: ClassSpec, block: int = 1024) -> None:
    """Every label value or colour is a class or ignored (read block by block; unmatched colours
    are counted over the whole file before the error names them)."""
    if pair.mode == "vector":
        return  # every field value was matched to a class when the file was opened
    unknown: dict[int, int] = {}
    for window in block_windows(pair.georef.width, pair.georef.height, block):
        for code, count in _label_codes(pair, classes, window)[1].items():
            unknown[code] = unknown.get(code, 0) + count
    if unknown:
        raise InputDataError(classes.unknown_colours_message(unknown, str(pair.label)))


def open_labelled(source: str | Path, band_count: int, classes: ClassSpec,
                  nodata: float | None = None, check_values: bool = True,
                  options: LabelOptions = LabelOptions()) -> list[Pair]:
    """Find and check every pair of a labelled folder or CSV; raise InputDataError on the first bad one."""
    fill = _background(classes, options)
    vectors: dict[Path, tuple[VectorFile, dict[str, int]]] = {}
    pairs = []
    for image, label in find_pairs(source, options):
        if not _is_vector(label):
            pairs.append(_inspect(image, label, band_count, nodata, classes))
            continue
        if label not in vectors:
            vector = read_vector(label, options.field)
            vectors[label] = vector, _class_numbers(vector, classes)
        vector, numbers = vectors[label]
        pairs.append(_inspect_vector(image, vector, band_count, nodata, numbers, fill))
    if check_values:
        for pair in pairs:
            check_labels(pair, classes)
    return pairs


def label_window(pair: Pair, classes: ClassSpec, window: Window) -> np.ndarray:
    """Class numbers of a window, 255 where unlabelled or where the input is invalid (those
    pixels are never scored, as they are never trained on)."""
    label = read_label(pair, classes, window)
    with open_raster(pair.image) as ds:
        label[invalid_pixels(ds.read(window=window), pair.image_nodata)] = IGNORE_INDEX
    return label


def iter_labelled(source: str | Path, classes: ClassSpec, band_count: int,
                  nodata: float | None = None,
                  options: LabelOptions = LabelOptions()) -> Iterator[LabelledImage]:
    """Each image path with its whole label as class numbers (see ``label_window``); for small
    images. Evaluation streams windows instead."""
    for pair in open_labelled(source, band_count, classes, nodata, check_values=False, options=options):
        whole = Window(0, 0, pair.georef.width, pair.georef.height)
        yield LabelledImage(pair.image, label_window(pair, classes, whole), pair.georef)


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
