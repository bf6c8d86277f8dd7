"""Asynchronous jobs: the deployment that takes jobs in and runs them, over the durable job store.

Why a store and leases rather than a replica's memory: the records (status, progress, result,
webhook state) must outlive any replica, and several replicas must share the work without
running a job twice. Every JobManager replica (``num_replicas`` in serve.yaml) polls the store
(:mod:`lsray.serve.store`) for claimable jobs while it has room (``max_running_jobs`` per
replica), runs each claimed job through the clip DAG while a heartbeat renews its lease and
writes progress through, and stops, publishing nothing, the moment the lease is lost (the job
was cancelled, or this replica stalled past the lease and another took it over).

Publishing: an attempt assembles into its own staging URI (``jobs/<id>/attempt-<n>.mp4``); only
the lease holder copies it to the job's ``result_uri`` (an atomic rename or S3 upload), then marks
the job done. A stale runner never overwrites a newer attempt's output and a re-run never
exposes a partial file. Webhooks are claimed in the store before sending (at most once).

Also kept here: the measured throughput behind ``/v1/estimate`` (per replica, in memory).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import time
import uuid
from typing import Any

from ray import serve

from lsray.errors import first_line
from lsray.serve.loopback import keep_replica_grpc_on_loopback
from lsray.serve.records import TERMINAL, JobRecord, JobStatus, WebhookState  # noqa: F401  (re-exported)
from lsray.serve.settings import ServeSettings, Throughput
from lsray.serve.store import Claim, JobStore, StoreRefused

Overloaded = StoreRefused  # the name the ingress catches: 503 (everyone's queue) or 429 (a tenant's quota)


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
        self.store = JobStore(self.settings.job_store.resolved_url())
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # this replica's leases
        self.tasks: dict[str, asyncio.Task] = {}
        self.throughput = ThroughputModel(self.settings.throughput)
        self.tenants = {t.name: t for t in self.settings.resolved_tenants()}
        self.wake = asyncio.Event()
        self.poller = asyncio.get_running_loop().create_task(self._poll())  # runs without any request

    async def check_health(self) -> None:
        """Serve restarts a replica whose poller died (it would never run a job again)."""
        if self.poller.done():
            raise RuntimeError(f"job poller stopped: {self.poller.exception() if not self.poller.cancelled() else 'cancelled'}")

    def _db(self, fn, *args, **kwargs):
        return asyncio.to_thread(fn, *args, **kwargs)

    # -- submission ------------------------------------------------------------------------
    async def admit(self, tenant: str) -> int:
        """Count one submitting request; 0 = go, else the Retry-After of the tenant's rate limit."""
        rate = self.tenants[tenant].rate_per_minute if tenant in self.tenants else None
        return 0 if rate is None else await self._db(self.store.admit, tenant, rate)

    async def submit(self, items: list[dict], tenant: str) -> list[dict]:
        """Queue jobs for ``tenant``; each item: video, audio (URIs staged under ``staged``),
        staged, options (DubOptions dict), inputs (what the client named), webhook_url, clip.
        All or none: :class:`Overloaded` (503) past max_pending_jobs, (429) past the tenant's quota."""
        lim = self.settings.limits
        records, works = [], []
        for item in items:
            hook = WebhookState(url=item["webhook_url"]) if item.get("webhook_url") else None
            records.append(JobRecord(id=uuid.uuid4().hex, inputs=item.get("inputs", {}), options=item["options"],
                                     webhook=hook))
            works.append({k: item[k] for k in ("video", "audio", "options", "staged", "clip") if k in item})
        quota = self.tenants[tenant].max_active_jobs if tenant in self.tenants else None
        await self._db(self.store.add, records, works, tenant, max_pending=lim.max_pending_jobs,
                       max_active_for_tenant=quota, retry_after=lim.retry_after_s)
        self.wake.set()
        await self._db(self.store.forget_old, lim.max_jobs_kept)
        return [r.model_dump() for r in records]

    # -- queries (tenant None: an admin, sees every job) ----------------------------------------
    async def get(self, job_id: str, tenant: str | None) -> dict | None:
        rec = await self._db(self.store.get, job_id, tenant)
        return rec.model_dump() if rec else None

    async def list(self, offset: int, limit: int, status: str | None = None, tenant: str | None = None) -> dict:
        return await self._db(self.store.list, tenant, offset, limit, status)

    async def stats(self) -> dict[str, int]:
        return await self._db(self.store.stats)

    async def cancel(self, job_id: str, tenant: str | None) -> dict | None:
        rec = await self._db(self.store.cancel, job_id, tenant)
        if rec is None:
            return None
        task = self.tasks.get(job_id)  # ours: stop now (another replica's runner stops at its next renewal)
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        elif rec.status == "cancelled":
            work = await self._db(self.store.work, job_id)
            if work and rec.attempt == 0:  # never started: nobody else will clean its inputs
                await self._db(_delete_prefix, work["staged"])
        return rec.model_dump()

    # -- throughput ----------------------------------------------------------------------------
    def observe(self, timings: dict, clip: dict) -> None:
        self.throughput.observe(timings, **clip)

    def estimate(self, clip: dict) -> dict:
        return self.throughput.estimate(**clip)

    # -- running -------------------------------------------------------------------------------
    async def _poll(self) -> None:
        """Claim jobs while there is room; send due webhooks. Errors (the database away for a
        moment) are retried at the next tick, never fatal."""
        cfg = self.settings.job_store
        while True:
            try:
                while len(self.tasks) < self.settings.limits.max_running_jobs:
                    claim, gave_up = await self._db(self.store.claim, self.owner, cfg.lease_s, cfg.max_attempts)
                    for job_id in gave_up:
                        work = await self._db(self.store.work, job_id)
                        await self._db(_delete_prefix, work["staged"])
                    if claim is None:
                        break
                    self.tasks[claim.record.id] = asyncio.create_task(self._run(claim))
                for job_id in await self._db(self.store.webhooks_due):
                    rec = await self._db(self.store.claim_webhook, job_id, self.settings.webhooks.send_window_s())
                    if rec is not None:
                        asyncio.create_task(self._notify(rec))
            except Exception as exc:  # noqa: BLE001
                print(f"lsray job poller: {type(exc).__name__}: {exc}", flush=True)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), cfg.poll_s)
            except asyncio.TimeoutError:
                pass

    async def _heartbeat(self, claim: Claim, runner: asyncio.Task, progress: dict, state: dict) -> None:
        """Renew the lease every lease_s/3 with the latest progress; cancel the run when it is lost."""
        cfg = self.settings.job_store
        while True:
            await asyncio.sleep(cfg.lease_s / 3)
            try:
                held = await self._db(self.store.renew, claim.record.id, self.owner, claim.attempt, cfg.lease_s,
                                      **progress)
            except Exception:  # noqa: BLE001  the store away: keep running, the lease may still hold
                continue
            if not held:
                state["lost"] = True
                runner.cancel()
                return

    async def _run(self, claim: Claim) -> None:
        try:
            await self._attempt(claim)
        finally:
            self.tasks.pop(claim.record.id, None)
            self.wake.set()

    async def _attempt(self, claim: Claim) -> None:
        from lsray import storage
        from lsray.pipeline.flow import ClipFailed, default_staging_root
        from lsray.pipeline.options import DubOptions
        from lsray.pipeline.records import ClipSpec
        from lsray.serve.dag import dub_clip

        job_id, attempt, work = claim.record.id, claim.attempt, claim.work
        final = storage.join(self.settings.output_root, f"{job_id}.mp4")
        scratch = storage.join(self.settings.staging_root or default_staging_root(), "jobs", job_id)
        attempt_uri = storage.join(scratch, f"attempt-{attempt}.mp4")  # this attempt's own: never the final URI
        done_so_far: dict[str, Any] = {}  # progress, written through at each renewal
        state: dict[str, bool] = {}  # "lost": the lease went to someone else (or the job was cancelled)
        heartbeat = asyncio.create_task(self._heartbeat(claim, asyncio.current_task(), done_so_far, state))
        fields: dict[str, Any] | None

        def progress(done: int, total: int) -> None:
            done_so_far.update(frames_done=done, frames_total=total, progress=round(done / total, 4) if total else 0.0)

        try:
            spec = ClipSpec(f"{job_id}-{attempt}", work["video"], work["audio"], attempt_uri, DubOptions(**work["options"]))
            result = await dub_clip(self.handles, spec, max_in_flight=self.settings.limits.max_shards_in_flight,
                                    progress=progress)
            # Publish only while holding the lease: renew first, then copy to the final URI atomically.
            if not await self._db(self.store.renew, job_id, self.owner, attempt, self.settings.job_store.lease_s):
                state["lost"] = True
                raise asyncio.CancelledError
            await self._db(_publish, result.output, final)
            fields = dict(status="done", result_uri=final, warnings=list(result.warnings), progress=1.0,
                          frames_done=done_so_far.get("frames_total") or result.frames,
                          frames_total=done_so_far.get("frames_total") or result.frames,
                          voice=result.voice, sampling=result.sampling)
            if "clip" in work:
                self.throughput.observe(result.timings, **work["clip"])
        except asyncio.CancelledError:  # cancelled in the store already, lease lost, or this replica stopping:
            fields = None               # write nothing (a stopping replica's job is re-run once its lease expires)
        except ClipFailed as exc:
            fields = dict(status="failed", error=str(exc).splitlines()[-1] if str(exc) else "failed")
        except Exception as exc:  # noqa: BLE001 - keep serving whatever happened
            if _machinery_failed(exc):
                # A stage replica died under this attempt: not the clip's fault. Give the attempt
                # up so the job runs again (a new attempt, up to max_attempts), as after a lost runner.
                fields = None
                await self._db(self.store.release, job_id, self.owner, attempt, first_line(exc))
            else:  # a bug: record it
                fields = dict(status="failed",
                              error=f"internal error: {type(exc).__name__}: {str(exc).splitlines()[-1] if str(exc) else ''}")
        finally:
            heartbeat.cancel()
        ended = fields is not None and not state.get("lost") and await self._db(self.store.finish, job_id, self.owner, attempt, **fields)
        rec = await self._db(self.store.get, job_id)
        if ended or (rec is not None and rec.status in TERMINAL):  # this job is over: its files can go
            await self._db(_delete_prefix, work["staged"])
        await self._db(_delete_prefix, scratch) if ended else await self._db(_delete_uri, attempt_uri)
        self.wake.set()  # its webhook is due now

    async def _notify(self, rec: JobRecord) -> None:
        """Send a claimed webhook (this replica won it in the store: nobody else sends it)."""
        from lsray.serve.security import PolicyError, check_webhook
        from lsray.serve.webhooks import deliver

        hooks = self.settings.webhooks
        secret = hooks.resolved_secret()
        try:
            check_webhook(rec.webhook.url, hooks.allowlist)  # the allowlist may have changed since submission
        except PolicyError as exc:
            return await self._db(self.store.webhook_sent, rec.id, False, 0, str(exc))
        if not secret:
            return await self._db(self.store.webhook_sent, rec.id, False, 0, "no webhook secret configured")
        body = json.dumps(rec.model_dump(exclude={"webhook"}), sort_keys=True).encode()
        ok, attempts, error = await asyncio.to_thread(
            deliver, rec.webhook.url, body, secret, max_attempts=hooks.max_attempts, backoff_s=hooks.backoff_s,
            timeout_s=hooks.timeout_s)
        await self._db(self.store.webhook_sent, rec.id, ok, attempts, error or None)


def _machinery_failed(exc: BaseException) -> bool:
    """Whether an attempt failed because a Ray process under it went away (a replica killed or
    lost with its node), as opposed to an error in lsray's own code, which a re-run would repeat."""
    import ray
    from ray.serve.exceptions import RayServeException

    if isinstance(exc, ray.exceptions.RayTaskError):  # an exception raised by code inside a replica
        return False
    return isinstance(exc, (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
                            ray.exceptions.ObjectLostError, RayServeException))


def _publish(attempt_uri: str, final: str) -> None:
    """Copy a finished attempt's output to the job's result URI in one atomic step."""
    from lsray import storage

    with storage.local_copy(attempt_uri) as path:
        storage.atomic_upload(path, final)


def _delete_prefix(uri: str) -> None:
    from lsray import storage

    storage.delete_prefix(uri)


def _delete_uri(uri: str) -> None:
    from lsray import storage

    storage.delete_uris([uri])
