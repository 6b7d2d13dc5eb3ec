"""Exception classes, one per exit code of the contract in DESIGN §5.

Every error a user can cause is one of these; the CLI prints its message as one line and exits
with its code. Anything else is a bug and exits 1 with a traceback hint.
"""

from __future__ import annotations

from typing import Callable


class SpectralMoEError(Exception):
    """Base class: an error the user can act on."""

    exit_code = 1


class UsageError(SpectralMoEError):
    """Bad options, configuration, model name, checkpoint or weights (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or value that cannot be used."""


class CheckpointError(UsageError):
    """A checkpoint that is missing, corrupted, incomplete or of another architecture."""


class WeightsError(UsageError):
    """Pretrained weights that cannot be found or do not fit the model."""


class InputDataError(SpectralMoEError):
    """Input data that cannot be used: missing band, unreadable raster, bad labels (exit 3)."""

    exit_code = 3


class BandError(InputDataError):
    """A band that is missing, duplicated or unknown."""


class PartialFailure(SpectralMoEError):
    """Some items of a batch failed; the others finished and a summary was written (exit 4)."""

    exit_code = 4


class OutputValidationError(SpectralMoEError):
    """An output that failed validation (COG, STAC item) (exit 5)."""

    exit_code = 5


class DiskError(SpectralMoEError):
    """An output that could not be written: disk full, quota, read-only or failing disk (exit 74,
    EX_IOERR). Nothing is left under a final name; a rerun after freeing space resumes."""

    exit_code = 74


class TransientError(SpectralMoEError):
    """A network or service error that is safe to retry later (exit 75, EX_TEMPFAIL)."""

    exit_code = 75


EXIT_CODES: dict[int, str] = {
    0: "done, or nothing to do",
    1: "unexpected internal error (a bug)",
    2: "usage or configuration error",
    3: "input data error (missing band, unreadable raster, CRS, bad label values)",
    4: "partial failure: some scenes failed; summary written",
    5: "output validation failed",
    74: "I/O error writing an output (disk full, quota, read-only disk): free space and rerun",
    75: "transient error (network, STAC API): safe to retry",
}


_BY_CODE: dict[int, type[SpectralMoEError]] = {
    2: UsageError, 3: InputDataError, 4: PartialFailure, 5: OutputValidationError, 74: DiskError,
    75: TransientError,
}


def error_for_code(code: int, message: str) -> SpectralMoEError:
    """An error of the class that carries ``code`` (a bug, exit 1, for unknown codes)."""
    return _BY_CODE.get(code, SpectralMoEError)(message)


def validation_message(exc: Exception, source: str, label: str = "",
                       where: Callable[[list[str]], str] = ".".join) -> str:
    """One line for a pydantic ``ValidationError``: ``SOURCE: [LABEL ]KEY: what is wrong (got X)``.

    The first error is enough to act on, and a user reads one line, not pydantic's table.
    ``where`` renders the key's path as the user wrote it (``--batch-size`` for a flag); a short
    scalar input is quoted back, so ``"false"`` (a string) is told apart from ``false``.
    """
    first = exc.errors()[0]  # type: ignore[attr-defined]
    loc = [str(part) for part in first["loc"]]
    key = where(loc) if loc else "(top level)"
    value = first.get("input")
    shown = repr(value)
    got = (f" (got {shown})" if first["type"] != "missing" and len(shown) <= 60
           and isinstance(value, (str, int, float, bool, type(None))) else "")
    line = f"{label} {key}" if label else key
    return f"{source}: {line}: {first['msg']}{got}" if source else f"{line}: {first['msg']}{got}"


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes and contexts, outermost first (each once, however they loop)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
