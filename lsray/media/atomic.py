"""Atomic output files: nothing appears under a final name unless it was written completely.

Every lsray output (videos, audio, reports, bundles) is first written to a hidden temporary
name in the *same directory* as the final file and then renamed with :func:`os.replace`. The
same directory matters: a rename within one filesystem is atomic, so a reader (or a crashed,
retried Ray task) either sees the old file, the complete new file, or nothing - never a
half-written one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def partial_path(final_path: str | Path) -> Path:
    """The temporary sibling of ``final_path``: ``dir/.name.<random>.partial.ext``.

    The extension is kept last so tools that pick a format from the name (ffmpeg, soundfile)
    still do; the random token keeps concurrent writers of the same output apart; the leading
    dot hides it from directory listings and globs such as ``*.mp4``.
    """
    final = Path(final_path)
    token = secrets.token_hex(4)
    return final.with_name(f".{final.stem}.{token}.partial{final.suffix}")


def remove_quietly(path: str | Path) -> None:
    """Delete ``path`` if it exists (cleanup must never mask the original error)."""
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
        os.remove(path)


@contextlib.contextmanager
def atomic_output(final_path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; move it to ``final_path`` only if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is deleted and the
    exception propagates; whatever was at ``final_path`` before is left untouched. The parent
    directory is created if needed. If the block finishes without creating the temporary file,
    ``FileNotFoundError`` is raised rather than silently producing nothing.

    Example::

        with atomic_output("out/clip.mp4") as tmp:
            encode_to(tmp)
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_output: nothing was written to {tmp} for {final}")
        os.replace(tmp, final)
    except BaseException:
        remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(final_dir: str | Path) -> Iterator[Path]:
    """Yield a sibling temporary directory; it replaces ``final_dir`` only if the block succeeds.

    For outputs that are folders (model bundles): built in ``<name>.partial-<pid>`` next to the
    final folder, then renamed; on any exception the partial folder is removed.
    """
    import shutil

    final = Path(final_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
