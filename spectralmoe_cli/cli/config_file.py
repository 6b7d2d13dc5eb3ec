"""A command's settings: its ``--config`` file, overridden by the flags given, checked by one schema.

A cron line stays short when the options live in a file (TOML, or YAML for ``.yaml``/``.yml``)
whose keys are the option names, with ``-`` or ``_``. File values and flag values go through the
same engine schema, so ``batch_size = 0`` is refused like ``--batch-size 0``, and
``probabilities = "false"`` (a string) is an error, not "on". An error is one line naming where
the value came from (the flag, or the file and its key) and what is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, validation_message
from ..table_file import read_table

Settings = TypeVar("Settings", bound=BaseModel)


def _key(param: Any) -> str:
    """An option's key: its long name with ``_`` (``--max-cloud`` -> ``max_cloud``)."""
    if param.param_type_name != "option":
        return param.name
    long = next(name for name in param.opts if name.startswith("--"))
    return long[2:].replace("-", "_")


def _flag(loc: list[str], params: dict[str, Any]) -> str:
    param = params.get(loc[0])
    if param is not None and param.param_type_name != "option":
        return param.human_readable_name
    return "--" + loc[0].replace("_", "-")


def read_config(path: Path, options: list[str]) -> dict[str, tuple[str, Any]]:
    """The file's ``key = value`` pairs by option key, each with the key as the file spells it."""
    data = read_table(path, "--config")
    values = {}
    for spelled, value in data.items():
        key = str(spelled).replace("-", "_")
        if key not in options:
            known = ", ".join(sorted(o.replace("_", "-") for o in options))
            raise ConfigError(f"--config {path}: unknown key {str(spelled)!r}; the keys are the "
                              f"options of this command: {known}")
        values[key] = (str(spelled), value)
    return values


def command_settings(ctx: typer.Context, schema: type[Settings], **fixed: Any) -> Settings:
    """The command's settings: flags given on the command line win over the ``--config`` file,
    and the schema's defaults fill the rest; ``fixed`` values are the command's own."""
    params = {_key(p): p for p in ctx.command.params}
    config = params.pop("config", None)
    options = [key for key, p in params.items() if p.param_type_name == "option"]
    given = {key: ctx.params[p.name] for key, p in params.items()
             if ctx.get_parameter_source(p.name).name == "COMMANDLINE"}
    path = ctx.params[config.name] if config is not None else None
    from_file = read_config(Path(path), options) if path is not None else {}
    values = {**{key: value for key, (_, value) in from_file.items()}, **given, **fixed}
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, from_file, given, params)) from exc


def _explain(exc: ValidationError, path: Path | None, from_file: dict[str, tuple[str, Any]],
             given: dict[str, Any], params: dict[str, Any]) -> str:
    """The first error, named as the user wrote it: the file and its key, or the flag."""
    first = exc.errors()[0]
    key = str(first["loc"][0]) if first["loc"] else ""
    if key in from_file and key not in given:
        spelled = from_file[key][0]
        return validation_message(exc, f"--config {path}", where=lambda loc: ".".join([spelled, *loc[1:]]))
    if first["type"] == "missing":
        return (f"missing option {_flag([key], params)}: give it on the command line or as "
                f"{key} in a --config file")
    return validation_message(exc, "", where=lambda loc: _flag(loc, params))
