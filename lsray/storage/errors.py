"""Storage errors: each names the URI it is about, so a batch report row says what to fix."""

from __future__ import annotations

from lsray.errors import LsrayError


class StorageError(LsrayError):
    """A storage operation on ``uri`` failed for a reason the user can act on."""

    def __init__(self, uri: str, problem: str) -> None:
        self.uri = uri
        self.problem = problem
        super().__init__(f"{uri}: {problem}")


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """The file or S3 object does not exist (also a FileNotFoundError for generic handlers)."""

    def __init__(self, uri: str, problem: str = "no such file or object") -> None:
        super().__init__(uri, problem)


class UnsupportedSchemeError(StorageError, ValueError):
    """The URI uses a scheme lsray does not read or write (http(s) is refused on purpose)."""


class StorageAccessError(StorageError):
    """Credentials, permissions, endpoint or network failures, wrapped with the URI involved."""
