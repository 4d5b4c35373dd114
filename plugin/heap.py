"""Keep freed memory in the process instead of handing it back to the kernel at once.

The edit stage allocates and frees buffers of a few hundred kilobytes to a few megabytes on every
frame (the face box in floats, the field, the sampled pixels). glibc serves blocks above its
mmap threshold (128 KB at first, raised only as large blocks are freed) with fresh ``mmap`` calls
and returns them with ``munmap``: every frame then pays for page faults on memory the kernel must
zero again. Raising the threshold and the trim limit lets those blocks be reused from the heap.
Measured with ``bench/perf.py``'s edit child on its 1080p clip (one smiling face, the same
settings set through glibc's environment variables): minor page faults 202 k -> 142 k, system time
1.47 -> 0.95 s, render 22.6 -> 24.9 fps (pass-through unchanged: 35.2 -> 36.9 fps, 120 k -> 112 k
faults). The analysis pass (decoded frames, the landmarker's inputs) does the same: 230 k -> 160 k
faults, 1.0 -> 0.7 s of system time for 150 frames of 1080p. The memory kept is bounded by
:data:`TRIM_THRESHOLD`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: Blocks up to this size come from the heap, not from their own ``mmap``.
MMAP_THRESHOLD = 64 << 20
#: Free memory at the top of the heap kept before it is given back.
TRIM_THRESHOLD = 256 << 20
# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_done = False


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (once per process). Returns whether they are set:
    False on a C library without ``mallopt`` (macOS, musl), where nothing changes."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
