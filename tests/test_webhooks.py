"""Webhook delivery under faults, against a real receiver on loopback.

The receiver is a ``ThreadingHTTPServer`` on 127.0.0.1 that verifies every request's signature
the way a customer's would (``webhooks.verify`` with the shared secret and our header names) and
drops duplicates by the delivery id. It is bound before it listens, so "down" is a real refused
connection on the port the URL names, and "up" is the same port starting to listen.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lsray.serve.security import PolicyError, check_webhook
from lsray.serve.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver, delivery_id, verify

SECRET = "receiver-shared-secret"
BODY = json.dumps({"id": "job-1", "status": "done", "result_uri": "s3://out/job-1.mp4"}, sort_keys=True).encode()


@dataclass
class Receipt:
    at: float
    path: str
    delivery: str | None
    signed: bool


@dataclass
class Receiver:
    """One loopback endpoint; ``mode`` says how it answers the next request."""

    server: ThreadingHTTPServer
    secret: str = SECRET
    mode: str = "up"  # up | slow | redirect
    slow_s: float = 0.0
    slow_left: int = 0  # answer this many requests slowly, then normally
    redirect_to: str = ""
    receipts: list[Receipt] = field(default_factory=list)
    processed: set[str] = field(default_factory=set)  # delivery ids acted on (once each)
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Listen (until now connections to the bound port were refused) and serve."""
        self.server.server_activate()
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signed = verify(rx.secret, self.headers.get(TIMESTAMP_HEADER, ""), body, self.headers.get(SIGNATURE_HEADER, ""))
            delivery = self.headers.get(DELIVERY_HEADER)
            with rx.lock:
                rx.receipts.append(Receipt(time.monotonic(), self.path, delivery, signed))
                slow = rx.mode == "slow" and rx.slow_left > 0
                rx.slow_left -= slow
                if signed and delivery and rx.mode != "redirect":
                    rx.processed.add(delivery)  # idempotent: a retried delivery is acted on once
            if rx.mode == "redirect":
                self.send_response(307)
                self.send_header("Location", rx.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if slow:
                time.sleep(rx.slow_s)  # past the sender's timeout: it gives up and retries
            self.send_response(204 if signed else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@pytest.fixture
def make_receiver() -> Iterator:
    made: list[Receiver] = []

    def make(listening: bool = True) -> Receiver:
        server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler, bind_and_activate=False)
        server.daemon_threads = True
        server.server_bind()  # the port is ours; not listening yet = connection refused
        rx = Receiver(server=server)
        server.RequestHandlerClass = _handler(rx)
        made.append(rx)
        if listening:
            rx.start()
        return rx

    yield make
    for rx in made:
        if rx.thread is not None:
            rx.server.shutdown()
        rx.server.server_close()


class Backoff:
    """``deliver``'s sleep: really sleeps, records each delay and when each next attempt starts,
    and runs ``before_attempt[n]`` just before attempt n (to bring the receiver up mid-delivery)."""

    def __init__(self, before_attempt: dict[int, object] | None = None) -> None:
        self.delays: list[float] = []
        self.attempt_starts: list[float] = [time.monotonic()]
        self.before_attempt = before_attempt or {}

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(seconds)
        hook = self.before_attempt.get(len(self.attempt_starts) + 1)
        if hook is not None:
            hook()  # type: ignore[operator]
        self.attempt_starts.append(time.monotonic())

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.attempt_starts, self.attempt_starts[1:])]


def test_down_then_up_retries_with_growing_backoff(make_receiver) -> None:
    rx = make_receiver(listening=False)
    url = check_webhook(f"{rx.origin}/hooks/lsray", [rx.origin])
    backoff = Backoff(before_attempt={4: rx.start})  # attempts 1-3 refused, 4 reaches it
    ok, attempts, error = deliver(url, BODY, SECRET, max_attempts=6, backoff_s=0.1, timeout_s=2.0, sleep=backoff)
    assert (ok, attempts, error) == (True, 4, "")
    assert backoff.delays == pytest.approx([0.1, 0.2, 0.4])
    gaps = backoff.gaps()
    assert all(later > earlier for earlier, later in zip(gaps, gaps[1:])), gaps  # the attempts spread out
    assert gaps[-1] >= 0.4
    time.sleep(0.3)  # nothing more arrives after the success
    assert len(rx.receipts) == 1 and rx.receipts[0].signed and rx.receipts[0].path == "/hooks/lsray"
    assert rx.processed == {delivery_id(BODY)}


def test_down_for_good_gives_up_with_the_error(make_receiver) -> None:
    rx = make_receiver(listening=False)
    backoff = Backoff()
    ok, attempts, error = deliver(f"{rx.origin}/h", BODY, SECRET, max_attempts=3, backoff_s=0.05, timeout_s=1.0,
                                  sleep=backoff)
    assert (ok, attempts) == (False, 3) and "ConnectionError" in error
    assert backoff.delays == pytest.approx([0.05, 0.1])  # no sleep after the last attempt


def test_slow_receiver_times_out_then_is_delivered_once(make_receiver) -> None:
    rx = make_receiver()
    rx.mode, rx.slow_s, rx.slow_left = "slow", 1.0, 2  # the first two answers come after the 0.3 s timeout
    backoff = Backoff()
    started = time.monotonic()
    ok, attempts, error = deliver(f"{rx.origin}/h", BODY, SECRET, max_attempts=5, backoff_s=0.1, timeout_s=0.3,
                                  sleep=backoff)
    assert (ok, attempts, error) == (True, 3, "")
    assert time.monotonic() - started < 3.0  # each slow attempt was cut at the timeout, not waited out
    assert backoff.delays == pytest.approx([0.1, 0.2])
    gaps = backoff.gaps()
    assert gaps[1] > gaps[0] >= 0.3 + 0.1  # timeout + backoff, the backoff doubling
    time.sleep(1.2)  # let the slow handlers finish: still no further request
    # every attempt reached the receiver (at-least-once), each one signed and carrying the same delivery id,
    # so the receiver acted on it once
    assert len(rx.receipts) == 3 and all(r.signed for r in rx.receipts)
    assert {r.delivery for r in rx.receipts} == {delivery_id(BODY)} and len(rx.processed) == 1


def test_delivered_at_most_once_when_up(make_receiver) -> None:
    rx = make_receiver()
    for _ in range(2):  # the same record delivered twice (e.g. a replica restarted before recording it)
        assert deliver(f"{rx.origin}/h", BODY, SECRET, max_attempts=3, backoff_s=0.05, timeout_s=2.0) == (True, 1, "")
    time.sleep(0.2)
    assert len(rx.receipts) == 2 and len(rx.processed) == 1  # same delivery id: the receiver drops the repeat


def test_receiver_rejects_a_wrong_signature(make_receiver) -> None:
    rx = make_receiver()
    rx.secret = "the receiver's real secret"
    ok, attempts, error = deliver(f"{rx.origin}/h", BODY, "a guessed secret", max_attempts=2, backoff_s=0.01,
                                  timeout_s=2.0)
    assert (ok, attempts, error) == (False, 2, "HTTP 401")
    assert rx.receipts and not any(r.signed for r in rx.receipts) and not rx.processed


def test_redirect_to_another_origin_is_refused(make_receiver) -> None:
    rx, elsewhere = make_receiver(), make_receiver()
    rx.mode, rx.redirect_to = "redirect", f"{elsewhere.origin}/steal"
    url = check_webhook(f"{rx.origin}/h", [rx.origin])  # only the first receiver is allowed
    backoff = Backoff()
    ok, attempts, error = deliver(url, BODY, SECRET, max_attempts=4, backoff_s=0.05, timeout_s=2.0, sleep=backoff)
    assert not ok and attempts == 1 and "307" in error and "refused" in error  # a redirect is final: no retry
    assert backoff.delays == []
    time.sleep(0.2)
    assert len(rx.receipts) == 1 and not rx.processed
    assert elsewhere.receipts == []  # nothing ever reached the redirect's target


def test_nothing_sent_to_an_origin_off_the_allowlist(make_receiver) -> None:
    allowed, other = make_receiver(), make_receiver()
    allowlist = [allowed.origin]
    host, port = other.server.server_address[:2]
    for url in (f"{other.origin}/h", f"http://localhost:{port}/h", f"https://{host}:{port}/h",
                f"http://{allowed.origin.removeprefix('http://')}@{host}:{port}/h",
                f"{allowed.origin}\t@{host}:{port}/h", f" {other.origin}/h"):
        with pytest.raises(PolicyError):
            check_webhook(url, allowlist)
    for url in (f"{allowed.origin}/h", f"{allowed.origin}/h?x=1#@{host}:{port}"):
        assert deliver(check_webhook(url, allowlist), BODY, SECRET, max_attempts=1, backoff_s=0.01, timeout_s=2.0)[0]
    time.sleep(0.2)
    assert other.receipts == [] and len(allowed.receipts) == 2
