"""Atomic S3 publication with multipart upload.

S3 makes an object visible only when ``complete_multipart_upload`` succeeds, so a worker that
dies mid-upload leaves no half-written object under the final key (the parts are invisible and
are removed by ``abort_multipart_upload`` on failure, or by a bucket lifecycle rule if the process
is killed outright). Every part but the last must be at least 5 MiB (S3's rule).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from .errors import StorageError
from .s3_config import S3Config, default_s3_config
from .s3_errors import s3_errors
from .uri import parse_uri

MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024


def multipart_upload(
    local_path: str | os.PathLike[str],
    uri: str,
    *,
    metadata: dict[str, str] | None = None,
    content_type: str | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    config: S3Config | None = None,
) -> str:
    """Upload ``local_path`` to the ``s3://`` ``uri`` in parts; return the ETag of the new object.

    ``metadata`` becomes the object's user metadata (``x-amz-meta-*``), set at creation so it is
    visible exactly when the object is. Any failure aborts the upload before re-raising.
    """
    if part_size < MIN_PART_SIZE:
        raise ValueError(f"part_size must be >= {MIN_PART_SIZE} bytes (S3 minimum), got {part_size}")
    loc = parse_uri(uri)
    if not loc.is_s3:
        raise StorageError(uri, "multipart_upload needs an s3:// URI")
    client = (config or default_s3_config()).client()
    extra: dict[str, Any] = {}
    if metadata:
        extra["Metadata"] = {str(k): str(v) for k, v in metadata.items()}
    if content_type:
        extra["ContentType"] = content_type
    with s3_errors(uri):
        upload_id = client.create_multipart_upload(Bucket=loc.bucket, Key=loc.key, **extra)["UploadId"]
        try:
            parts = []
            with Path(local_path).open("rb") as f:
                number = 1
                while True:
                    chunk = f.read(part_size)
                    if not chunk and number > 1:
                        break  # an empty file still gets one (empty) part
                    resp = client.upload_part(
                        Bucket=loc.bucket, Key=loc.key, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                    parts.append({"PartNumber": number, "ETag": resp["ETag"]})
                    number += 1
                    if len(chunk) < part_size:
                        break
            done = client.complete_multipart_upload(
                Bucket=loc.bucket, Key=loc.key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters more than the cleanup's
                client.abort_multipart_upload(Bucket=loc.bucket, Key=loc.key, UploadId=upload_id)
            raise
    return str(done.get("ETag", ""))
