"""The house rules, checked on the source so that they hold without anyone remembering them.

Dependencies point one way, ``cli -> engine -> (nn, io, stac) -> base modules``; no import
cycle, lazy imports included; ``nn/`` is pure torch (it never reaches io/, stac/ or engine/);
io/ and stac/ never import torch, not even through a base module; no module grows past
``MAX_LINES``; ``engine/`` keeps its jobs in subpackages, with few modules at its top; every
logger is named for its module, so one level set on the package's logger reaches them all.
The analyser itself is tested on a small package written for the purpose, so a rule that finds
nothing has been shown able to find something.
"""

from __future__ import annotations

import ast
from collections import deque

import pytest
from helpers import ROOT
from package_graph import Import, cycles, import_graph, module_files

PACKAGE = "spectralmoe_cli"
MAX_LINES = 400
MAX_ENGINE_MODULES = 10
TORCH = {"torch", "torchvision", "timm"}
PARTS = ("cli", "engine", "nn", "io", "stac")
# what each part may import; "base" is every module directly in the package (bands, checkpoint,
# config, errors, files, net, weights)
MAY_IMPORT = {
    "cli": {"cli", "engine", "nn", "io", "stac", "base"},
    "engine": {"engine", "nn", "io", "stac", "base"},
    "nn": {"nn", "base"},
    "io": {"io", "stac", "base"},
    "stac": {"stac", "base"},
    "base": {"base"},
}

GRAPH = import_graph(ROOT, PACKAGE)
FILES = module_files(ROOT, PACKAGE)


def part(module: str) -> str:
    first = module.split(".")[1] if "." in module else ""
    if first == "__main__":
        return "cli"
    return first if first in PARTS else "base"


def _where(imp: Import) -> str:
    return f"{FILES[imp.source].relative_to(ROOT)}:{imp.line} imports {imp.target}"


def test_the_analyser_sees_the_whole_package():
    assert len(GRAPH) > 50 and {"spectralmoe_cli.errors", "spectralmoe_cli.io.scene",
                                "spectralmoe_cli.engine.predict.runner"} <= set(GRAPH)
    runner = {i.target for i in GRAPH["spectralmoe_cli.engine.predict.runner"]}
    assert {"spectralmoe_cli.errors", "spectralmoe_cli.engine.runtime.models",
            "spectralmoe_cli.engine.predict.distributed"} <= runner  # relative and lazy imports


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles (lazy imports count):\n" + "\n".join(
        " -> ".join(cycle) for cycle in found)


def test_dependencies_point_down_the_layers():
    """cli -> engine -> (nn, io, stac) -> base; io may read stac's descriptions, not the reverse."""
    wrong = [f"{_where(imp)} ({part(imp.source)} may import only {sorted(MAY_IMPORT[part(imp.source)])})"
             for imports in GRAPH.values() for imp in imports
             if imp.internal and part(imp.target) not in MAY_IMPORT[part(imp.source)]]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_nn_never_imports_io_stac_or_engine():
    wrong = [_where(imp) for name, imports in GRAPH.items() if part(name) == "nn"
             for imp in imports if imp.internal and part(imp.target) in ("io", "stac", "engine")]
    assert not wrong, "nn/ is pure torch:\n" + "\n".join(wrong)


def _torch_chain(start: str) -> list[str] | None:
    """The import path from ``start`` to torch (through modules of the package), if any."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imp in GRAPH[module]:
            if not imp.internal and imp.target.split(".")[0] in TORCH:
                chain = [imp.target, module]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])
                return chain[::-1]
            if imp.internal and imp.target not in came_from:
                came_from[imp.target] = module
                queue.append(imp.target)
    return None


def test_io_and_stac_never_import_torch():
    chains = [_torch_chain(name) for name in GRAPH if part(name) in ("io", "stac")]
    wrong = sorted({" -> ".join(chain) for chain in chains if chain})
    assert not wrong, "io/ and stac/ must work without torch:\n" + "\n".join(wrong)


def test_modules_stay_small():
    long = {str(path.relative_to(ROOT)): n for path in FILES.values()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_engine_keeps_its_jobs_in_subpackages():
    top = sorted(p.name for p in (ROOT / PACKAGE / "engine").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_ENGINE_MODULES, f"{len(top)} modules directly in engine/: {top}"


def test_loggers_are_named_for_their_module():
    """A module's own logger is ``getLogger(__name__)``; a name written out must be the package's
    own tree (the CLI sets the level of ``spectralmoe_cli``, which every module's logger inherits).
    The CLI may still set the level of a library's logger (urllib3's retry chatter): that is
    configuration, not a logger of ours, so only module-level ``name = getLogger(...)`` count."""
    wrong = []
    for path in FILES.values():
        for statement in ast.parse(path.read_text()).body:
            node = statement.value if isinstance(statement, ast.Assign) else None
            if not (isinstance(node, ast.Call) and node.args and "getLogger" in (
                    getattr(node.func, "attr", None), getattr(node.func, "id", None))):
                continue
            arg = node.args[0]
            named = isinstance(arg, ast.Name) and arg.id == "__name__"
            in_tree = isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] == PACKAGE
            if not (named or in_tree):
                wrong.append(f"{path.relative_to(ROOT)}:{statement.lineno} getLogger({ast.unparse(arg)})")
    assert not wrong, f"loggers outside the {PACKAGE} tree:\n" + "\n".join(wrong)


@pytest.fixture
def tangled(tmp_path):
    """A small package with a cycle through a lazy, relative import in a subpackage."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\nimport pkg.sub\n",
        "pkg/b.py": "def later():\n    from .sub.c import thing\n    return thing\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "import torch\nfrom ..a import name\n",
        "pkg/sub/d.py": "from __future__ import annotations\nfrom .. import b\nfrom ...outside import x\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return import_graph(tmp_path, "pkg")


def test_the_analyser_resolves_lazy_and_relative_imports(tangled):
    targets = {m: sorted({i.target for i in imps}) for m, imps in tangled.items()}
    assert targets == {
        "pkg": [], "pkg.sub": [],
        "pkg.a": ["pkg.b", "pkg.sub"],
        "pkg.b": ["pkg.sub.c"],
        "pkg.sub.c": ["pkg.a", "torch"],
        "pkg.sub.d": ["outside", "pkg.b"],
    }
    assert [i.internal for i in tangled["pkg.sub.c"]] == [False, True]


def test_the_analyser_reports_a_cycle_as_a_path(tangled):
    assert cycles(tangled) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]
