"""The one registry pattern of nn/: named entries, added by a decorator where they are defined.

Backbones, plugins and heads each have a ``Registry`` instance beside their interface
(``backbones.BACKBONES``, ``plugin.PLUGINS``, ``heads.HEADS``) and a decorator that fills it, as
timm's ``@register_model`` does; a registered class carries its own metadata (whether a plugin
needs the depth model, whether a head takes queries), so no other module lists method names.
``catalog`` imports every module that registers something, so its tables are complete.

Entries may also come from sources: functions called once, on the first lookup, that yield
``(name, entry)`` pairs. The backbone table is built that way, because listing which DINOv3
variants the installed timm provides must not happen at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from ..errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name; an unknown name is a ConfigError that lists the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # what an entry is, as a user names it: "backbone", "method", "head"
        self._entries: dict[str, T] = {}
        self._sources: list[Callable[[], Iterable[tuple[str, T]]]] = []

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; a name registered twice is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def add_source(self, source: Callable[[], Iterable[tuple[str, T]]]
                   ) -> Callable[[], Iterable[tuple[str, T]]]:
        """Register a function whose ``(name, entry)`` pairs are added on the first lookup."""
        self._sources.append(source)
        return source

    def _table(self) -> dict[str, T]:
        while self._sources:
            for name, entry in self._sources.pop(0)():
                self.add(name, entry)
        return self._entries

    def get(self, name: str) -> T:
        table = self._table()
        if name not in table:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(table))}")
        return table[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._table())

    def __contains__(self, name: object) -> bool:
        return name in self._table()
