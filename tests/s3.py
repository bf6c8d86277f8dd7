"""A moto S3 server on loopback for storage/catalog/report tests (one per test session).

Import the fixtures into a test module (``from s3 import moto_s3, s3_bucket``). A module may
import them several times across files; the server is shared through a reference count, so
it is started once and stopped when the last user's session-scoped fixture tears down.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

from lsray.storage import S3Config

_lock = threading.Lock()
_server = None
_config: S3Config | None = None
_users = 0
_bucket_ids = itertools.count()


def _acquire() -> S3Config:
    global _server, _config, _users
    with _lock:
        if _server is None:
            from moto.server import ThreadedMotoServer

            _server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            _server.start()
            host, port = _server.get_host_and_port()
            _config = S3Config(
                endpoint_url=f"http://{host}:{port}",
                region="us-east-1",
                access_key_id="testing",
                secret_access_key="testing",
                max_attempts=2,
            )
        _users += 1
        assert _config is not None
        return _config


def _release() -> None:
    global _server, _config, _users
    with _lock:
        _users -= 1
        if _users == 0 and _server is not None:
            _server.stop()
            _server, _config = None, None


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Config]:
    """An :class:`S3Config` pointing at a loopback moto server with dummy credentials."""
    config = _acquire()
    try:
        yield config
    finally:
        _release()


@pytest.fixture()
def s3_bucket(moto_s3: S3Config) -> str:
    """A fresh, empty bucket name for one test."""
    name = f"lsray-test-{next(_bucket_ids)}"
    moto_s3.client().create_bucket(Bucket=name)
    return name
