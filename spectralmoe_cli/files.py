"""Files that appear whole or not at all, their checksums, and exclusive locks on outputs."""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import TransientError


def write_json_atomic(path: Path, document: dict[str, Any], sort_keys: bool = False) -> None:
    """Readers see the old file or the new one, never half of one (fsync, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=sort_keys)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_float(value: float | None) -> float | str | None:
    """A number strict JSON can hold: NaN and infinities become "nan", "inf", "-inf"."""
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def file_checksum(path: Path) -> tuple[str, int]:
    """``file:checksum`` (multihash: 0x12 sha2-256, 0x20 bytes) and ``file:size``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return "1220" + digest.hexdigest(), size


@contextmanager
def exclusive_lock(path: Path, busy: str) -> Iterator[None]:
    """Hold an flock on ``path`` (created if missing, never removed: removing it would let two
    runs lock different files); TransientError (exit 75) with ``busy`` if another run holds it."""
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TransientError(busy) from None
        yield
    finally:
        handle.close()
