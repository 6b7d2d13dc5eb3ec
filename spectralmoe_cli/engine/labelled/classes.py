"""Class files: what each label value means, and how stored label values become class numbers.

A class file is TOML or YAML::

    ignore = [255]          # optional: values never scored (255 always is)
    [[classes]]
    value = 0
    name = "impervious_surface"
    color = "#ffffff"

Values are read *after* ``--reduce-zero-label`` (the benchmarks' convention: 0 -> ignore,
k -> k-1, 255 stays ignore), so an mmseg class list works unchanged. Classes are numbered
0..K-1 in value order; checkpoints and predicted maps use those numbers.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...checkpoint import ClassInfo
from ...errors import ConfigError, InputDataError, validation_message
from ...labels import IGNORE_INDEX


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int
    name: str = Field(min_length=1)
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class _ClassFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    classes: list[_Entry] = Field(min_length=1, max_length=255)
    ignore: int | list[int] = []


@dataclass(frozen=True)
class ClassSpec:
    """Classes in number order, the ignored values, and whether labels are zero-reduced first."""

    values: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[str, ...]
    ignore: tuple[int, ...]
    reduce_zero_label: bool
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.values)

    def infos(self) -> list[ClassInfo]:
        """The checkpoint's classes: numbered 0..K-1."""
        return [ClassInfo(value=i, name=n, color=c) for i, (n, c) in enumerate(zip(self.names, self.colors))]

    @classmethod
    def from_json(cls, data: dict, source: str) -> "ClassSpec":
        """The spec a training run stored in its checkpoint's provenance (``labels``)."""
        return cls(values=tuple(data["values"]), names=tuple(data["names"]),
                   colors=tuple(data["colors"]), ignore=tuple(data["ignore"]),
                   reduce_zero_label=bool(data["reduce_zero_label"]), source=source)

    def renumbering(self) -> str | None:
        """``stored label -> class number`` pairs when they differ (values 10, 20 become classes
        0, 1; or labels shifted by --reduce-zero-label); None when every label is its number."""
        shift = 1 if self.reduce_zero_label else 0
        pairs = [(value + shift, number) for number, value in enumerate(self.values)]
        if all(stored == number for stored, number in pairs):
            return None
        return ", ".join(f"{stored}->{number}" for stored, number in pairs)

    def to_json(self) -> dict:
        return {"values": list(self.values), "names": list(self.names), "colors": list(self.colors),
                "ignore": list(self.ignore), "reduce_zero_label": self.reduce_zero_label}

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
        values = stored.astype(np.int64)
        if self.reduce_zero_label:
            values = np.where((values == 0) | (values == IGNORE_INDEX), IGNORE_INDEX, values - 1)
        known = np.array(sorted({*self.values, *self.ignore, IGNORE_INDEX}), dtype=np.int64)
        number = {v: i for i, v in enumerate(self.values)}
        table = np.array([number.get(int(v), IGNORE_INDEX) for v in known], dtype=np.uint8)
        slot = np.clip(np.searchsorted(known, values), 0, len(known) - 1)
        unknown = (known[slot] != values) & ~skip
        if unknown.any():
            raise InputDataError(self._unknown_message(stored[unknown], where))
        return np.where(skip, IGNORE_INDEX, table[slot]).astype(np.uint8)

    def _unknown_message(self, stored: np.ndarray, where: str) -> str:
        bad = np.unique(stored)
        shown = ", ".join(str(int(v)) for v in bad[:10]) + (f" (+{len(bad) - 10} more)" if len(bad) > 10 else "")
        reduced = " before --reduce-zero-label" if self.reduce_zero_label else ""
        return (f"{where}: label value(s) {shown}{reduced} are not in the class file {self.source} "
                f"(classes {', '.join(map(str, self.values))}; ignore {', '.join(map(str, self.ignore))}); "
                f"add them as classes or to 'ignore'")


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read class file {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
            return data if isinstance(data, dict) else {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"class file {path} is not valid {path.suffix[1:].upper()}: "
                          f"{str(exc).splitlines()[0]}") from exc
    raise ConfigError(f"class file {path} must be .toml, .yaml or .yml")


def load_classes(path: str | Path, reduce_zero_label: bool = False) -> ClassSpec:
    """Read and check a class file: unique values and names, no value both a class and ignored."""
    path = Path(path)
    try:
        parsed = _ClassFile.model_validate(_read(path))
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, f"class file {path}")) from exc
    entries = sorted(parsed.classes, key=lambda e: e.value)
    for kind, items in (("value", [e.value for e in entries]), ("name", [e.name for e in entries])):
        dupes = sorted({str(x) for x in items if items.count(x) > 1})
        if dupes:
            raise ConfigError(f"class file {path}: duplicate class {kind}(s) {', '.join(dupes)}")
    ignore = parsed.ignore if isinstance(parsed.ignore, list) else [parsed.ignore]
    ignore = sorted({*ignore, IGNORE_INDEX})
    clash = sorted({e.value for e in entries} & set(ignore))
    if clash:
        raise ConfigError(f"class file {path}: value(s) {', '.join(map(str, clash))} are both a class "
                          f"and ignored (255 is always the ignore value)")
    return ClassSpec(values=tuple(e.value for e in entries), names=tuple(e.name for e in entries),
                     colors=tuple(e.color.lower() for e in entries), ignore=tuple(ignore),
                     reduce_zero_label=reduce_zero_label, source=str(path))
