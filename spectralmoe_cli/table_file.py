"""A TOML or YAML file read as one table (a dict): the one reader of ``--config`` files, class
files and model configs, with one error rule, so every such file fails the same way: exit 2
(``ConfigError``) naming the file and what is wrong with it, never a parser's traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

YAML_SUFFIXES = (".yaml", ".yml")  # any other name is TOML, the project's own format


def read_table(path: Path, what: str) -> dict[str, Any]:
    """The file's top-level table; ``what`` names the file in errors (``--config``, ``class
    file``). An empty YAML file is an empty table; a YAML list or scalar is an error."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    kind = "YAML" if path.suffix.lower() in YAML_SUFFIXES else "TOML"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{what} {path}: cannot read it ({reason})") from exc
    try:
        data = yaml.safe_load(text) if kind == "YAML" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{what} {path}: cannot parse it: not valid {kind} ({first})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: expected a table of key = value, not a "
                          f"{type(data).__name__}")
    return data
