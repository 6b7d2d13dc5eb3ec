"""Keep a long predict run's memory flat: freed chunk buffers go back to the operating system.

glibc raises its mmap threshold each time a large mmapped block is freed, after which chunk-sized
buffers come from heaps that never shrink: the process then holds the peak of every chunk it has
seen. A fixed threshold keeps large buffers in mmap, returned the moment they are freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
THRESHOLD = 128 * 1024


def release_large_buffers() -> bool:
    """Fix glibc's mmap threshold (Linux with glibc); False where that does not apply."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False
