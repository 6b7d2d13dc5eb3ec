"""Importing a module of the package changes nothing in the process: no environment variable,
no torch determinism, no matplotlib backend, no root logging handler, no warnings filter.
Settings belong to the run that asks for them (a library user imports us and keeps theirs).

Each check runs ``import_probe.py`` in a fresh interpreter, so nothing this test session has
already imported or configured hides a change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

PROBE = Path(__file__).with_name("import_probe.py")


def probe(root: Path, package: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    result = subprocess.run([sys.executable, str(PROBE), str(root), package], capture_output=True,
                            text=True, env=env, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_any_module_changes_no_process_state():
    report = probe(ROOT, "spectralmoe_cli")
    assert not report, "import-time side effects:\n" + "\n".join(
        f"{modules}: {'; '.join(found)}" for modules, found in report.items())


@pytest.mark.slow
def test_the_probe_sees_every_kind_of_side_effect(tmp_path):
    package = tmp_path / "noisy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "calm.py").write_text("import logging\n\nlog = logging.getLogger(__name__)\n")
    (package / "loud.py").write_text(
        "import logging\nimport os\nimport warnings\n\nimport matplotlib\nimport torch\n\n"
        "os.environ['NOISY_SETTING'] = '64'\nmatplotlib.use('Agg')\n"
        "torch.use_deterministic_algorithms(True)\nlogging.basicConfig()\n"
        "warnings.filterwarnings('ignore', category=RuntimeWarning)\n")
    (package / "quiet_after.py").write_text("import torch\n")
    report = probe(tmp_path, "noisy")
    assert list(report) == ["noisy.loud"]
    found = "; ".join(report["noisy.loud"])
    for change in ("os.environ['NOISY_SETTING']: None -> '64'", "deterministic algorithms",
                   "matplotlib backend set to 'Agg'", "root logger handlers added",
                   "warnings filters added: ignore RuntimeWarning"):
        assert change in found, found
