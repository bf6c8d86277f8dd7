"""How lsray talks to S3 (or an S3-compatible store such as MinIO or moto).

One :class:`S3Config` feeds both boto3 (objects: head, get, multipart upload) and pyarrow's
``S3FileSystem`` (datasets: catalogs), so both see the same endpoint, region and credentials.
From the environment: ``LSRAY_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL`` for the endpoint,
``AWS_REGION`` / ``AWS_DEFAULT_REGION`` for the region, credentials from boto3's standard chain
(env, shared files, instance roles). Tests pass an explicit config pointing at moto.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Config:
    """Endpoint, region and (optional) explicit credentials; None means boto3's default chain."""

    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    @classmethod
    def from_env(cls) -> "S3Config":
        """The configuration a worker gets when nothing is passed explicitly."""
        endpoint = os.environ.get("LSRAY_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        return cls(endpoint_url=endpoint, region=region)

    def client(self) -> Any:
        """A boto3 S3 client for this config (cached: clients are thread-safe and costly to build)."""
        return _client(self)

    def arrow_filesystem(self) -> Any:
        """A ``pyarrow.fs.S3FileSystem`` with the same endpoint, region and credentials as :meth:`client`."""
        return _arrow_filesystem(self)


_default_lock = threading.Lock()
_default: S3Config | None = None


def default_s3_config() -> S3Config:
    """The process-wide config: set by :func:`set_default_s3_config`, else read from the environment."""
    return _default if _default is not None else S3Config.from_env()


def set_default_s3_config(config: S3Config | None) -> None:
    """Use ``config`` wherever no config is passed (None: back to the environment)."""
    global _default
    with _default_lock:
        _default = config


@functools.lru_cache(maxsize=16)
def _client(config: S3Config) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        aws_session_token=config.session_token,
        region_name=config.region,
    )
    return session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        config=Config(
            retries={"max_attempts": config.max_attempts, "mode": "standard"},
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            s3={"addressing_style": "path"} if config.endpoint_url else {},
        ),
    )


@functools.lru_cache(maxsize=16)
def _arrow_filesystem(config: S3Config) -> Any:
    import boto3
    from pyarrow import fs

    kwargs: dict[str, Any] = {"region": config.region}
    if config.endpoint_url:
        parts = urlsplit(config.endpoint_url)
        kwargs["endpoint_override"] = parts.netloc or parts.path
        kwargs["scheme"] = parts.scheme or "https"
    access, secret, token = config.access_key_id, config.secret_access_key, config.session_token
    if access is None:
        # Resolve through boto3's chain so pyarrow uses exactly the credentials boto3 would.
        creds = boto3.session.Session(region_name=config.region).get_credentials()
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            access, secret, token = frozen.access_key, frozen.secret_key, frozen.token
    if access is not None:
        kwargs.update(access_key=access, secret_key=secret)
        if token:
            kwargs["session_token"] = token
    return fs.S3FileSystem(**kwargs)
