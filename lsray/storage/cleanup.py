"""Best-effort deletes of intermediate files (a clip's staged voice track and segments), local or S3."""

from __future__ import annotations

import contextlib
import os
import shutil

from .operations import list_prefix
from .s3_config import S3Config, default_s3_config
from .uri import is_s3_uri, parse_uri


def remove_empty_folder(uri: str) -> None:
    """Remove a local folder if nothing is left in it (a staging root other jobs may still use).
    S3 has no folders: nothing to do there."""
    if not is_s3_uri(uri):
        with contextlib.suppress(OSError):
            os.rmdir(parse_uri(uri).path)


def delete_uris(uris: list[str], config: S3Config | None = None) -> None:
    """Best-effort delete (a leftover segment is harmless: the next run overwrites it)."""
    for uri in uris:
        with contextlib.suppress(Exception):
            if is_s3_uri(uri):
                loc = parse_uri(uri)
                (config or default_s3_config()).client().delete_object(Bucket=loc.bucket, Key=loc.key)
            else:
                path = parse_uri(uri).path
                os.remove(path)
                remove_empty_folder(os.path.dirname(path))  # the clip's folder, once empty


def delete_prefix(uri: str, config: S3Config | None = None) -> None:
    """Best-effort delete of everything under ``uri`` (a staging folder the caller owns).

    A local folder goes as a whole tree, including the ``.partial`` files that listings hide: a
    writer killed mid-copy (its node lost) leaves one, and nothing else would ever remove it. On
    S3 an unfinished upload is never an object, so deleting the listed keys is enough."""
    if not is_s3_uri(uri):
        shutil.rmtree(parse_uri(uri).path, ignore_errors=True)
        return
    with contextlib.suppress(Exception):
        delete_uris(list_prefix(uri, config), config)
