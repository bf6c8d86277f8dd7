"""Turning boto3/botocore and pyarrow exceptions into storage errors that name the URI."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import ObjectNotFoundError, StorageAccessError, StorageError

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}


@contextlib.contextmanager
def s3_errors(uri: str) -> Iterator[None]:
    """Re-raise S3 failures as :class:`StorageError` subclasses naming ``uri`` (the cause is chained)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    try:
        yield
    except StorageError:
        raise
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        message = e.response.get("Error", {}).get("Message", "") or str(e)
        if code in _NOT_FOUND_CODES:
            what = "bucket does not exist" if code == "NoSuchBucket" else "no such object"
            raise ObjectNotFoundError(uri, what) from e
        raise StorageAccessError(uri, f"S3 error {code}: {message}") from e
    except (NoCredentialsError, PartialCredentialsError) as e:
        raise StorageAccessError(
            uri, f"no S3 credentials found ({e}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile"
        ) from e
    except BotoCoreError as e:  # endpoint unreachable, timeouts, bad endpoint URL ...
        raise StorageAccessError(uri, f"S3 request failed: {e}") from e


@contextlib.contextmanager
def arrow_errors(uri: str) -> Iterator[None]:
    """Re-raise pyarrow filesystem failures (which are plain OSErrors) as storage errors."""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError as e:
        raise ObjectNotFoundError(uri) from e
    except OSError as e:
        text = str(e)
        if "NoSuchKey" in text or "Path does not exist" in text or "NoSuchBucket" in text:
            raise ObjectNotFoundError(uri) from e
        raise StorageAccessError(uri, f"read failed: {text}") from e
