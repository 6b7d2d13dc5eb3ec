"""GDAL's block cache limit, set for the length of a read or a write and then given back.

The limit is one number for the whole process, unlike GDAL's other options. ``rasterio.Env``
sets it (``GDAL_CACHEMAX``) but gives it back only when it is the outermost ``Env`` of its
thread: nested in another one (fetch reads and writes inside its network ``Env``), its exit
leaves the limit behind for the rest of the process, and every later GDAL read of any caller
runs with it. So the limit is set here, never through ``rasterio.Env``: the value the process
had is restored when the last holder leaves, whatever ``Env`` is open around it and whichever
threads (predict's reader thread, the main thread's COG writer) hold it at the same time.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

from rasterio.env import get_gdal_config, set_gdal_config

_KEY = "GDAL_CACHEMAX"
_lock = threading.Lock()
_held: list[tuple[object, int]] = []  # (token, bytes) of each holder, in the order they came
_before: list[int] = []  # the process's own limit while anyone holds one: one value or none


def cache_limit() -> int:
    """GDAL's block cache limit now, in bytes."""
    return int(get_gdal_config(_KEY, normalize=False))


@contextmanager
def block_cache(limit_bytes: int) -> Iterator[None]:
    """GDAL's block cache limited to ``limit_bytes`` inside the block.

    An explicit ``GDAL_CACHEMAX`` in the environment wins: the user sized the cache. While
    several threads hold a limit, the latest one still held applies.
    """
    if _KEY in os.environ:
        yield
        return
    token = object()
    with _lock:
        if not _held:
            _before.append(cache_limit())
        _held.append((token, limit_bytes))
        set_gdal_config(_KEY, limit_bytes)
    try:
        yield
    finally:
        with _lock:
            _held[:] = [(t, b) for t, b in _held if t is not token]
            set_gdal_config(_KEY, _held[-1][1] if _held else _before.pop())
