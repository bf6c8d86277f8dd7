"""Who may call, which storage a request may name, where webhooks may go.

* API keys: ``Authorization: Bearer <key>``, compared in constant time against every configured
  key (``hmac.compare_digest``). No key configured and auth not disabled = every call refused
  (fail closed).
* Storage URIs: only under a configured root (a local folder or ``s3://bucket/prefix``);
  http(s) is refused by the storage parser itself, ``..`` segments anywhere are refused, local
  paths are compared after resolving symlinks.
* Webhooks: the URL's exact origin (scheme, host, port) must be on the allowlist; redirects
  are never followed when delivering.
"""

from __future__ import annotations

import hmac
import os
from typing import TypeVar
from urllib.parse import urlsplit

from lsray.storage import parse_uri
from lsray.storage.errors import UnsupportedSchemeError


T = TypeVar("T")


class PolicyError(ValueError):
    """A request names something it may not (becomes HTTP 400)."""


def key_is_valid(authorization: str | None, keys: list[str]) -> bool:
    if not authorization or not keys:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    ok = False
    for key in keys:  # no early exit: time does not tell which key (or whether any) matched
        ok |= hmac.compare_digest(token.strip().encode(), key.encode())
    return ok


def tenant_for(authorization: str | None, tenants: list[T]) -> T | None:
    """The tenant whose key is presented (``tenants``: objects with ``resolved_keys()``), or None.
    Every key of every tenant is compared, so time does not tell which tenant (or whether any) matched."""
    found = None
    for tenant in tenants:
        if key_is_valid(authorization, tenant.resolved_keys()) and found is None:
            found = tenant
    return found


def _has_traversal(text: str) -> bool:
    return any(part == ".." for part in text.replace("\\", "/").split("/"))


def check_uri(uri: str, roots: list[str]) -> str:
    """Return ``uri`` if it lies under one of ``roots``; raise :class:`PolicyError` otherwise."""
    if not isinstance(uri, str) or not uri:
        raise PolicyError("empty URI")
    if _has_traversal(uri):
        raise PolicyError(f"{uri}: '..' segments are not allowed")
    try:
        loc = parse_uri(uri)
    except UnsupportedSchemeError as exc:
        raise PolicyError(str(exc)) from None
    for root in roots:
        r = parse_uri(root)
        if loc.is_s3 and r.is_s3:
            prefix = r.key.rstrip("/")
            if loc.bucket == r.bucket and (not prefix or loc.key == prefix or loc.key.startswith(prefix + "/")):
                return uri
        elif not loc.is_s3 and not r.is_s3:
            if not os.path.isabs(loc.path):
                continue
            path, base = os.path.realpath(loc.path), os.path.realpath(r.path)
            if os.path.commonpath([path, base]) == base:
                return uri
    raise PolicyError(f"{uri}: not under a configured storage root")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise PolicyError(f"{url}: a webhook must be an http(s) URL")
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.hostname.lower(), port


def _sent_origin(url: str) -> tuple[str, str, int] | None:
    """The origin the HTTP client (requests -> urllib3) would connect to, None if it cannot parse it."""
    from urllib3.util import parse_url

    try:
        parts = parse_url(url)
    except ValueError:
        return None
    scheme = (parts.scheme or "").lower()
    return scheme, (parts.host or "").strip("[]").lower(), parts.port or (443 if scheme == "https" else 80)


def check_webhook(url: str, allowlist: list[str]) -> str:
    """Return ``url`` if its origin is on the allowlist; raise :class:`PolicyError` otherwise.

    The origin is read by two parsers, ours and the one that sends the request; a URL they read
    differently (whitespace Python's parser drops, odd authority syntax) is refused, so the
    allowlist is never checked on a host other than the one connected to.
    """
    if not isinstance(url, str) or any(c.isspace() or not c.isprintable() for c in url):
        raise PolicyError(f"{url!r}: a webhook URL may not contain whitespace or control characters")
    try:
        origin = _origin(url)
    except ValueError as exc:  # bad port and the like
        raise PolicyError(f"{url}: {exc}") from None
    if _sent_origin(url) != origin:
        raise PolicyError(f"{url}: ambiguous URL (parsers disagree on its host)")
    if urlsplit(url).username or urlsplit(url).password:
        raise PolicyError(f"{url}: credentials in webhook URLs are not allowed")
    if origin not in {_origin(entry) for entry in allowlist}:
        raise PolicyError(f"webhook host {origin[0]}://{origin[1]}:{origin[2]} is not on the allowlist")
    return url
