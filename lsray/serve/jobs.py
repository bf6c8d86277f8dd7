"""Asynchronous jobs: one deployment that holds every job's record and runs the jobs.

Why one replica holding state: job records must survive across requests and be visible to
every ingress replica; a single-replica deployment is the simplest place that is both.
Limits (documented, by design for this issue): records live in that replica's memory, so a
replica restart (crash, redeploy) loses them and any running job; it does not scale out
(``num_replicas: 1``, not autoscaled), although the heavy work it drives runs on the stage
deployments which do. At most ``max_pending_jobs`` jobs queued + running (more: 503) and
``max_jobs_kept`` finished records (oldest dropped).

Also kept here, for the same reason: the measured throughput behind ``/v1/estimate``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field
from ray import serve

from lsray.serve.loopback import keep_replica_grpc_on_loopback
from lsray.serve.settings import ServeSettings, Throughput


JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
TERMINAL = ("done", "failed", "cancelled")


class WebhookState(BaseModel):
    url: str
    delivered: bool = False
    attempts: int = 0
    error: str | None = None


class JobRecord(BaseModel):
    id: str
    status: JobStatus = "queued"
    progress: float = 0.0
    frames_done: int = 0
    frames_total: int | None = None
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    result_uri: str | None = None
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    voice: str | None = Field(default=None, description="voice backend the dub was re-voiced with (off = as given)")
    sampling: dict[str, Any] | None = Field(default=None, description="sampler, steps, UNet calls per window, timesteps")
    webhook: WebhookState | None = None


class Overloaded(Exception):
    pass


# ------------------------------------------------------------------------------------------
# throughput model for /v1/estimate
# ------------------------------------------------------------------------------------------
def _units(frames: int, width: int, height: int, resolution: int, steps: int, cfg: bool) -> dict[str, float]:
    """What each stage's time scales with, for one clip."""
    mp = width * height / 1e6
    area = (resolution / 256) ** 2
    windows = math.ceil(frames / 16)
    return {"face": frames * mp, "audio": frames, "unet": windows * steps * (2 if cfg else 1) * area,
            "vae": frames * area, "encode": frames * mp}


class ThroughputModel:
    FIELDS = {"face": "face_s_per_megapixel_frame", "audio": "audio_s_per_frame", "unet": "unet_s_per_window_step_256",
              "vae": "vae_s_per_frame_256", "encode": "encode_s_per_megapixel_frame"}

    def __init__(self, seed: Throughput, alpha: float = 0.3) -> None:
        self.rate = {k: getattr(seed, f) for k, f in self.FIELDS.items()}
        self.alpha, self.samples = alpha, 0

    def observe(self, timings: dict[str, float], **clip) -> None:
        units = _units(**clip)
        for key, n in units.items():
            if n > 0 and key in timings:
                measured = timings[key] / n
                self.rate[key] = measured if self.samples == 0 else (1 - self.alpha) * self.rate[key] + self.alpha * measured
        self.samples += 1

    def estimate(self, **clip) -> dict[str, Any]:
        units = _units(**clip)
        per_stage = {k: self.rate[k] * n for k, n in units.items()}
        return {"seconds": sum(per_stage.values()), "per_stage": per_stage, "measured_clips": self.samples}


# ------------------------------------------------------------------------------------------
# the deployment
# ------------------------------------------------------------------------------------------
@serve.deployment
class JobManager:
    def __init__(self, settings: dict, prepare, audio, sample, render) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        from lsray.serve.dag import StageHandles

        self.settings = ServeSettings(**settings)
        self.settings.apply_storage()
        self.handles = StageHandles(prepare, audio, sample, render)
        self.jobs: dict[str, JobRecord] = {}
        self.work: dict[str, tuple[dict, str]] = {}  # id -> (spec fields, staged inputs' prefix)
        self.tasks: dict[str, asyncio.Task] = {}
        self.running = asyncio.Semaphore(self.settings.limits.max_running_jobs)
        self.throughput = ThroughputModel(self.settings.throughput)

    # -- submission ------------------------------------------------------------------------
    def active(self) -> int:
        return sum(1 for j in self.jobs.values() if j.status not in TERMINAL)

    async def submit(self, items: list[dict]) -> list[dict]:
        """Queue jobs; each item: video, audio (URIs staged under ``staged``), staged,
        options (DubOptions dict), inputs (what the client named), webhook_url. All or none."""
        if self.active() + len(items) > self.settings.limits.max_pending_jobs:
            raise Overloaded(f"{self.active()} jobs pending; the limit is {self.settings.limits.max_pending_jobs}")
        records = []
        for item in items:
            job_id = uuid.uuid4().hex
            hook = WebhookState(url=item["webhook_url"]) if item.get("webhook_url") else None
            rec = JobRecord(id=job_id, inputs=item.get("inputs", {}), options=item["options"], webhook=hook)
            self.jobs[job_id] = rec
            self.work[job_id] = (item, item["staged"])
            self.tasks[job_id] = asyncio.create_task(self._run(job_id))
            records.append(rec.model_dump())
        self._forget_old()
        return records

    def _forget_old(self) -> None:
        excess = len(self.jobs) - self.settings.limits.max_jobs_kept
        for job_id in [j for j, r in self.jobs.items() if r.status in TERMINAL][: max(0, excess)]:
            del self.jobs[job_id]

    # -- queries -----------------------------------------------------------------------------
    def get(self, job_id: str) -> dict | None:
        rec = self.jobs.get(job_id)
        return rec.model_dump() if rec else None

    def list(self, offset: int, limit: int, status: str | None = None) -> dict:
        recs = [r for r in self.jobs.values() if status is None or r.status == status]
        recs.sort(key=lambda r: r.created_at, reverse=True)  # newest first
        page = recs[offset: offset + limit]
        nxt = offset + limit if offset + limit < len(recs) else None
        return {"items": [r.model_dump() for r in page], "total": len(recs), "offset": offset, "limit": limit, "next_offset": nxt}

    def stats(self) -> dict[str, int]:
        counts = {s: 0 for s in ("queued", "running", "done", "failed", "cancelled")}
        for r in self.jobs.values():
            counts[r.status] += 1
        return counts

    async def cancel(self, job_id: str) -> dict | None:
        rec = self.jobs.get(job_id)
        if rec is None:
            return None
        task = self.tasks.get(job_id)
        if rec.status not in TERMINAL and task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        return rec.model_dump()

    # -- throughput ----------------------------------------------------------------------------
    def observe(self, timings: dict, clip: dict) -> None:
        self.throughput.observe(timings, **clip)

    def estimate(self, clip: dict) -> dict:
        return self.throughput.estimate(**clip)

    # -- running -------------------------------------------------------------------------------
    async def _run(self, job_id: str) -> None:
        from lsray import storage
        from lsray.pipeline.options import DubOptions
        from lsray.pipeline.records import ClipSpec
        from lsray.serve.dag import dub_clip
        from lsray.pipeline.flow import ClipFailed

        rec = self.jobs[job_id]
        item, staged = self.work.pop(job_id)
        try:
            async with self.running:
                rec.status, rec.started_at = "running", time.time()
                options = DubOptions(**item["options"])
                uri = storage.join(self.settings.output_root, f"{job_id}.mp4")  # assemble publishes it atomically
                spec = ClipSpec(job_id, item["video"], item["audio"], uri, options)

                def progress(done: int, total: int) -> None:
                    rec.frames_done, rec.frames_total = done, total
                    rec.progress = round(done / total, 4) if total else 0.0

                result = await dub_clip(self.handles, spec, max_in_flight=self.settings.limits.max_shards_in_flight,
                                        progress=progress)
                rec.result_uri, rec.warnings, rec.progress = result.output, list(result.warnings), 1.0
                rec.voice, rec.sampling = result.voice, result.sampling
                rec.status = "done"
                if "clip" in item:
                    self.throughput.observe(result.timings, **item["clip"])
        except asyncio.CancelledError:
            rec.status, rec.error = "cancelled", "cancelled by request"
        except ClipFailed as exc:
            rec.status, rec.error = "failed", str(exc).splitlines()[-1] if str(exc) else "failed"
        except Exception as exc:  # a bug or an infrastructure failure: record it, keep serving
            rec.status, rec.error = "failed", f"internal error: {type(exc).__name__}: {str(exc).splitlines()[-1] if str(exc) else ''}"
        finally:
            rec.finished_at = time.time()
            self.tasks.pop(job_id, None)
            await asyncio.to_thread(storage.delete_prefix, staged)
        if rec.webhook is not None and rec.status in ("done", "failed"):
            await self._notify(rec)

    async def _notify(self, rec: JobRecord) -> None:
        from lsray.serve.security import PolicyError, check_webhook
        from lsray.serve.webhooks import deliver

        hooks = self.settings.webhooks
        secret = hooks.resolved_secret()
        try:
            check_webhook(rec.webhook.url, hooks.allowlist)  # the allowlist may have changed since submission
        except PolicyError as exc:
            rec.webhook.error = str(exc)
            return
        if not secret:
            rec.webhook.error = "no webhook secret configured"
            return
        body = json.dumps(rec.model_dump(exclude={"webhook"}), sort_keys=True).encode()
        ok, attempts, error = await asyncio.to_thread(
            deliver, rec.webhook.url, body, secret, max_attempts=hooks.max_attempts, backoff_s=hooks.backoff_s,
            timeout_s=hooks.timeout_s)
        rec.webhook.delivered, rec.webhook.attempts, rec.webhook.error = ok, attempts, error or None
