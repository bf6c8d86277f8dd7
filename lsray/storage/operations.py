"""URI-level functions: the everyday entry points (``exists(uri)``, ``read_bytes(uri)``, ...).

Each picks the backend for its URI via :func:`open_uri`, so callers never branch on the scheme.
``config`` selects the S3 endpoint/credentials (default: :func:`default_s3_config`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .backends import open_uri
from .s3_config import S3Config

PathOrUri = str | os.PathLike[str]


def exists(uri: PathOrUri, config: S3Config | None = None) -> bool:
    """True if a file/object exists at ``uri``."""
    return open_uri(uri, config).exists(os.fspath(uri))


def size(uri: PathOrUri, config: S3Config | None = None) -> int:
    """Size in bytes (:class:`ObjectNotFoundError` if absent)."""
    return open_uri(uri, config).size(os.fspath(uri))


def read_bytes(uri: PathOrUri, config: S3Config | None = None) -> bytes:
    """The content of ``uri`` (:class:`ObjectNotFoundError` if absent)."""
    return open_uri(uri, config).read_bytes(os.fspath(uri))


def write_bytes(uri: PathOrUri, data: bytes, config: S3Config | None = None, metadata: dict[str, str] | None = None) -> None:
    """Write ``data`` to ``uri`` atomically (readers see the old content, the new one, or nothing)."""
    open_uri(uri, config).write_bytes(os.fspath(uri), data, metadata)


def write_json(uri: PathOrUri, value: Any, config: S3Config | None = None) -> None:
    """Write ``value`` as indented JSON (one trailing newline) to ``uri``, atomically like
    :func:`write_bytes`: results and summaries that people read and diff."""
    write_bytes(uri, (json.dumps(value, indent=2) + "\n").encode("utf-8"), config)


def list_prefix(uri: PathOrUri, config: S3Config | None = None) -> list[str]:
    """Sorted URIs of all files/objects under the folder or key prefix ``uri``."""
    return open_uri(uri, config).list_prefix(os.fspath(uri))


def identity(uri: PathOrUri, config: S3Config | None = None) -> dict[str, Any]:
    """Cheap version identity of ``uri``: local path+size+mtime_ns, S3 ETag+size (no content hashing)."""
    return open_uri(uri, config).identity(os.fspath(uri))


def metadata(uri: PathOrUri, config: S3Config | None = None) -> dict[str, str]:
    """User metadata of an S3 object (``{}`` for local files)."""
    return open_uri(uri, config).metadata(os.fspath(uri))


def atomic_upload(
    local_path: PathOrUri, uri: PathOrUri, config: S3Config | None = None, metadata: dict[str, str] | None = None
) -> None:
    """Publish a finished local file at ``uri`` atomically (local: copy + rename; S3: multipart upload)."""
    open_uri(uri, config).atomic_upload(local_path, os.fspath(uri), metadata)


@contextlib.contextmanager
def atomic_writer(
    uri: PathOrUri, config: S3Config | None = None, metadata: dict[str, str] | None = None
) -> Iterator[Path]:
    """``with atomic_writer(uri) as tmp: write(tmp)``: ``uri`` appears only if the block succeeds.

    ``tmp`` keeps the final extension so ffmpeg and pyarrow pick the right format from it.
    """
    with open_uri(uri, config).atomic_writer(os.fspath(uri), metadata) as tmp:
        yield tmp


@contextlib.contextmanager
def local_copy(uri: PathOrUri, config: S3Config | None = None) -> Iterator[Path]:
    """A local path with the content of ``uri``: local files pass through, S3 objects go to a temp file
    (deleted on exit) because ffmpeg and friends need a real file."""
    with open_uri(uri, config).local_copy(os.fspath(uri)) as path:
        yield path
