"""The README's two top commands work: the example map, and the test command CI runs."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import rasterio
from helpers import ROOT, run_cli

README = (ROOT / "README.md").read_text()


def _first_block() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_test_command_is_what_ci_runs():
    """CI runs the README's command with nothing added that would deselect tests (only its
    output is piped), under CI=true so that a missing server fails instead of skipping."""
    test_line = [line for line in _first_block() if "pytest" in line][0]
    ci = (ROOT / ".ci" / "run").read_text()
    runs = [line for line in ci.splitlines() if "python -m pytest" in line]
    assert len(runs) == 1, runs
    assert re.search(rf"(^|\s){re.escape(test_line)}(\s+2>&1)?\s*(\||$)", runs[0]), runs[0]
    assert re.search(r"^export CI=true$", ci, re.M)


def test_readme_first_command_maps_the_example_with_the_default_model(tmp_path):
    line = [line for line in _first_block() if line.startswith("spectralmoe predict ")][0]
    args = shlex.split(line)[1:]
    args[args.index("--out") + 1] = str(tmp_path)
    args = [str(ROOT / a) if a.startswith("examples/") else a for a in args]
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["checkpoint"]["model"] == "spectralmoe_demo_p8"
    with rasterio.open(summary["results"][0]["outputs"]["cog"]) as cog:
        classes = cog.read(1)
    water = float(np.mean(classes == 1))
    assert 0.05 < water < 0.6, water  # the scene's lakes and ponds, not nothing and not everything
    assert (classes != 255).all()
