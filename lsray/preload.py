"""Load torch's native libraries before anything else in a fresh process.

libtorch_cpu carries Intel oneMKL, which needs room in the process's static TLS block. When
Ray, pyarrow, OpenCV and friends load first, that block can be full by the time torch is
imported, and the import dies in C with "Intel oneMKL FATAL ERROR: Cannot load
libtorch_cpu.so" (no Python traceback). Which order a process happens to import in depends on
its environment (a Ray job driver imports Ray's dashboard stack first), so entrypoints that
run heavy jobs call :func:`torch_first` before importing the rest.
"""

from __future__ import annotations


def torch_first() -> None:
    """Import torch now (cheap if already imported)."""
    import torch  # noqa: F401
