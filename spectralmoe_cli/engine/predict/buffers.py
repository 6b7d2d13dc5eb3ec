"""Chunk-sized arrays handed out again and again, so a long run's memory stays flat.

Each chunk needs an int32 accumulator of (K + 1) x (chunk + tile_h) x (chunk + tile_w) values.
Allocating a fresh one per chunk costs a round of page faults each time and lets the allocator keep the peak of every
chunk size it has seen; reusing a few flat buffers (edge chunks take a smaller view of the same
memory) bounds memory by the pipeline's depth, without an allocator setting that would also slow
down the model's own allocations.
"""

from __future__ import annotations

import threading

import numpy as np


class BufferPool:
    """Flat buffers by dtype; ``zeros`` gives a zeroed view of the requested shape."""

    def __init__(self, keep: int = 3) -> None:
        self.keep = keep  # the pipeline holds at most: one chunk read ahead, one inferring, one spare
        self._free: dict[np.dtype, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def zeros(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        with self._lock:
            free = self._free.setdefault(dtype, [])
            fitting = [n for n, b in enumerate(free) if b.size >= size]
            flat = free.pop(min(fitting, key=lambda n: free[n].size)) if fitting else None
        if flat is None:
            flat = np.empty(size, dtype)
        view = flat[:size].reshape(shape)
        view.fill(0)
        return view

    def give_back(self, array: np.ndarray) -> None:
        """Return an array from ``zeros``; the caller must not use it afterwards."""
        flat = array.base if array.base is not None else array
        if flat.ndim != 1:
            return
        with self._lock:
            free = self._free.setdefault(flat.dtype, [])
            if all(b is not flat for b in free):
                free.append(flat)
                free.sort(key=len, reverse=True)
                del free[self.keep:]
