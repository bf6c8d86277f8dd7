"""pyarrow filesystem access for datasets (catalogs, reports) with lsray's URI rules and errors."""

from __future__ import annotations

import os
from typing import Any

from .s3_config import S3Config, default_s3_config
from .s3_errors import arrow_errors
from .uri import parse_uri


def arrow_filesystem(uri: str | os.PathLike[str], config: S3Config | None = None) -> tuple[Any, str]:
    """``(pyarrow FileSystem, path inside it)`` for ``uri``: S3FileSystem ``bucket/key`` or the local path."""
    from pyarrow import fs

    loc = parse_uri(uri)
    if loc.is_s3:
        return (config or default_s3_config()).arrow_filesystem(), f"{loc.bucket}/{loc.key}"
    return fs.LocalFileSystem(), os.path.abspath(loc.path)


def open_input_stream(uri: str | os.PathLike[str], config: S3Config | None = None) -> Any:
    """A streaming (sequential) pyarrow input file; not-found and access errors name ``uri``."""
    filesystem, path = arrow_filesystem(uri, config)
    with arrow_errors(os.fspath(uri)):
        info = filesystem.get_file_info(path)
        from pyarrow import fs

        if info.type == fs.FileType.NotFound:
            raise FileNotFoundError(path)
        return filesystem.open_input_stream(path)


def open_input_file(uri: str | os.PathLike[str], config: S3Config | None = None) -> Any:
    """A random-access pyarrow input file (Parquet needs to seek to its footer)."""
    filesystem, path = arrow_filesystem(uri, config)
    with arrow_errors(os.fspath(uri)):
        from pyarrow import fs

        if filesystem.get_file_info(path).type == fs.FileType.NotFound:
            raise FileNotFoundError(path)
        return filesystem.open_input_file(path)
