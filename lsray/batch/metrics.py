"""Prometheus metrics of the batch job.

Inside the stage actors and tasks, metrics go through ``ray.util.metrics`` and are exported by
Ray's metrics agent on every node (scrape each node's ``metrics_export_port``; Ray prefixes the
names with ``ray_``). The driver keeps the same job-level figures in a ``prometheus_client``
registry, served on ``--metrics-port`` when asked.

Names (all carry the label ``job`` = the run id):

=====================================  =========  ===========================================
name                                   type       meaning
=====================================  =========  ===========================================
``lsray_batch_clips_total``            counter    clips finished, label ``status`` (done,
                                                  skipped, error, no_face, invalid)
``lsray_batch_frames_total``           counter    frames processed, label ``stage``
                                                  (prepare, audio, sample, render, assemble)
``lsray_batch_stage_seconds``          histogram  wall seconds of one call, label ``stage``
                                                  (one clip for prepare/assemble, one shard
                                                  otherwise)
``lsray_batch_queue_depth``            gauge      work waiting, label ``queue``: ``clips``
                                                  (catalog rows not yet reported),
                                                  ``assembly`` (clips whose segments are
                                                  still arriving or being assembled)
``lsray_batch_retries_total``          counter    re-attempts of a unit of work after a
                                                  worker died, label ``stage`` (driver)
=====================================  =========  ===========================================
"""

from __future__ import annotations

from typing import Any

CLIPS = "lsray_batch_clips_total"
FRAMES = "lsray_batch_frames_total"
STAGE_SECONDS = "lsray_batch_stage_seconds"
QUEUE_DEPTH = "lsray_batch_queue_depth"
RETRIES = "lsray_batch_retries_total"
METRIC_NAMES = (CLIPS, FRAMES, STAGE_SECONDS, QUEUE_DEPTH, RETRIES)

#: Histogram buckets (seconds): from a skipped window to a long shard on CPU.
LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900]


def _strip_total(name: str) -> str:
    return name[: -len("_total")] if name.endswith("_total") else name


class StageMetrics:
    """``ray.util.metrics`` used inside a stage actor or task (exported by Ray's metrics agent)."""

    def __init__(self, stage: str, job: str) -> None:
        from ray.util.metrics import Counter, Histogram

        self.tags = {"stage": stage, "job": job}
        self.frames = Counter(FRAMES, "frames processed by a batch stage", tag_keys=("stage", "job"))
        self.seconds = Histogram(STAGE_SECONDS, "wall seconds of one batch stage call", boundaries=LATENCY_BUCKETS,
                                 tag_keys=("stage", "job"))

    def observe(self, seconds: float, frames: int) -> None:
        self.seconds.observe(seconds, tags=self.tags)
        if frames:
            self.frames.inc(frames, tags=self.tags)


class DriverMetrics:
    """The driver's view (clips by status, queue depth, retries, frames per stage), in its own
    ``prometheus_client`` registry; :meth:`serve` exposes it over HTTP on 127.0.0.1."""

    def __init__(self, job: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.job = job
        self.registry = CollectorRegistry()
        self.clips = Counter(_strip_total(CLIPS), "clips finished by status", ("status", "job"), registry=self.registry)
        self.frames = Counter(_strip_total(FRAMES), "frames processed", ("stage", "job"), registry=self.registry)
        self.seconds = Histogram(STAGE_SECONDS, "stage seconds per clip", ("stage", "job"), buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.queue = Gauge(QUEUE_DEPTH, "work waiting", ("queue", "job"), registry=self.registry)
        self.retries = Counter(_strip_total(RETRIES), "re-attempts after a worker died", ("stage", "job"),
                               registry=self.registry)
        self._server: Any = None

    def clip(self, status: str, frames: int, seconds: dict[str, float]) -> None:
        self.clips.labels(status=status, job=self.job).inc()
        if frames:
            self.frames.labels(stage="assemble", job=self.job).inc(frames)
        for stage, s in seconds.items():
            self.seconds.labels(stage=stage, job=self.job).observe(s)

    def depth(self, queue: str, value: int) -> None:
        self.queue.labels(queue=queue, job=self.job).set(value)

    def retry(self, stage: str, n: int) -> None:
        if n:
            self.retries.labels(stage=stage, job=self.job).inc(n)

    def serve(self, port: int) -> int:
        """Serve the registry on 127.0.0.1:``port`` (0 picks a free port); returns the port."""
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()
