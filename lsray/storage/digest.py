"""Content digests (sha256) of local files, remembered so that a large file is read once.

Why content and not the cheap identities of :func:`lsray.storage.identity`: size + mtime say
when a *file* was rewritten, not what it holds. Model weights need the opposite: retrained
weights of the same shape keep their size, while the same bytes synced from S3 into a fresh pod
get new mtimes. So weights are identified by their bytes, and since a bundle can hold gigabytes,
each digest is remembered in a small JSON file under :func:`cache_root`, keyed by what changes
whenever a file is rewritten: its real path, size, mtime_ns, ctime_ns and inode (ctime and the
inode also catch a copy that preserved the old mtime, which mtime alone would miss).

The cache only saves time: a missing, corrupt or unwritable cache file is never an error,
the files are simply hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Iterable

CACHE_ENV = "LSRAY_CACHE_DIR"
DIGEST_CACHE_FILE = "file-digests.json"
_CACHE_FORMAT = 1  # bump when an entry's meaning changes: old files are then ignored
_CHUNK = 1 << 20  # bytes read at a time: memory stays bounded whatever the file's size

_log = logging.getLogger(__name__)


def cache_root() -> Path:
    """lsray's own small caches on this machine: ``$LSRAY_CACHE_DIR``, else ``~/.cache/lsray``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lsray")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 hex of a file's content, read in chunks (bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load(cache_file: Path) -> dict[str, dict]:
    """The cached entries, or nothing when the file is missing, unreadable or not ours."""
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # missing, unreadable, corrupt (JSONDecodeError, bad UTF-8)
        if not isinstance(exc, FileNotFoundError):
            _log.debug("ignoring digest cache %s: %s", cache_file, exc)
        return {}
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return {k: v for k, v in data["files"].items()
            if isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("stat"), list)}


def _save(cache_file: Path, entries: dict[str, dict]) -> None:
    """Write the cache atomically, dropping entries of files that are gone; failure is only logged."""
    from lsray.storage.operations import write_bytes

    live = {k: v for k, v in entries.items() if os.path.exists(k)}
    body = json.dumps({"format": _CACHE_FORMAT, "files": live}, sort_keys=True, separators=(",", ":")).encode("utf-8")
    try:
        write_bytes(str(cache_file), body)
    except Exception as exc:  # a read-only home, a full disk, ...: the digests were still computed
        _log.warning("could not write the digest cache %s (%s): large files will be hashed again next time",
                     cache_file, exc)


def file_digests(paths: Iterable[str | os.PathLike[str]], cache_file: Path | None = None) -> list[str]:
    """sha256 hex of each file in ``paths`` (in order), reading only files the cache does not know.

    ``cache_file`` defaults to ``cache_root() / DIGEST_CACHE_FILE``. A missing file raises
    FileNotFoundError, as reading it would.
    """
    cache_file = cache_file or cache_root() / DIGEST_CACHE_FILE
    entries = _load(cache_file)
    digests, changed = [], False
    for path in paths:
        real = os.path.realpath(path)  # linked files share one entry; the stat is the target's
        key = _stat_key(os.stat(real))
        entry = entries.get(real)
        if entry is None or entry["stat"] != key:
            entry = {"stat": key, "sha256": sha256_file(real)}
            # A file rewritten while it was read would be cached under its old stat with new bytes: keep
            # the digest for this call but only remember it if the file did not change meanwhile.
            if _stat_key(os.stat(real)) == key:
                entries[real], changed = entry, True
        digests.append(entry["sha256"])
    if changed:
        _save(cache_file, entries)
    return digests


__all__ = ["CACHE_ENV", "DIGEST_CACHE_FILE", "cache_root", "file_digests", "sha256_file"]
