"""What the live-service tests share (tests/test_serve.py, tests/test_openapi.py): the API key,
the webhook secret and receiver, fast dub options and small HTTP helpers. The fixtures that
deploy the service on 127.0.0.1 (``media``, ``hook_server``, ``service``) are in conftest.py."""

from __future__ import annotations

import http.server
import socket

from lsray.serve.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER

KEY = "test-key-0123456789"
SECRET = "webhook-secret-for-tests"
FAST = {"steps": 1, "guidance": 1.0, "crf": 23}  # one UNet forward per window, no CFG doubling


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


class Hooks(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: keeps every POST (body, timestamp, signature) in ``received``."""

    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hooks.received.append({"body": body, "ts": self.headers[TIMESTAMP_HEADER], "sig": self.headers[SIGNATURE_HEADER]})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass
