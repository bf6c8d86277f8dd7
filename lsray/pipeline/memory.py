"""Give freed heap memory back to the operating system between shards.

A long clip allocates and frees the same large buffers (frames, crops, latents) thousands of
times; glibc keeps freed blocks in its arenas, so a process's resident size creeps up with the
clip's length even though nothing is kept. ``malloc_trim`` returns them, keeping the footprint
set by one shard. A no-op where the C library has no such call (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


def release_free_memory() -> None:
    """Return free heap pages to the OS (glibc ``malloc_trim(0)``)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
