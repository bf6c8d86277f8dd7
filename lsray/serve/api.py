"""The FastAPI ingress: the only deployment that speaks HTTP.

Every route but ``/healthz``, ``/docs`` and ``/openapi.json`` needs ``Authorization: Bearer
<key>`` (401 otherwise); ``/metrics`` too unless ``public_metrics``. The open ones reveal no
data: liveness probes and the API description. Status codes: 400 bad request / URI outside the
storage roots / webhook off the allowlist, 401 no valid key, 404 unknown job or missing input
object, 413 too large (body, frame size, duration, or too long for the synchronous route), 415
not media, 422 invalid options or a clip the pipeline refused, 429 + Retry-After past the
tenant's rate (submitting routes) or active-job quota, 503 + Retry-After overloaded. Each route
declares the codes it can answer, with their body and headers, through :mod:`lsray.serve.contract`.

Tenancy: a key belongs to a tenant (``tenants`` in the settings; plain ``api_keys`` form the
tenant ``default``). A tenant sees and cancels its own jobs only; another tenant's job is a 404
(indistinguishable from no job) and absent from listings. An admin tenant sees every job.
"""


import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray import serve

from lsray import storage
from lsray.pipeline.options import DubOptions
from lsray.serve import contract
from lsray.serve.contract import errors
from lsray.serve.inputs import InputError, check_media, fetch_uri, parse_multipart, read_body
from lsray.serve.jobs import Overloaded
from lsray.serve.loopback import keep_replica_grpc_on_loopback
from lsray.serve.security import PolicyError, check_webhook, tenant_for
from lsray.serve.settings import DEFAULT_TENANT, ServeSettings, Tenant


# ------------------------------------------------------------------------------------------
# request bodies (JSON forms; the multipart form of /v1/dub and /v1/jobs has the same fields)
# ------------------------------------------------------------------------------------------
class DubRequest(BaseModel):
    """A clip named by storage URIs (under the configured storage roots)."""

    model_config = ConfigDict(extra="forbid")

    video: str = Field(description="source video URI (path, file:// or s3:// under a storage root)")
    audio: str = Field(description="dubbed audio URI")
    options: DubOptions = Field(default_factory=DubOptions)
    webhook_url: str | None = Field(default=None, description="jobs only: POSTed the signed job record when it ends")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clips: list[DubRequest]


class EstimateRequest(BaseModel):
    """A clip described, not sent. The bounds are physical sanity (a day, 16K, 1000 fps), not the
    service's limits: an estimate may be asked for a clip too long to submit, but never for one
    whose frame count overflows."""

    model_config = ConfigDict(extra="forbid")

    duration_s: float = Field(gt=0, le=86_400)
    width: int = Field(gt=0, le=16_384)
    height: int = Field(gt=0, le=16_384)
    fps: float = Field(default=25.0, gt=0, le=1000)
    model: str | None = None
    options: DubOptions = Field(default_factory=DubOptions)


class MP4Response(Response):
    """/v1/dub's answer class, so that its document says video/mp4 (FastAPI would say JSON)."""

    media_type = "video/mp4"


# Response headers of a synchronous dub (documented on /v1/dub's 200).
_DUB_HEADERS = {
    name: {"description": why, "required": True, "schema": schema}
    for name, why, schema in (
        ("X-Lsray-Status", "the clip's outcome (done, or done with warnings)", {"type": "string"}),
        ("X-Lsray-Frames", "frames in the output", {"type": "integer", "minimum": 0}),
        ("X-Lsray-No-Face-Frames", "frames left as they were (no face found)", {"type": "integer", "minimum": 0}),
        ("X-Lsray-Warnings", "warnings, a JSON list of strings", {"type": "string"}),
        ("X-Lsray-Voice", "the voice backend used, or off", {"type": "string"}),
        ("X-Lsray-Sampling", "the resolved sampler settings, a JSON object", {"type": "string"}),
        ("X-Lsray-Seconds", "where the time went, a JSON object: the clip's busy seconds per step (face, audio, "
         "unet, vae, encode; summed over shards), 'request' (reading and checking the upload) and 'total' "
         "(this request on the server)", {"type": "string"}),
    )
}

# ------------------------------------------------------------------------------------------
# metrics (per ingress replica)
# ------------------------------------------------------------------------------------------
REGISTRY = CollectorRegistry()
REQUESTS = Counter("lsray_http_requests_total", "HTTP requests by route and status", ["route", "code"], registry=REGISTRY)
DUB_SECONDS = Histogram("lsray_dub_seconds", "wall time of synchronous dubs", registry=REGISTRY,
                        buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
INFLIGHT = Gauge("lsray_sync_dubs_inflight", "synchronous dubs running in this replica", registry=REGISTRY)
REJECTED = Counter("lsray_overload_rejections_total", "requests answered 503 by admission control", ["route"], registry=REGISTRY)
JOBS = Gauge("lsray_jobs", "jobs by status", ["status"], registry=REGISTRY)

app = FastAPI(title="lsray", version="0.1.0",
              description="Lip-sync dubbing: send a video and a dubbed track, get the video back with lips that follow it.")
contract.install(app, DubRequest, BatchRequest, EstimateRequest)


@app.middleware("http")
async def _count(request: Request, call_next):
    response = await call_next(request)
    route = request.scope.get("route")
    REQUESTS.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
    return response


def _suffix(name: str) -> str:
    """A safe file extension from a client-given name (ffmpeg likes one; nothing else is kept)."""
    ext = Path(name.replace("\\", "/")).suffix[1:9]
    return "." + ext.lower() if ext.isalnum() else ""


def _overloaded(route: str, retry_after: int, why: str) -> HTTPException:
    REJECTED.labels(route).inc()
    return HTTPException(503, detail=f"overloaded: {why}", headers={"Retry-After": str(retry_after)})


@serve.deployment
@serve.ingress(app)
class Ingress:
    def __init__(self, settings: dict, prepare, audio, sample, render, jobs) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        from lsray.bundle.config import CONFIG_FILE, BundleConfig
        from lsray.bundle.load import resolve_bundle
        from lsray.serve.dag import StageHandles

        self.settings = ServeSettings(**settings)
        self.settings.apply_storage()
        self.tenants = self.settings.resolved_tenants()
        self.handles = StageHandles(prepare, audio, sample, render)
        self.jobs = jobs
        self.inflight = 0
        self.bundle_config = BundleConfig.read(resolve_bundle(self.settings.bundle) / CONFIG_FILE)
        base = Path(tempfile.gettempdir()) / "lsray-serve" / "requests"  # this replica's own scratch
        base.mkdir(parents=True, exist_ok=True)
        self.request_root = base
        from lsray.pipeline.flow import default_staging_root

        self.staging_root = self.settings.staging_root or default_staging_root()

    # -- helpers -------------------------------------------------------------------------------
    def _auth(self, request: Request) -> Tenant:
        """The caller's tenant; 401 unless ``Authorization: Bearer <valid key>``. Every protected
        route calls this first and reads its body only afterwards, so callers without a key learn
        nothing. Auth disabled: everyone is the admin tenant ``default``."""
        if self.settings.auth == "disabled":
            return Tenant(name=DEFAULT_TENANT, admin=True)
        tenant = tenant_for(request.headers.get("authorization"), self.tenants)
        if tenant is None:
            raise HTTPException(401, detail="missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
        return tenant

    @staticmethod
    def _sees(tenant: Tenant) -> str | None:
        """Whose jobs ``tenant`` sees: its own, or (admin) everyone's."""
        return None if tenant.admin else tenant.name

    async def _submitter(self, request: Request, route: str) -> Tenant:
        """Auth, then the tenant's rate limit on a submitting route (429 + Retry-After), counted in
        the job store so every ingress replica shares one count."""
        tenant = self._auth(request)
        if tenant.rate_per_minute is not None:
            wait = await self.jobs.admit.remote(tenant.name)
            if wait:
                REJECTED.labels(route).inc()
                raise HTTPException(429, detail=f"rate limit: tenant {tenant.name!r} may submit "
                                                f"{tenant.rate_per_minute} requests per minute",
                                    headers={"Retry-After": str(wait)})
        return tenant

    async def _json(self, request: Request, model: type[BaseModel]) -> Any:
        body = await read_body(request, self.settings.limits.max_upload_bytes)
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(422, f"invalid request: {err['msg']} at {list(err['loc'])}") from None

    def _webhook(self, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            return check_webhook(url, self.settings.webhooks.allowlist)
        except PolicyError as exc:
            raise InputError(400, str(exc)) from None

    async def _clip_from(self, fields: DubRequest | None, files: dict | None, req_dir: Path) -> dict:
        """Localise one clip's inputs into ``req_dir`` and check them; the job/dub item dict."""
        lim = self.settings.limits
        if files is not None:
            for name in ("video", "audio"):
                if name not in files or not files[name][1]:
                    raise InputError(400, f"multipart field {name!r} (a file) is required")
            try:
                options = DubOptions(**json.loads(files["options"][1] or b"{}")) if "options" in files else DubOptions()
            except (ValueError, TypeError) as exc:
                raise InputError(422, f"invalid options: {exc}") from None
            webhook = files["webhook_url"][1].decode() if "webhook_url" in files else None
            inputs = {k: f"upload:{files[k][0] or k}" for k in ("video", "audio")}
            paths = {}
            for name in ("video", "audio"):
                suffix = _suffix(files[name][0] or "")
                paths[name] = req_dir / f"{name}{suffix}"
                paths[name].write_bytes(files[name][1])
        else:
            options, webhook = fields.options, fields.webhook_url
            inputs = {"video": fields.video, "audio": fields.audio}
            paths = {}
            for name in ("video", "audio"):
                uri = inputs[name]
                suffix = _suffix(uri)
                paths[name] = await asyncio.to_thread(fetch_uri, uri, self.settings.storage_roots,
                                                      req_dir / f"{name}{suffix}", lim.max_upload_bytes)
        webhook = self._webhook(webhook)
        video = await asyncio.to_thread(check_media, paths["video"], "video", lim)
        await asyncio.to_thread(check_media, paths["audio"], "audio", lim)
        clip = self._clip_units(options, video.duration, video.fps or 25, video.width, video.height)
        # Hand the checked inputs over through staging: the prepare replica may be on another node.
        staged = storage.join(self.staging_root, "requests", req_dir.name)
        uris = {}
        for name in ("video", "audio"):
            uris[name] = storage.join(staged, paths[name].name)
            await asyncio.to_thread(storage.atomic_upload, paths[name], uris[name])
        return {"video": uris["video"], "audio": uris["audio"], "options": options.model_dump(exclude_unset=True),
                "inputs": inputs, "webhook_url": webhook, "staged": staged, "duration": video.duration, "clip": clip}

    def _clip_units(self, options: DubOptions, duration: float, fps: float, width: int, height: int) -> dict:
        """What the throughput model needs about a clip, with its settings resolved (422 when
        the bundle cannot honour them, e.g. LCM on a bundle with no student)."""
        from lsray.pipeline.options import OptionError

        try:
            settings = options.resolve(self.bundle_config)
        except OptionError as exc:
            raise InputError(422, str(exc)) from None
        return {"frames": int(round(duration * fps)), "width": width, "height": height,
                "resolution": settings.resolution, "steps": settings.steps,
                "cfg": settings.sampler != "lcm" and settings.guidance > 1.0}

    async def _read_clip(self, request: Request, req_dir: Path) -> dict:
        body = await read_body(request, self.settings.limits.max_upload_bytes)
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            files = await asyncio.to_thread(parse_multipart, ctype, body)
            return await self._clip_from(None, files, req_dir)
        if ctype.startswith("application/json"):
            try:
                fields = DubRequest.model_validate_json(body)
            except ValidationError as exc:
                raise InputError(422, f"invalid request: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from None
            return await self._clip_from(fields, None, req_dir)
        raise InputError(415, "send multipart/form-data (video, audio files) or application/json (storage URIs)")

    def _new_request_dir(self) -> Path:
        d = self.request_root / uuid.uuid4().hex
        d.mkdir(parents=True)
        return d

    # -- open routes ------------------------------------------------------------------------------
    @app.get("/healthz", summary="liveness (no key needed)", responses=errors())
    async def healthz(self) -> dict:
        return {"status": "ok", "model": self.settings.model_name, "sync_dubs_inflight": self.inflight}

    @app.get("/metrics", summary="Prometheus metrics of this ingress replica (+ job counts)",
             response_class=PlainTextResponse, responses=errors(401))
    async def metrics(self, request: Request) -> Response:
        if not self.settings.public_metrics:
            self._auth(request)
        try:
            for status, n in (await self.jobs.stats.remote()).items():
                JOBS.labels(status).set(n)
        except Exception:  # metrics must answer even when the jobs deployment does not
            pass
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # -- dubbing ---------------------------------------------------------------------------------
    @app.post("/v1/dub", summary="dub a short clip and return the MP4", openapi_extra=contract.media_body(DubRequest),
              response_class=MP4Response, responses={
                  200: {"description": "the dubbed video", "headers": _DUB_HEADERS,
                        "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}},
                  **errors(400, 401, 404, 413, 415, 422, 429, 503)})
    async def dub(self, request: Request) -> Response:
        from lsray.pipeline.flow import ClipFailed
        from lsray.pipeline.records import ClipSpec
        from lsray.serve.dag import dub_clip

        await self._submitter(request, "/v1/dub")
        lim = self.settings.limits
        if self.inflight >= lim.max_inflight_dubs:
            raise _overloaded("/v1/dub", lim.retry_after_s, f"{self.inflight} dubs in flight")
        self.inflight += 1
        INFLIGHT.set(self.inflight)
        req_dir = self._new_request_dir()
        t0 = time.perf_counter()
        item = None
        try:
            item = await self._read_clip(request, req_dir)
            read_s = time.perf_counter() - t0
            if item["duration"] > lim.sync_max_duration_s:
                raise InputError(413, f"clip lasts {item['duration']:.1f} s; /v1/dub answers up to "
                                      f"{lim.sync_max_duration_s:g} s: submit it to /v1/jobs")
            spec = ClipSpec(req_dir.name, item["video"], item["audio"], storage.join(item["staged"], "output.mp4"),
                            DubOptions(**item["options"]))
            try:
                result = await dub_clip(self.handles, spec, max_in_flight=lim.max_shards_in_flight)
            except ClipFailed as exc:
                raise InputError(422, str(exc).splitlines()[-1]) from None
            data = await asyncio.to_thread(storage.read_bytes, result.output)
            self.jobs.observe.remote(result.timings, item["clip"])
            total = time.perf_counter() - t0
            DUB_SECONDS.observe(total)
            seconds = {**{k: round(v, 4) for k, v in result.timings.items()}, "request": round(read_s, 4),
                       "total": round(total, 4)}
            return Response(data, media_type="video/mp4", headers={
                "X-Lsray-Status": result.status, "X-Lsray-Frames": str(result.frames),
                "X-Lsray-No-Face-Frames": str(result.no_face_frames),
                "X-Lsray-Warnings": json.dumps(result.warnings),
                "X-Lsray-Voice": result.voice or "off",
                "X-Lsray-Sampling": json.dumps(result.sampling or {}, sort_keys=True),
                "X-Lsray-Seconds": json.dumps(seconds, sort_keys=True)})
        finally:
            self.inflight -= 1
            INFLIGHT.set(self.inflight)
            shutil.rmtree(req_dir, ignore_errors=True)
            if item is not None:
                await asyncio.to_thread(storage.delete_prefix, item["staged"])

    async def _submit(self, items: list[dict], tenant: Tenant) -> list[dict]:
        try:
            return await self.jobs.submit.remote(items, tenant.name)
        except Overloaded as exc:
            if exc.status == 429:  # the tenant's own quota, not the service's load
                REJECTED.labels("/v1/jobs").inc()
                raise HTTPException(429, detail=f"quota: {exc.reason}",
                                    headers={"Retry-After": str(exc.retry_after)}) from None
            raise _overloaded("/v1/jobs", exc.retry_after, exc.reason) from None

    @app.post("/v1/jobs", status_code=202, summary="queue a clip of any length (up to the limits); returns the job",
              openapi_extra=contract.media_body(DubRequest), responses=errors(400, 401, 404, 413, 415, 422, 429, 503))
    async def submit_job(self, request: Request) -> dict:
        tenant = await self._submitter(request, "/v1/jobs")
        req_dir = self._new_request_dir()
        item = None
        try:
            item = await self._read_clip(request, req_dir)
            return (await self._submit([item], tenant))[0]
        except BaseException:
            if item is not None:
                await asyncio.to_thread(storage.delete_prefix, item["staged"])
            raise
        finally:
            shutil.rmtree(req_dir, ignore_errors=True)  # the job reads the staged copies

    @app.post("/v1/jobs/batch", status_code=202, summary="queue several clips (storage URIs) at once; returns the jobs",
              openapi_extra=contract.json_body(BatchRequest), responses=errors(400, 401, 404, 413, 415, 422, 429, 503))
    async def submit_batch(self, request: Request) -> dict:
        tenant = await self._submitter(request, "/v1/jobs/batch")
        batch = await self._json(request, BatchRequest)
        if len(batch.clips) > self.settings.limits.max_batch_clips:
            raise InputError(413, f"{len(batch.clips)} clips; the limit is {self.settings.limits.max_batch_clips} per call")
        if not batch.clips:
            raise InputError(400, "no clips")
        dirs, items = [], []
        try:
            for clip in batch.clips:
                dirs.append(self._new_request_dir())
                items.append(await self._clip_from(clip, None, dirs[-1]))
            records = await self._submit(items, tenant)
        except BaseException:
            for item in items:
                await asyncio.to_thread(storage.delete_prefix, item["staged"])
            raise
        finally:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
        return {"ids": [r["id"] for r in records], "jobs": records}

    @app.get("/v1/jobs", summary="list jobs, newest first", responses=errors(400, 401, 422))
    async def list_jobs(self, request: Request, offset: int = 0, limit: int = 50, status: str | None = None) -> dict:
        tenant = self._auth(request)
        if offset < 0 or not 1 <= limit <= 500:
            raise InputError(400, "offset must be >= 0 and limit within 1..500")
        return await self.jobs.list.remote(offset, limit, status, self._sees(tenant))

    @app.get("/v1/jobs/{job_id}", summary="a job's status, progress and result URI", responses=errors(401, 404))
    async def get_job(self, request: Request, job_id: str) -> dict:
        tenant = self._auth(request)
        rec = await self.jobs.get.remote(job_id, self._sees(tenant))
        if rec is None:
            raise HTTPException(404, detail=f"no job {job_id}")
        return rec

    @app.delete("/v1/jobs/{job_id}", summary="cancel a job (a finished job is left as it is)", responses=errors(401, 404))
    async def cancel_job(self, request: Request, job_id: str) -> dict:
        tenant = self._auth(request)
        rec = await self.jobs.cancel.remote(job_id, self._sees(tenant))
        if rec is None:
            raise HTTPException(404, detail=f"no job {job_id}")
        return rec

    @app.post("/v1/estimate", summary="predicted compute seconds for a clip, from measured throughput",
              openapi_extra=contract.json_body(EstimateRequest), responses=errors(401, 404, 413, 422))
    async def estimate(self, request: Request) -> dict[str, Any]:
        self._auth(request)
        body = await self._json(request, EstimateRequest)
        if body.model not in (None, self.settings.model_name):
            raise HTTPException(404, detail=f"model {body.model!r} is not served here ({self.settings.model_name!r} is)")
        clip = self._clip_units(body.options, body.duration_s, body.fps, body.width, body.height)
        out = await self.jobs.estimate.remote(clip)
        return {"model": self.settings.model_name, **clip, **out}
