"""Helpers shared by the tests (imported as a plain module; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: object, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``spectralmoe ARGS`` through the real entry point (``cli.main``) in this process.

    Exit code, stdout and stderr are what a shell would see; it saves the interpreter start and
    the imports of a subprocess. ``run_cli_process`` runs a real separate process.
    """
    from spectralmoe_cli import cli

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["spectralmoe", *argv]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def run_cli_process(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m spectralmoe_cli ARGS`` as a separate process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "spectralmoe_cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """A user error: the expected exit code, one 'error:' line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
