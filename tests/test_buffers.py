"""The chunk buffer pool: a returned buffer comes back zeroed, in the shape asked, same memory."""

import numpy as np

from spectralmoe_cli.engine.predict.buffers import BufferPool


def test_reused_buffer_is_zeroed_and_shared():
    pool = BufferPool()
    first = pool.zeros((3, 40, 50), np.int32)
    first[...] = 7
    pool.give_back(first)
    smaller = pool.zeros((3, 30, 50), np.int32)  # an edge chunk: a view of the same memory
    assert smaller.shape == (3, 30, 50) and not smaller.any()
    assert np.shares_memory(first, smaller)
    bigger = pool.zeros((3, 50, 50), np.int32)  # does not fit: fresh memory
    assert not np.shares_memory(first, bigger) and not bigger.any()


def test_pool_keeps_a_bounded_number_of_buffers():
    pool = BufferPool(keep=2)
    arrays = [pool.zeros((10,), np.int32) for _ in range(4)]
    for array in arrays:
        pool.give_back(array)
    again = [pool.zeros((10,), np.int32) for _ in range(4)]
    reused = sum(any(np.shares_memory(a, b) for b in arrays) for a in again)
    assert reused == 2
