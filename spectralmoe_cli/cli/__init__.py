"""The ``spectralmoe`` command line: parse options, call the engine, map errors to exit codes.

One module per command builds its settings, calls one engine function and prints; options that
several commands share are declared in ``options.py``, the ``--config`` file layer in
``config_file.py``. Exit codes: 0 done or nothing to do; 1 internal error (a bug); 2 usage or
configuration error; 3 input data error; 4 partial failure (summary written); 5 output
validation failed; 74 I/O error writing an output (disk full); 75 transient error, safe to
retry.
"""

from __future__ import annotations

import inspect
import logging
import sys
import traceback
from typing import Callable

import typer

from .. import __version__
from ..errors import EXIT_CODES, SpectralMoEError
from ..files import disk_error
from ..text import shown
from . import evaluate, fetch, info, predict, stats, train

INTERRUPTED = "interrupted; rerun the same command to resume"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."

app = typer.Typer(
    name="spectralmoe",
    help="Land-cover maps from hyperspectral, multispectral and RGB scenes with SpectralMoE "
         "(frozen DINOv2/DINOv3 + depth foundation model, dual-gated mixture of experts).\n\n"
         + EXIT_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"verbose": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spectralmoe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging; show tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    _state["verbose"] = verbose
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S", stream=sys.stderr, force=True)
    logging.getLogger("spectralmoe_cli").setLevel(level)  # every module logs under __name__
    logging.captureWarnings(True)  # library warnings go through the log, so -q silences them
    for handler in logging.getLogger().handlers:
        handler.addFilter(_LibraryRecords(verbose, quiet))


class _LibraryRecords(logging.Filter):
    """Other libraries' log records only with ``-v`` (urllib3 logs every retry of our own policy,
    whose outcome we report in one line), their warnings unless ``-q``, their errors always."""

    def __init__(self, verbose: bool, quiet: bool) -> None:
        super().__init__()
        self.verbose, self.quiet = verbose, quiet

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or record.levelno >= logging.ERROR:
            return True
        if record.name.split(".")[0] == "spectralmoe_cli":
            return True
        return record.name == "py.warnings" and not self.quiet


def _help(command: Callable) -> str:
    """A command's docstring as ``--help`` shows it at any width: each prose paragraph one line
    (the terminal wraps it), indented example lines kept as written."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    return "\n\n".join(p if p.startswith(" ") else " ".join(p.split("\n")) for p in paragraphs)


for _command in (info.info, predict.predict, fetch.fetch, stats.stats, train.train, evaluate.evaluate):
    app.command(help=_help(_command))(_command)


def _usage_line(exc: typer.TyperException) -> str:
    """A parser error (missing option, ``--tile abc``, unknown command) as one line."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {shown(exc.format_message())}{where}"


def main() -> None:
    """Console entry point: run the app, turn every error a user can cause into one line and an
    exit code (2 for a usage error); anything else is a bug (exit 1, with the traceback)."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ != "NoArgsIsHelpError":  # the help was shown: nothing to add
            typer.echo(_usage_line(exc), err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except SpectralMoEError as exc:
        if _state["verbose"]:
            traceback.print_exc()
        typer.echo(f"error: {shown(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        full = disk_error(exc)  # a write outside ``write_atomic`` (a Zarr chunk, a folder)
        if full is not None:
            if _state["verbose"]:
                traceback.print_exc()
            typer.echo(f"error: {full}", err=True)
            sys.exit(full.exit_code)
        traceback.print_exc()
        typer.echo(f"error: internal error ({type(exc).__name__}: {shown(str(exc))}); this is a bug, please "
                   f"report it with the traceback above", err=True)
        sys.exit(1)
    if code == EXIT_INTERRUPTED:  # typer returns Ctrl-C as this code, with nothing said
        typer.echo(f"error: {INTERRUPTED}", err=True)
    if isinstance(code, int) and code:
        sys.exit(code)
