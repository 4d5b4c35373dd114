"""plugin.heap: glibc keeps freed per-frame buffers instead of unmapping them."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from plugin import heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_thresholds_are_set_once_and_large_blocks_are_reused() -> None:
    assert heap.keep_freed_memory() is True
    assert heap.keep_freed_memory() is True  # idempotent
    # A 4 MB block freed and asked for again comes from the heap: the same address (with the
    # default dynamic threshold the first such block is its own mapping, and a new one each time).
    first = np.empty(4 << 20, np.uint8)
    address = first.ctypes.data
    del first
    again = np.empty(4 << 20, np.uint8)
    assert again.ctypes.data == address
