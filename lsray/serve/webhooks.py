"""Signed webhook delivery.

The body is the job record as JSON. Headers: ``X-Lsray-Timestamp`` (unix seconds) and
``X-Lsray-Signature: sha256=<hex>`` where the hex digest is HMAC-SHA256(secret,
``timestamp + "." + body``). A receiver recomputes it with :func:`verify` and rejects stale
timestamps (replays). Delivery retries on connection errors and non-2xx answers with
exponential backoff; redirects are never followed (the allowlist is checked on the URL given).
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Lsray-Timestamp"
SIGNATURE_HEADER = "X-Lsray-Signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, max_age_s: float = 300.0) -> bool:
    """True if ``signature`` is ours for (timestamp, body) and the timestamp is fresh."""
    try:
        age = abs(time.time() - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= max_age_s and hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def deliver(url: str, body: bytes, secret: str, *, max_attempts: int, backoff_s: float, timeout_s: float,
            sleep=time.sleep) -> tuple[bool, int, str]:
    """POST ``body`` until a 2xx answer; returns (delivered, attempts, last error). Blocking."""
    import requests

    error = ""
    for attempt in range(1, max_attempts + 1):
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}
        try:
            resp = requests.post(url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False)
            if 200 <= resp.status_code < 300:
                return True, attempt, ""
            error = f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt < max_attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    return False, max_attempts, error
