"""What the live-service tests share (tests/test_serve.py, tests/test_job_store.py): the API key,
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


def job_service_config(*, bundle, inputs, outputs, staging, db, hook_port: int, key: str = KEY, secret: str = SECRET,
                       tenants: list[dict] | None = None, lease_s: float = 6, max_attempts: int = 3,
                       limits: dict | None = None) -> dict:
    """The job service as tests/test_job_store.py's ``live`` fixture and benchmarks/serve_durability.py
    run it: deployments/serve.yaml (JobManager x2) on a SQLite store at ``db``, a short lease, one
    replica of every other deployment, 1 torch thread, ultrafast encodes, signed webhooks to the
    receiver on 127.0.0.1:``hook_port``, HTTP on a free loopback port."""
    from lsray.serve import deploy

    one = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 2}}
    return deploy.with_overrides(
        deploy.load_config(),
        http={"host": "127.0.0.1", "port": free_port()},
        args={
            "bundle": str(bundle), "storage_roots": [str(inputs)], "api_keys": [key], "tenants": tenants or [],
            "job_store": {"url": f"sqlite:///{db}", "lease_s": lease_s, "max_attempts": max_attempts, "poll_s": 0.3},
            "output_root": str(outputs), "staging_root": str(staging), "torch_threads": 1,
            "encode_preset": "ultrafast",
            "limits": limits or {"max_running_jobs": 1, "max_pending_jobs": 8, "retry_after_s": 2},
            "webhooks": {"allowlist": [f"http://127.0.0.1:{hook_port}"], "allow_http": True,
                         "secret": secret, "backoff_s": 0.2, "max_attempts": 3},
        },
        deployments={"Ingress": one, "PrepareDeployment": one, "AudioDeployment": one, "SampleDeployment": one,
                     "RenderDeployment": one},
    )


def lease_owner_pid(db_url: str, job_id: str) -> int | None:
    """The process id of the JobManager replica holding ``job_id``'s lease (owner ``host:pid:tag``)."""
    import sqlalchemy as sa

    from lsray.serve.store import JobStore, jobs

    store = JobStore(db_url)
    try:
        with store.engine.connect() as conn:
            owner = conn.execute(sa.select(jobs.c.lease_owner).where(jobs.c.id == job_id)).scalar_one()
    finally:
        store.dispose()
    return int(owner.split(":")[1]) if owner else None


def replica_actors(deployment: str, pid: int | None = None, tries: int = 20) -> list[str]:
    """Names (namespace "serve") of the live replica actors of ``deployment``, or only the one in
    process ``pid``; kill one with ``ray.kill(ray.get_actor(name, namespace="serve"), no_restart=False)``."""
    import time

    import ray
    from ray.util.state import list_actors

    gcs = ray.get_runtime_context().gcs_address  # this cluster's, not the newest one on the machine
    found: list[str] = []
    for _ in range(tries):  # the state API may answer partially on a loaded machine: ask again
        found = [a.name for a in list_actors(address=gcs, filters=[("state", "=", "ALIVE")], limit=10_000)
                 if (a.name or "").startswith("SERVE_REPLICA::") and f"#{deployment}#" in a.name
                 and (pid is None or a.pid == pid)]
        if found:
            break
        time.sleep(1)
    return found
