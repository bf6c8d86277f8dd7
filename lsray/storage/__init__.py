"""One storage abstraction for local paths, ``file://`` and ``s3://`` URIs.

Reads, listings, cheap version identities (for fingerprints), cached content digests of local
files (``digest``: model weights), local copies for ffmpeg, and atomic writes to either backend
(local temp + rename; S3 multipart upload). No Ray imports.
"""

from lsray.storage.cleanup import delete_prefix, delete_uris, remove_empty_folder
from lsray.storage.arrow import arrow_filesystem, open_input_file, open_input_stream
from lsray.storage.backends import LocalStorage, S3Storage, Storage, open_uri, partial_path
from lsray.storage.errors import ObjectNotFoundError, StorageAccessError, StorageError, UnsupportedSchemeError
from lsray.storage.multipart import DEFAULT_PART_SIZE, MIN_PART_SIZE, multipart_upload
from lsray.storage.operations import (
    atomic_upload,
    atomic_writer,
    exists,
    identity,
    list_prefix,
    local_copy,
    metadata,
    read_bytes,
    size,
    write_bytes,
    write_json,
)
from lsray.storage.s3_config import S3Config, default_s3_config, set_default_s3_config
from lsray.storage.uri import Location, is_s3_uri, join, parent, parse_uri, resolve_reference

__all__ = [
    "delete_prefix",
    "delete_uris",
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "LocalStorage",
    "Location",
    "ObjectNotFoundError",
    "S3Config",
    "S3Storage",
    "Storage",
    "StorageAccessError",
    "StorageError",
    "UnsupportedSchemeError",
    "arrow_filesystem",
    "atomic_upload",
    "atomic_writer",
    "default_s3_config",
    "exists",
    "identity",
    "is_s3_uri",
    "join",
    "list_prefix",
    "local_copy",
    "metadata",
    "multipart_upload",
    "open_input_file",
    "open_input_stream",
    "open_uri",
    "parent",
    "parse_uri",
    "partial_path",
    "read_bytes",
    "remove_empty_folder",
    "resolve_reference",
    "set_default_s3_config",
    "size",
    "write_bytes",
    "write_json",
]
