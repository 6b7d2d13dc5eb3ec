"""Run as ``python import_probe.py ROOT PACKAGE``: import every module of PACKAGE (except
``__main__``) one after the other and print, as JSON, what each import changed in the process.

Watched: ``os.environ``, torch's deterministic-algorithms switch, the matplotlib backend, the
root logger's handlers and the warnings filters. The outside libraries the package imports are
imported first, so what they do when loaded is not blamed on the package. Modules are imported
after what they import, so each step loads one module; after a change the state is put back,
so the next module is judged on its own. A change is reported with the modules the step loaded.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from package_graph import import_graph  # noqa: E402


def _backend() -> str | None:
    if "matplotlib" not in sys.modules:
        return None
    import matplotlib

    return matplotlib.rcParams._get_backend_or_none()


def _deterministic() -> bool | None:
    if "torch" not in sys.modules:
        return None
    import torch

    return torch.are_deterministic_algorithms_enabled()


def snapshot() -> dict[str, Any]:
    return {"environ": dict(os.environ), "deterministic": _deterministic(),
            "matplotlib backend": _backend(), "root handlers": list(logging.getLogger().handlers),
            "warnings filters": list(warnings.filters)}


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    found = []
    env_before, env_after = before["environ"], after["environ"]
    for key in sorted(set(env_before) | set(env_after)):
        if env_before.get(key) != env_after.get(key):
            found.append(f"os.environ[{key!r}]: {env_before.get(key)!r} -> {env_after.get(key)!r}")
    if after["deterministic"]:
        found.append("torch deterministic algorithms switched on")
    if after["matplotlib backend"] != before["matplotlib backend"]:
        found.append(f"matplotlib backend set to {after['matplotlib backend']!r}")
    added = [h for h in after["root handlers"] if h not in before["root handlers"]]
    if added:
        found.append(f"root logger handlers added: {added!r}")
    new = [f for f in after["warnings filters"] if f not in before["warnings filters"]]
    if new:
        found.append("warnings filters added: " + ", ".join(
            f"{action} {getattr(category, '__name__', category)}" for action, _, category, *_ in new))
    return found


def restore(state: dict[str, Any]) -> None:
    os.environ.clear()
    os.environ.update(state["environ"])
    if _deterministic():
        import torch

        torch.use_deterministic_algorithms(False)
    if _backend() != state["matplotlib backend"]:
        import matplotlib
        import matplotlib.rcsetup

        matplotlib.rcParams._set("backend", state["matplotlib backend"]
                                 or matplotlib.rcsetup._auto_backend_sentinel)
    logging.getLogger().handlers[:] = state["root handlers"]
    warnings.filters[:] = state["warnings filters"]


def import_order(graph: dict) -> list[str]:
    """Each module after its parent packages and the modules it imports, so that importing it
    loads little more than itself and a change is blamed on the module that made it."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(module: str) -> None:
        if module in seen:
            return
        seen.add(module)
        parts = module.split(".")
        parents = [".".join(parts[:n]) for n in range(1, len(parts))]
        for dep in parents + sorted({i.target for i in graph[module] if i.internal}):
            if dep in graph:
                visit(dep)
        order.append(module)

    for module in sorted(graph):
        visit(module)
    return [m for m in order if not m.endswith(".__main__")]


def main(root: Path, package: str) -> dict[str, list[str]]:
    sys.path.insert(0, str(root))
    graph = import_graph(root, package)
    for target in sorted({i.target for imports in graph.values() for i in imports if not i.internal}):
        try:
            importlib.import_module(target)
        except Exception:  # an optional library that is not installed: the package copes
            pass
    report = {}
    for module in import_order(graph):
        loaded = set(sys.modules)
        before = snapshot()
        importlib.import_module(module)
        found = changes(before, snapshot())
        if found:
            culprits = sorted(m for m in set(sys.modules) - loaded if m in graph)
            report[" + ".join(culprits)] = found
            restore(before)
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])))
