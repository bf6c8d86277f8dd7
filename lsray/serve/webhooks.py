"""Signed webhook delivery.

The body is the job record as JSON. Headers: ``X-Lsray-Timestamp`` (unix seconds) and
``X-Lsray-Signature: sha256=<hex>`` where the hex digest is HMAC-SHA256(secret,
``timestamp + "." + body``). A receiver recomputes it with :func:`verify` and rejects stale
timestamps (replays). ``X-Lsray-Delivery`` is the SHA-256 of the body, the same on every attempt
(and on a re-delivery of the same record), so a receiver can drop duplicates: delivery is at
least once, because an attempt that timed out may still have been received.

Delivery retries on connection errors, timeouts and non-2xx answers with exponential backoff.
Redirects are never followed (the allowlist is checked on the URL given, not on a ``Location``
the receiver picks); a 3xx answer ends the delivery as failed at once, since retrying would
get the same redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

TIMESTAMP_HEADER = "X-Lsray-Timestamp"
SIGNATURE_HEADER = "X-Lsray-Signature"
DELIVERY_HEADER = "X-Lsray-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``timestamp + "." + body``)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, max_age_s: float = 300.0) -> bool:
    """True if ``signature`` is ours for (timestamp, body) and the timestamp is fresh."""
    try:
        age = abs(time.time() - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= max_age_s and hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def delivery_id(body: bytes) -> str:
    """The ``X-Lsray-Delivery`` value: a digest of the body, so it needs no state to stay stable."""
    return hashlib.sha256(body).hexdigest()


def deliver(url: str, body: bytes, secret: str, *, max_attempts: int, backoff_s: float, timeout_s: float,
            sleep: Callable[[float], None] = time.sleep) -> tuple[bool, int, str]:
    """POST ``body`` until a 2xx answer; returns (delivered, attempts made, last error). Blocking.

    The caller checks ``url`` against the allowlist first; nothing here sends anywhere else.
    """
    import requests

    error = ""
    with requests.Session() as session:
        for attempt in range(1, max_attempts + 1):
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body),
                       DELIVERY_HEADER: delivery_id(body)}
            try:
                resp = session.post(url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False)
                resp.close()
                if 200 <= resp.status_code < 300:
                    return True, attempt, ""
                if 300 <= resp.status_code < 400:
                    location = resp.headers.get("Location", "")
                    return False, attempt, f"HTTP {resp.status_code}: redirect to {location!r} refused"
                error = f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt < max_attempts:
                sleep(backoff_s * 2 ** (attempt - 1))
    return False, max_attempts, error
