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

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from ...errors import ConfigError, InputDataError
from ...io.pixels import band_nodata, nodata_mask
from ...io.rasters import Georef, block_windows, open_raster, read_physical
from ...io.vectors import VectorFile, burn, read_vector
from ...labels import IGNORE_INDEX
from .classes import ClassSpec
from .pairs import RASTER_SUFFIXES, LabelOptions, find_pairs, name_list

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
        georef, image_nodata = Georef.of(ds), band_nodata(ds.nodatavals, nodata)
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
        shown = name_list([repr(v) for v in unknown])
        raise InputDataError(f"{vector.path}: field {vector.field!r} value(s) {shown} are "
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
        georef, image_nodata = Georef.of(ds), band_nodata(ds.nodatavals, nodata)
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
    unlabelled = nodata_mask(stored[:3], pair.label_nodata).all(axis=0)
    if pair.mode == "values":
        return classes.encode(stored[0], str(pair.label), unlabelled), {}
    if pair.mode == "palette":
        codes = np.asarray(pair.palette, dtype=np.int64)[stored[0]]
        stored = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255])
    elif stored.shape[0] == 4:  # RGBA: transparent pixels carry no label
        transparent = stored[3] == 0
        unlabelled = unlabelled | transparent
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
        label[read_physical(ds, pair.image_nodata, window)[1]] = IGNORE_INDEX
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
