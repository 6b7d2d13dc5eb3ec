"""Files that appear whole or not at all, their checksums, and exclusive locks on outputs."""

from __future__ import annotations

import csv
import errno
import fcntl
import glob
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .errors import DiskError, TransientError, exception_chain

PARTIAL = ".part"  # in the name of every file still being written (``write_atomic``)

_DISK_ERRNOS = {errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file too large for the file system",
                errno.EROFS: "read-only file system", errno.EIO: "I/O error on the disk"}
# the same failures as GDAL, zarr and numcodecs word them when the errno is lost on the way
_DISK_TEXTS = {"no space left on device": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT,
               "free disk space available is": errno.ENOSPC, "file too large": errno.EFBIG,
               "read-only file system": errno.EROFS}


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Make ``path`` appear whole or not at all: ``write`` fills a temporary file beside it.

    The temporary file lies in the same folder (a rename within one file system is atomic) and
    ends like ``path`` (``.part.tif``, ``.part.png``), so writers that pick a format by name
    (GDAL, matplotlib, ``np.save``) work; it is created empty, so a writer may replace it.
    Once ``write`` returns, the file is fsynced, renamed over ``path`` and the folder fsynced,
    so after a crash a reader finds the old file or the new one, never a torn one. If ``write``
    raises, the temporary file is removed and ``path`` is left as it was.
    A full disk (or quota, read-only disk) is ``DiskError`` (exit 74) naming ``path``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                    suffix=f"{PARTIAL}{path.suffix}")
        os.close(fd)
    except OSError as exc:
        full = disk_error(exc, path)
        if full is None:
            raise
        raise full from exc
    tmp = Path(name)
    try:
        write(tmp)
        _fsync(tmp, os.O_RDONLY)
        os.chmod(tmp, 0o644)
        rename_into_place(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = disk_error(exc, path) if isinstance(exc, Exception) else None
        if full is not None:
            raise full from exc
        raise


def disk_error(exc: BaseException, path: Path | None = None) -> DiskError | None:
    """``exc`` as a ``DiskError`` (exit 74) if a full, read-only or failing disk caused it.

    The one place that recognises the failure, by errno or, where GDAL or a codec kept only
    the text, by its words. The message names the disk (its mount point and free space) and
    the file being written (``path``, else the one in the error), so a nightly job's log says
    what to free, not "internal error".
    """
    for err in exception_chain(exc):
        code = err.errno if isinstance(err, OSError) and err.errno in _DISK_ERRNOS else next(
            (c for text, c in _DISK_TEXTS.items() if text in str(err).lower()), None)
        if code is None:
            continue
        target = Path(path or getattr(err, "filename", None) or ".")
        return DiskError(f"{_DISK_ERRNOS[code]} ({_disk_of(target)}) writing {target}: free "
                         f"space and rerun the same command; it resumes where it stopped")
    return None


def _disk_of(path: Path) -> str:
    """The mount point that holds ``path`` and the space left on it."""
    mount = path.absolute()
    while not mount.exists() or not os.path.ismount(mount):
        if mount.parent == mount:
            break
        mount = mount.parent
    try:
        free = shutil.disk_usage(mount).free
    except OSError:
        return f"disk {mount}"
    return f"disk {mount}, {free / 1024 ** 2:.1f} MiB free"


def rename_into_place(src: Path, dst: Path) -> None:
    """Rename ``src`` (a finished file or folder, such as a Zarr store) over ``dst`` in the same
    folder, and fsync the folder so that the rename survives a crash."""
    os.replace(src, dst)
    _fsync(dst.parent, os.O_RDONLY | os.O_DIRECTORY)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` as the whole content of ``path``, atomically (``write_atomic``)."""
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` in UTF-8 as the whole content of ``path``, atomically, newlines as given."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, document: Any, sort_keys: bool = False,
                      allow_nan: bool = True) -> None:
    """``document`` as indented JSON ending in a newline, atomically; ``allow_nan=False`` for
    strict JSON (a NaN is then an error, not a file only Python reads)."""
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=sort_keys,
                                       allow_nan=allow_nan) + "\n")


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV text in the csv module's default dialect (CRLF line ends)."""
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    return text.getvalue()


def discard_partials(path: Path) -> None:
    """Remove what a killed ``write_atomic`` of ``path`` left beside it. Only for a caller that
    holds the output's lock: another process may be writing ``path`` right now otherwise."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{PARTIAL}*"):
        leftover.unlink(missing_ok=True)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
