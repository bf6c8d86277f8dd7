"""Running the ffmpeg binary shipped with imageio-ffmpeg.

There is no system ffmpeg or ffprobe to rely on, so every media operation goes through
``imageio_ffmpeg.get_ffmpeg_exe()``. Commands are built with ffmpeg-python and run as argument
lists (never through a shell), so paths with spaces, quotes or non-ASCII characters are passed
through untouched.
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any

import imageio_ffmpeg

# Options every lsray ffmpeg run gets: no banner, only errors on stderr (so stderr is short and
# any line on it means something went wrong), and never read the terminal.
QUIET_ARGS = ("-hide_banner", "-nostdin", "-loglevel", "error")


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (imageio-ffmpeg's bundled build)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def media_path(path: str | Path) -> str:
    """An absolute path string for ffmpeg.

    Absolute paths start with ``/``, so ffmpeg never mistakes a name such as ``a:b.mp4`` for a
    protocol, nor a name starting with ``-`` for an option.
    """
    return os.path.abspath(os.fspath(path))


def compile_args(stream: Any, global_args: tuple[str, ...] = QUIET_ARGS) -> list[str]:
    """The argument list of an ffmpeg-python stream, with global options placed first.

    ffmpeg-python appends ``global_args`` after the output, where recent ffmpeg warns about
    "trailing options"; putting them right after the executable is unambiguous.
    """
    args = stream.compile(cmd=ffmpeg_exe(), overwrite_output=True)
    return [args[0], *global_args, *args[1:]]


class StderrTail:
    """Drain a process's stderr in a thread, keeping the last lines for error messages.

    Draining is required: a process that fills its stderr pipe blocks forever while we wait on
    its stdout. Only a bounded tail is kept, so a chatty process cannot grow memory.
    """

    def __init__(self, pipe: Any, max_lines: int = 200) -> None:
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: Any) -> None:
        for raw in iter(pipe.readline, b""):
            self._lines.append(raw.decode("utf-8", errors="replace").rstrip())
        pipe.close()

    def text(self, timeout: float = 5.0) -> str:
        """Everything kept so far, after giving the drain thread ``timeout`` s to finish."""
        self._thread.join(timeout)
        return "\n".join(line for line in self._lines if line)


def start(args: list[str], *, stdin: bool = False, stdout: bool = False) -> tuple[subprocess.Popen, StderrTail]:
    """Start ffmpeg with optional stdin/stdout pipes; stderr is always drained."""
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, StderrTail(proc.stderr)


def stop(proc: subprocess.Popen) -> None:
    """Kill a process we started (if still running) and reap it; safe to call twice."""
    if proc.poll() is None:
        proc.kill()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    proc.wait()


def run(args: list[str]) -> tuple[int, bytes, str]:
    """Run ffmpeg to completion; return (exit code, stdout bytes, stderr text)."""
    done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return done.returncode, done.stdout, done.stderr.decode("utf-8", errors="replace")


def last_line(text: str) -> str:
    """The most specific line of an ffmpeg error output (its last non-empty one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg failed without a message"
