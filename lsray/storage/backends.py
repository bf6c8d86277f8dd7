"""The two storage backends behind one interface: local files and S3 objects.

Callers hold URIs, not backend objects; :func:`open_uri` picks the backend for a URI. Every
write is atomic: local files go through a hidden temporary sibling and ``os.replace``; S3
objects through multipart upload (visible only once complete).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ObjectNotFoundError, StorageAccessError
from .multipart import DEFAULT_PART_SIZE, multipart_upload
from .s3_config import S3Config, default_s3_config
from .s3_errors import s3_errors
from .uri import Location, parse_uri
from lsray.media.atomic import atomic_output, partial_path, remove_quietly


class Storage(ABC):
    """Operations on URIs of one backend. Methods take full URIs so one instance serves many."""

    @abstractmethod
    def exists(self, uri: str) -> bool:
        """True if a file/object exists at ``uri`` (directories and prefixes do not count)."""

    @abstractmethod
    def size(self, uri: str) -> int:
        """Size in bytes; :class:`ObjectNotFoundError` if absent."""

    @abstractmethod
    def read_bytes(self, uri: str) -> bytes:
        """The whole content; :class:`ObjectNotFoundError` if absent."""

    @abstractmethod
    def list_prefix(self, uri: str) -> list[str]:
        """Sorted URIs of every file/object under ``uri`` (a folder or key prefix), recursively."""

    @abstractmethod
    def identity(self, uri: str) -> dict[str, Any]:
        """What identifies this version of the content cheaply (no hashing of the bytes): used by fingerprints."""

    @abstractmethod
    def metadata(self, uri: str) -> dict[str, str]:
        """User metadata stored with the object (S3); local files have none."""

    @abstractmethod
    def atomic_upload(self, local_path: str | os.PathLike[str], uri: str, metadata: dict[str, str] | None = None) -> None:
        """Publish the finished local file at ``uri`` in one atomic step (``local_path`` is left in place)."""

    @abstractmethod
    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        """A local path holding the content of ``uri`` for tools that need a file (ffmpeg)."""

    @abstractmethod
    @contextlib.contextmanager
    def atomic_writer(self, uri: str, metadata: dict[str, str] | None = None) -> Iterator[Path]:
        """Yield a local temp path to write; publish it at ``uri`` only if the block succeeds."""

    def write_bytes(self, uri: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write ``data`` atomically to ``uri``."""
        with self.atomic_writer(uri, metadata) as tmp:
            tmp.write_bytes(data)


class LocalStorage(Storage):
    """Local paths and ``file://`` URIs."""

    @staticmethod
    def _path(uri: str) -> Path:
        return Path(parse_uri(uri).path)

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def _stat(self, uri: str) -> os.stat_result:
        try:
            st = self._path(uri).stat()
        except FileNotFoundError as e:
            raise ObjectNotFoundError(uri, "no such file") from e
        except OSError as e:
            raise StorageAccessError(uri, f"cannot stat: {e.strerror or e}") from e
        if not os.path.isfile(self._path(uri)):
            raise ObjectNotFoundError(uri, "not a file")
        return st

    def size(self, uri: str) -> int:
        return self._stat(uri).st_size

    def read_bytes(self, uri: str) -> bytes:
        self._stat(uri)
        try:
            return self._path(uri).read_bytes()
        except OSError as e:
            raise StorageAccessError(uri, f"cannot read: {e.strerror or e}") from e

    def list_prefix(self, uri: str) -> list[str]:
        root = self._path(uri)
        if not root.is_dir():
            return []
        files = sorted(str(p) for p in root.rglob("*") if p.is_file() and ".partial" not in p.name)
        if parse_uri(uri).uri.startswith("file://"):
            return ["file://" + f for f in files]
        return files

    def identity(self, uri: str) -> dict[str, Any]:
        st = self._stat(uri)
        return {"path": str(self._path(uri).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def metadata(self, uri: str) -> dict[str, str]:
        self._stat(uri)
        return {}

    def atomic_upload(self, local_path: str | os.PathLike[str], uri: str, metadata: dict[str, str] | None = None) -> None:
        import shutil

        src = Path(local_path)
        if not src.is_file():
            raise ObjectNotFoundError(str(src), "local file to publish does not exist")
        with self.atomic_writer(uri) as tmp:
            shutil.copyfile(src, tmp)

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        self._stat(uri)
        yield self._path(uri)

    @contextlib.contextmanager
    def atomic_writer(self, uri: str, metadata: dict[str, str] | None = None) -> Iterator[Path]:
        final = self._path(uri)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageAccessError(uri, f"cannot create folder {final.parent}: {e.strerror or e}") from e
        try:
            with atomic_output(final) as tmp:  # the one local atomic-write mechanism
                yield tmp
        except FileNotFoundError as e:
            if not final.exists():
                raise ObjectNotFoundError(uri, f"atomic_writer: nothing was written ({e})") from e
            raise


class S3Storage(Storage):
    """``s3://bucket/key`` objects through boto3 (one cached client per :class:`S3Config`)."""

    def __init__(self, config: S3Config | None = None, part_size: int = DEFAULT_PART_SIZE) -> None:
        self.config = config or default_s3_config()
        self.part_size = part_size

    @property
    def client(self) -> Any:
        return self.config.client()

    @staticmethod
    def _loc(uri: str) -> Location:
        loc = parse_uri(uri)
        if not loc.is_s3:
            raise ValueError(f"S3Storage got a non-s3 URI: {uri}")
        return loc

    def _head(self, uri: str) -> dict[str, Any]:
        loc = self._loc(uri)
        if not loc.key or loc.key.endswith("/"):
            raise ObjectNotFoundError(uri, "not an object (bucket or prefix)")
        with s3_errors(uri):
            return self.client.head_object(Bucket=loc.bucket, Key=loc.key)

    def exists(self, uri: str) -> bool:
        try:
            self._head(uri)
        except ObjectNotFoundError:
            return False
        return True

    def size(self, uri: str) -> int:
        return int(self._head(uri)["ContentLength"])

    def read_bytes(self, uri: str) -> bytes:
        loc = self._loc(uri)
        with s3_errors(uri):
            return self.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()

    def list_prefix(self, uri: str) -> list[str]:
        loc = self._loc(uri)
        prefix = loc.key
        out: list[str] = []
        with s3_errors(uri):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
                out.extend(f"s3://{loc.bucket}/{obj['Key']}" for obj in page.get("Contents", []))
        return sorted(out)

    def identity(self, uri: str) -> dict[str, Any]:
        head = self._head(uri)
        return {"uri": uri, "etag": str(head.get("ETag", "")).strip('"'), "size": int(head["ContentLength"])}

    def metadata(self, uri: str) -> dict[str, str]:
        return dict(self._head(uri).get("Metadata", {}))

    def atomic_upload(self, local_path: str | os.PathLike[str], uri: str, metadata: dict[str, str] | None = None) -> None:
        if not Path(local_path).is_file():
            raise ObjectNotFoundError(str(local_path), "local file to publish does not exist")
        multipart_upload(local_path, uri, metadata=metadata, part_size=self.part_size, config=self.config)

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        loc = self._loc(uri)
        suffix = Path(loc.key).suffix
        fd, name = tempfile.mkstemp(prefix="lsray-", suffix=suffix)
        os.close(fd)
        tmp = Path(name)
        try:
            self._head(uri)  # a clear not-found error before download_file's generic one
            with s3_errors(uri):
                self.client.download_file(loc.bucket, loc.key, str(tmp))
            yield tmp
        finally:
            remove_quietly(tmp)

    @contextlib.contextmanager
    def atomic_writer(self, uri: str, metadata: dict[str, str] | None = None) -> Iterator[Path]:
        loc = self._loc(uri)
        tmpdir = Path(tempfile.mkdtemp(prefix="lsray-out-"))
        tmp = tmpdir / (Path(loc.key).name or "object")
        try:
            yield tmp
            if not tmp.exists():
                raise ObjectNotFoundError(uri, f"atomic_writer: nothing was written to {tmp}")
            self.atomic_upload(tmp, uri, metadata)
        finally:
            remove_quietly(tmp)
            with contextlib.suppress(OSError):
                tmpdir.rmdir()


_local = LocalStorage()


def open_uri(uri: str | os.PathLike[str], config: S3Config | None = None) -> Storage:
    """The backend for ``uri`` (validates the scheme: http(s) and unknown schemes are refused)."""
    loc = parse_uri(uri)
    if loc.is_s3:
        return S3Storage(config)
    return _local
