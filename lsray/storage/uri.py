"""Parsing and joining of storage URIs: local paths, ``file://`` URIs and ``s3://bucket/key``.

One parser means every layer agrees on what a string points to. http(s) is refused rather
than fetched: lsray never downloads at run time, and a catalog pointing at a web page is more
likely a mistake than a wish.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import UnsupportedSchemeError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
SUPPORTED_SCHEMES = ("s3", "file")


@dataclass(frozen=True)
class Location:
    """Where a URI points: a local path (``kind == "local"``) or an S3 bucket and key."""

    kind: Literal["local", "s3"]
    uri: str
    path: str = ""  # local: the filesystem path
    bucket: str = ""  # s3
    key: str = ""  # s3: no leading slash; may be "" (the bucket root)

    @property
    def is_s3(self) -> bool:
        return self.kind == "s3"


def uri_scheme(uri: str) -> str | None:
    """The lower-cased scheme of ``uri``, or None for a plain path (Windows drives count as paths)."""
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else None


def parse_uri(uri: str | os.PathLike[str]) -> Location:
    """Classify ``uri``; raise :class:`UnsupportedSchemeError` for anything but paths, file:// and s3://."""
    text = os.fspath(uri)
    if not text:
        raise UnsupportedSchemeError(repr(text), "empty URI")
    scheme = uri_scheme(text)
    if scheme is None:
        return Location("local", text, path=text)
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise UnsupportedSchemeError(text, f"file:// URIs must be local, got host {parts.netloc!r}")
        return Location("local", text, path=unquote(parts.path))
    if scheme in ("s3", "s3a"):
        rest = text[len(scheme) + 3 :]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise UnsupportedSchemeError(text, "s3 URI has no bucket (expected s3://bucket/key)")
        return Location("s3", text, bucket=bucket, key=key)
    if scheme in ("http", "https"):
        raise UnsupportedSchemeError(
            text, "http(s) URIs are not supported: lsray never downloads at run time; copy the file to a path or s3:// first"
        )
    raise UnsupportedSchemeError(text, f"unsupported URI scheme {scheme!r} (use a local path, file:// or s3://)")


def is_s3_uri(uri: str | os.PathLike[str]) -> bool:
    """True for ``s3://`` URIs (cheap check, no validation of other schemes)."""
    return uri_scheme(os.fspath(uri)) in ("s3", "s3a")


def join(uri: str | os.PathLike[str], *parts: str) -> str:
    """Append path segments, keeping the form of ``uri`` (path stays a path, s3:// stays s3://)."""
    text = os.fspath(uri)
    loc = parse_uri(text)
    clean = [p.strip("/") for p in parts if p and p.strip("/")]
    if loc.is_s3 or uri_scheme(text) == "file":
        base = text.rstrip("/")
        if loc.is_s3 and not loc.key:
            base = f"{uri_scheme(text)}://{loc.bucket}"
        return "/".join([base, *clean]) if clean else text
    return os.path.join(text, *clean)


def parent(uri: str | os.PathLike[str]) -> str:
    """The folder containing ``uri`` (same form as ``uri``), used to resolve relative references."""
    text = os.fspath(uri)
    loc = parse_uri(text)
    if loc.is_s3:
        return f"s3://{loc.bucket}/{posixpath.dirname(loc.key)}".rstrip("/")
    if uri_scheme(text) == "file":
        return "file://" + posixpath.dirname(loc.path)
    return str(Path(text).resolve().parent)


def resolve_reference(ref: str, base: str | None) -> str:
    """Resolve ``ref`` (a URI or path) against the folder URI ``base``.

    URIs with a scheme and absolute paths are kept as they are; a relative path becomes
    ``base/ref`` in ``base``'s form, so a catalog on S3 can point at its neighbours with
    ``clips/a.mp4``. ``..`` segments are collapsed for S3 keys (S3 has no directories).
    """
    if uri_scheme(ref) is not None:
        parse_uri(ref)  # validates the scheme
        return ref
    if os.path.isabs(ref) or base is None:
        return ref
    base_loc = parse_uri(base)
    if base_loc.is_s3:
        key = posixpath.normpath(posixpath.join(base_loc.key, ref)) if base_loc.key else posixpath.normpath(ref)
        if key.startswith(".."):
            raise UnsupportedSchemeError(ref, f"relative path escapes the bucket of {base}")
        return f"s3://{base_loc.bucket}/{key.lstrip('/')}"
    if uri_scheme(base) == "file":
        return "file://" + posixpath.normpath(posixpath.join(base_loc.path, ref))
    return os.path.normpath(os.path.join(base_loc.path, ref))
