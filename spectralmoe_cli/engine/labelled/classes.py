"""Class files: what each label value or colour means, and how stored labels become class numbers.

A class file is TOML or YAML::

    ignore = [255, "#000000"]       # optional: values and colours never scored (255 always is)
    [[classes]]
    value = 0                       # a stored value, or several: value = [2, 3]
    rgb = "#ffffff"                 # for RGB-coded masks: a colour, or several: ["#ffffff", "#fefefe"]
    name = "impervious_surface"
    color = "#ffffff"               # the display colour of maps and reports

A class needs ``value``, ``rgb`` or both: single-band labels are matched by value, 3-band (RGB,
RGBA with alpha 0 unlabelled) and palette label images by colour when the file gives colours.
Values are read *after* ``--reduce-zero-label`` (the benchmarks' convention: 0 -> ignore,
k -> k-1, 255 stays ignore), so an mmseg class list works unchanged; colours are never reduced.
Classes are numbered 0..K-1 in value order (a class with several values by its smallest), or in
file order when some class has no value; checkpoints and predicted maps use those numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ...checkpoint import ClassInfo
from ...errors import ConfigError, InputDataError, validation_message
from ...labels import IGNORE_INDEX
from ...table_file import read_table

HEX_COLOUR = r"^#[0-9a-fA-F]{6}$"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int | list[int] | None = None
    rgb: str | list[str] | None = None
    name: str = Field(min_length=1)
    color: str = Field(pattern=HEX_COLOUR)

    @model_validator(mode="after")
    def _matched_somehow(self) -> "_Entry":
        if self.value is None and self.rgb is None:
            raise ValueError("a class needs a value (or values), an rgb colour (or colours), or both")
        for colour in _as_list(self.rgb):
            _check_hex(colour)
        if _as_list(self.value) == [] and self.value is not None:
            raise ValueError("value = [] matches nothing")
        return self


class _ClassFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    classes: list[_Entry] = Field(min_length=1, max_length=255)
    ignore: int | str | list[int | str] = []


def _as_list(item) -> list:
    return [] if item is None else list(item) if isinstance(item, list) else [item]


def _check_hex(colour: str) -> str:
    if not (isinstance(colour, str) and len(colour) == 7 and colour[0] == "#"
            and all(c in "0123456789abcdefABCDEF" for c in colour[1:])):
        raise ValueError(f"{colour!r} is not a colour like '#3c1098'")
    return colour.lower()


def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """[3, H, W] 8-bit colours as one integer each (0xRRGGBB), the key colours are matched by."""
    rgb = rgb.astype(np.int64)
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


def _code(colour: str) -> int:
    return int(colour[1:], 16)


def _hex(code: int) -> str:
    return f"#{int(code):06x}"


def _lookup(values: np.ndarray, table: dict[int, int], skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class numbers of integer keys through ``table`` (key -> number, 255 for ignored keys), and
    the mask of keys the table does not know (outside ``skip``)."""
    known = np.array(sorted(table), dtype=np.int64)
    numbers = np.array([table[int(k)] for k in known], dtype=np.uint8)
    slot = np.clip(np.searchsorted(known, values), 0, len(known) - 1)
    unknown = (known[slot] != values) & ~skip
    return np.where(skip | unknown, IGNORE_INDEX, numbers[slot]).astype(np.uint8), unknown


@dataclass(frozen=True)
class ClassSpec:
    """Classes in number order with the stored values and colours each matches, what is ignored,
    and whether values are zero-reduced first."""

    values: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]
    colors: tuple[str, ...]
    ignore: tuple[int, ...]
    reduce_zero_label: bool
    source: str
    rgbs: tuple[tuple[str, ...], ...] = ()
    ignore_rgb: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def has_rgb(self) -> bool:
        """Whether labels can be matched by colour (some class names an rgb)."""
        return any(self.rgbs)

    @property
    def has_values(self) -> bool:
        return any(self.values)

    def infos(self) -> list[ClassInfo]:
        """The checkpoint's classes: numbered 0..K-1."""
        return [ClassInfo(value=i, name=n, color=c) for i, (n, c) in enumerate(zip(self.names, self.colors))]

    @classmethod
    def from_json(cls, data: dict, source: str) -> "ClassSpec":
        """The spec a training run stored in its checkpoint's provenance (``labels``)."""
        names = tuple(data["names"])
        rgbs = tuple(tuple(_as_list(c)) for c in data.get("rgb", [None] * len(names)))
        return cls(values=tuple(tuple(_as_list(v)) for v in data["values"]), names=names,
                   colors=tuple(data["colors"]), ignore=tuple(data["ignore"]),
                   reduce_zero_label=bool(data["reduce_zero_label"]), source=source,
                   rgbs=rgbs, ignore_rgb=tuple(data.get("ignore_rgb", [])))

    def renumbering(self) -> str | None:
        """``stored label -> class number`` pairs when they differ (values 10, 20 become classes
        0, 1; merged values 2, 3 both class 1; or labels shifted by --reduce-zero-label); None when
        every label is its number."""
        shift = 1 if self.reduce_zero_label else 0
        pairs = [(value + shift, number) for number, values in enumerate(self.values) for value in values]
        if all(stored == number for stored, number in pairs):  # also: classes matched by colour only
            return None
        return ", ".join(f"{stored}->{number}" for stored, number in pairs)

    def to_json(self) -> dict:
        """JSON of the spec; a file with one integer value per class gives what it always gave."""
        def one_or_list(items: tuple) -> object:
            return None if not items else items[0] if len(items) == 1 else list(items)

        data = {"values": [one_or_list(v) for v in self.values], "names": list(self.names),
                "colors": list(self.colors), "ignore": list(self.ignore),
                "reduce_zero_label": self.reduce_zero_label}
        if self.has_rgb or self.ignore_rgb:
            data["rgb"] = [one_or_list(c) for c in self.rgbs]
            data["ignore_rgb"] = list(self.ignore_rgb)
        return data

    def number_of(self, text: str) -> int | None:
        """The class number a name, a class value or a colour stands for (None: ignored)."""
        if text in self.names:
            return self.names.index(text)
        if text.lower() in self.ignore_rgb:
            return None
        for number, colours in enumerate(self.rgbs):
            if text.lower() in colours:
                return number
        try:
            value = int(float(text))
        except ValueError:
            raise KeyError(text) from None
        if value != float(text):
            raise KeyError(text)
        numbers, unknown = self._match_values(np.array([value], dtype=np.int64), np.zeros(1, bool))
        if unknown[0]:
            raise KeyError(text)
        return None if numbers[0] == IGNORE_INDEX else int(numbers[0])

    def encode(self, stored: np.ndarray, where: str, unlabelled: np.ndarray | None = None) -> np.ndarray:
        """Class numbers (uint8, 255 = ignore) for stored label values; InputDataError on others.

        ``unlabelled`` marks pixels that carry no label whatever their value (label nodata).
        """
        skip = np.zeros(stored.shape, dtype=bool) if unlabelled is None else unlabelled.copy()
        if stored.dtype.kind == "f":
            skip |= ~np.isfinite(stored)
            if np.any(stored[~skip] != np.round(stored[~skip])):
                raise InputDataError(f"{where}: label values must be whole numbers")
            stored = np.where(skip, 0, stored)
        numbers, unknown = self._match_values(stored.astype(np.int64), skip)
        if unknown.any():
            raise InputDataError(self._unknown_message(stored[unknown], where))
        return numbers

    def _match_values(self, values: np.ndarray, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.reduce_zero_label:
            values = np.where((values == 0) | (values == IGNORE_INDEX), IGNORE_INDEX, values - 1)
        table = {v: IGNORE_INDEX for v in (*self.ignore, IGNORE_INDEX)}
        table.update({v: number for number, vs in enumerate(self.values) for v in vs})
        return _lookup(values, table, skip)

    def encode_rgb(self, rgb: np.ndarray, where: str,
                   unlabelled: np.ndarray | None = None) -> tuple[np.ndarray, dict[int, int]]:
        """Class numbers (uint8, 255 = ignore) of [3, H, W] 8-bit colours, and the pixel count of
        each colour no class matches (0xRRGGBB -> pixels) for the caller to report."""
        skip = np.zeros(rgb.shape[1:], dtype=bool) if unlabelled is None else unlabelled
        table = {_code(c): IGNORE_INDEX for c in self.ignore_rgb}
        table.update({_code(c): number for number, cs in enumerate(self.rgbs) for c in cs})
        if not table:
            raise InputDataError(f"{where} is an RGB-coded label but the class file {self.source} "
                                 f"gives no colours; add rgb = \"#rrggbb\" to each class")
        codes = colour_codes(rgb)
        numbers, unknown = _lookup(codes, table, skip)
        bad, counts = np.unique(codes[unknown], return_counts=True)
        return numbers, dict(zip(bad.tolist(), counts.tolist()))

    def unknown_colours_message(self, counts: dict[int, int], where: str) -> str:
        """One line naming up to five unmatched colours (most pixels first) and their counts."""
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{_hex(c)} ({n} px)" for c, n in ranked[:5])
        more = f" (+{len(ranked) - 5} more colours)" if len(ranked) > 5 else ""
        return (f"{where}: colour(s) {shown}{more} match no class of {self.source} and are not "
                f"ignored; add them to a class's rgb or to 'ignore'")

    def _unknown_message(self, stored: np.ndarray, where: str) -> str:
        bad = np.unique(stored)
        shown = ", ".join(str(int(v)) for v in bad[:10]) + (f" (+{len(bad) - 10} more)" if len(bad) > 10 else "")
        reduced = " before --reduce-zero-label" if self.reduce_zero_label else ""
        classes = ", ".join("/".join(map(str, v)) for v in self.values if v)
        return (f"{where}: label value(s) {shown}{reduced} are not in the class file {self.source} "
                f"(classes {classes}; ignore {', '.join(map(str, self.ignore))}); "
                f"add them as classes or to 'ignore'")


def _duplicates(kind: str, items: list, path: Path) -> None:
    dupes = sorted({str(x) for x in items if items.count(x) > 1})
    if dupes:
        raise ConfigError(f"class file {path}: duplicate class {kind}(s) {', '.join(dupes)}")


def load_classes(path: str | Path, reduce_zero_label: bool = False) -> ClassSpec:
    """Read and check a class file: unique values, colours and names; nothing both a class and ignored."""
    path = Path(path)
    try:
        parsed = _ClassFile.model_validate(read_table(path, "class file"))
        ignored = _as_list(parsed.ignore)
        ignore_rgb = sorted({_check_hex(i) for i in ignored if isinstance(i, str)})
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, f"class file {path}")) from exc
    except ValueError as exc:
        raise ConfigError(f"class file {path}: ignore: {exc}") from exc
    entries = list(parsed.classes)
    if all(e.value is not None for e in entries):
        entries.sort(key=lambda e: min(_as_list(e.value)))
    values = [tuple(sorted(_as_list(e.value))) for e in entries]
    rgbs = [tuple(c.lower() for c in _as_list(e.rgb)) for e in entries]
    _duplicates("value", [v for vs in values for v in vs], path)
    _duplicates("rgb colour", [c for cs in rgbs for c in cs], path)
    _duplicates("name", [e.name for e in entries], path)
    ignore = sorted({*(i for i in ignored if isinstance(i, int)), IGNORE_INDEX})
    clash = sorted({v for vs in values for v in vs} & set(ignore))
    clash += sorted({c for cs in rgbs for c in cs} & set(ignore_rgb))
    if clash:
        raise ConfigError(f"class file {path}: value(s) {', '.join(map(str, clash))} are both a class "
                          f"and ignored (255 is always the ignore value)")
    return ClassSpec(values=tuple(values), names=tuple(e.name for e in entries),
                     colors=tuple(e.color.lower() for e in entries), ignore=tuple(ignore),
                     reduce_zero_label=reduce_zero_label, source=str(path), rgbs=tuple(rgbs),
                     ignore_rgb=tuple(ignore_rgb))
