"""What ``lsray`` prints: its own progress and results, not the libraries' chatter.

mediapipe's native code (TF-Lite's XNNPACK line, absl's ``W0000`` lines) writes straight to file
descriptor 2 when a graph is built and first run; protobuf warns that mediapipe calls a
deprecated API; Ray Data logs every execution's plan; Ray's C++ core prints benign "errors".
None of it is actionable for someone dubbing a catalog, and it buries lsray's progress bars.

Where lsray can remove a cause it does (Ray Data's named remote parameters in
:mod:`lsray.batch.job`); the rest is silenced here, once, when the CLI starts
(:func:`quiet_third_party`), and around mediapipe's first run and Ray's start-up, which print
past Python's logging (:func:`quiet_native_stderr`).
``lsray --verbose`` (``LSRAY_VERBOSE=1``, inherited by Ray workers started from this process)
turns all of it back on, e.g. to debug a mediapipe or Ray problem.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from typing import Iterator

VERBOSE_ENV = "LSRAY_VERBOSE"

#: Environment read by native libraries when they start (``setdefault``: a user's own value wins).
QUIET_ENV = {
    "GLOG_minloglevel": "2",  # glog / absl: errors only
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow (Lite) C++ logging
    # Ray's C++ core: its E-level note that Ray Data's restartable actors get their arguments
    # from the object store. Raylet / GCS started here inherit it (their log files are terser).
    "RAY_BACKEND_LOG_LEVEL": "fatal",
    "RAY_DATA_LOG_LEVEL": "WARNING",  # Ray Data's per-execution INFO lines (plan, "finished in")
}

#: (message regex, category) of warnings raised by third-party code lsray cannot change.
QUIET_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # mediapipe 0.10.14 calls protobuf's SymbolDatabase.GetPrototype (deprecated in protobuf 4+)
    (r"SymbolDatabase\.GetPrototype\(\) is deprecated", UserWarning),
)

#: Loggers set to ERROR: the note Ray Data logs because lsray turns its progress bars off (lsray
#: draws its own). Not ``ray`` itself: importing Ray resets its level; Ray's start-up runs inside
#: :func:`quiet_native_stderr` instead (:func:`lsray.batch.cluster.connect`).
QUIET_LOGGERS = ("ray.data._internal.progress",)


def verbose() -> bool:
    """Whether third-party output is wanted (``lsray --verbose`` / ``LSRAY_VERBOSE=1``)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def setup(verbose_flag: bool = False) -> None:
    """The CLI's console: record ``--verbose`` for this process and its children, then quiet
    the libraries unless verbose. Call before torch, mediapipe or Ray are imported."""
    if verbose_flag:
        os.environ[VERBOSE_ENV] = "1"
    quiet_third_party()


def quiet_third_party() -> None:
    """Silence the known third-party noise (no-op when :func:`verbose`). Environment variables
    only reach libraries not yet started, so this runs first thing; it is idempotent."""
    if verbose():
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "ray.data" in sys.modules:  # imported already: its logging was configured without our level
        logging.getLogger("ray.data").setLevel(os.environ["RAY_DATA_LOG_LEVEL"])


_redirect_lock = threading.Lock()
_redirect_depth = 0
_saved_fd: int | None = None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null inside the block (no-op when :func:`verbose`).

    For native code (mediapipe's graph start-up, Ray's C++ core) that writes to fd 2 past
    Python's ``sys.stderr``; Python's own writes to stderr in the block are silenced too.
    fd 2 is per process, so overlapping blocks in several threads share one redirection: the
    first in redirects, the last out restores. Anything the process writes to stderr meanwhile
    (another thread's progress bar) is lost too, so keep the block short.
    """
    if verbose():
        yield
        return
    global _redirect_depth, _saved_fd
    with _redirect_lock:
        if _redirect_depth == 0:
            sys.stderr.flush()
            _saved_fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _redirect_depth += 1
    try:
        yield
    finally:
        with _redirect_lock:
            _redirect_depth -= 1
            if _redirect_depth == 0 and _saved_fd is not None:
                sys.stderr.flush()
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None
