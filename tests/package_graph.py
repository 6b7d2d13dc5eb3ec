"""The package's modules and what each imports, read from the source with ``ast`` (nothing is
imported). Shared by the architecture test and the import side-effect test.

Every ``import`` counts, at module level or inside a function (a lazy import still ties two
modules together), with relative imports resolved. ``from pkg import name`` depends on the
submodule ``pkg.name`` when there is one, else on ``pkg`` itself.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One import statement's target: a module of the package, or an outside one."""

    source: str  # the importing module
    target: str  # the imported module, dotted, resolved
    line: int
    internal: bool  # the target is a module of the package


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under ``root/package`` (``__init__`` is the package)."""
    base = root / package
    modules = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(module: str, path: Path, level: int, name: str | None) -> str:
    """The absolute name a relative ``from`` import refers to."""
    if level == 0:
        return name or ""
    package = _package_of(module, path).split(".")
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _known(target: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``target`` that is a module of the package (``import a.b.c``)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import in ``path``, wherever it stands in the file."""
    found = []

    def add(target: str, line: int) -> None:
        known = _known(target, modules)
        found.append(Import(module, known or target, line, known is not None))

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            target = _resolve(module, path, node.level, node.module)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                add(submodule if submodule in modules else target, node.lineno)
    return found


def import_graph(root: Path, package: str) -> dict[str, list[Import]]:
    """Module -> its imports, for every module of the package."""
    modules = module_files(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, list[Import]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules, as a path that returns to its start."""
    edges = {m: sorted({i.target for i in imps if i.internal}) for m, imps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges[node]:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return [_path_within(group, edges) for group in sorted(groups)]


def _path_within(group: list[str], edges: dict[str, list[str]]) -> list[str]:
    """A cycle through the group's first module, found breadth-first inside the group."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in edges[node]:
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")
