"""What an operator configures for the online service: the application's ``args``.

One pydantic model, validated when the application is built (``serve run`` / ``lsray serve``
fail at deploy time on a typo, ``extra="forbid"``). Secrets may come from the environment
instead of the file: ``api_keys_env`` and ``webhooks.secret_env`` name the variables.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lsray.precision import Precision
from lsray.storage.s3_config import S3Config


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0, description="request body cap (413)")
    max_width: int = Field(default=4096, gt=0, description="long side of the frame, pixels (413)")
    max_height: int = Field(default=2160, gt=0, description="short side of the frame, pixels (413)")
    max_duration_s: float = Field(default=600.0, gt=0, description="video and audio duration (413)")
    sync_max_duration_s: float = Field(default=30.0, gt=0, description="longest clip /v1/dub answers inline; longer: use /v1/jobs (413)")
    max_batch_clips: int = Field(default=16, ge=1, description="clips per POST /v1/jobs/batch")
    max_inflight_dubs: int = Field(default=4, ge=1, description="synchronous dubs one ingress replica runs at once; more -> 503")
    max_pending_jobs: int = Field(default=64, ge=1, description="queued + running jobs; more -> 503")
    max_running_jobs: int = Field(default=2, ge=1, description="jobs run at once by the jobs deployment")
    max_shards_in_flight: int = Field(default=4, ge=1, description="shards of one clip between stages at once (memory bound)")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After on 503")
    max_jobs_kept: int = Field(default=10_000, ge=1, description="finished job records kept (oldest dropped first)")


class Webhooks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowlist: list[str] = Field(default_factory=list, description="origins, scheme://host[:port]")
    allow_http: bool = Field(default=False, description="permit http:// allowlist entries (tests, private networks)")
    secret: str | None = Field(default=None, description="HMAC-SHA256 secret (prefer secret_env)")
    secret_env: str = "LSRAY_WEBHOOK_SECRET"
    max_attempts: int = Field(default=5, ge=1)
    backoff_s: float = Field(default=1.0, gt=0, description="first retry delay; doubles each attempt")
    timeout_s: float = Field(default=10.0, gt=0)

    def send_window_s(self) -> float:
        """How long a claimed webhook is its sender's: every attempt timing out, with its
        backoffs, plus a margin; after that a sender that died is assumed gone."""
        return self.max_attempts * self.timeout_s + self.backoff_s * (2 ** self.max_attempts) + 60.0

    @model_validator(mode="after")
    def _https_only(self) -> "Webhooks":
        for entry in self.allowlist:
            if entry.lower().startswith("http://") and not self.allow_http:
                raise ValueError(f"webhook allowlist entry {entry!r} is http://: set webhooks.allow_http to permit it")
            if not entry.lower().startswith(("http://", "https://")):
                raise ValueError(f"webhook allowlist entry {entry!r} must be scheme://host[:port]")
        return self

    def resolved_secret(self) -> str | None:
        return self.secret or os.environ.get(self.secret_env) or None


class JobStoreSettings(BaseModel):
    """Where job records live and how runners hold them (see :mod:`lsray.serve.store`)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, description="SQLAlchemy URL: sqlite:////var/lib/lsray/jobs.db (one node) or "
                            "postgresql+psycopg://user@host/db (several); default: url_env, else a SQLite file under the temp dir")
    url_env: str = "LSRAY_JOB_STORE_URL"
    lease_s: float = Field(default=30.0, gt=0, description="a runner's hold on a job; renewed every lease_s/3 while it runs")
    max_attempts: int = Field(default=3, ge=1, description="runs of a job whose runner keeps dying, then it fails with the reason")
    poll_s: float = Field(default=1.0, gt=0, description="how often an idle job manager looks for claimable jobs")

    def resolved_url(self) -> str:
        from lsray.serve.store import default_url

        return self.url or os.environ.get(self.url_env) or default_url()


class Tenant(BaseModel):
    """Who owns jobs: every key of a tenant sees (and may cancel) the tenant's jobs only; an
    admin tenant sees all. Limits apply per tenant; None = unlimited."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    keys: list[str] = Field(default_factory=list)
    keys_env: str | None = Field(default=None, description="a variable with more comma-separated keys")
    admin: bool = False
    rate_per_minute: int | None = Field(default=None, ge=1, description="submitting requests per minute (then 429)")
    max_active_jobs: int | None = Field(default=None, ge=1, description="queued + running jobs (then 429)")

    def resolved_keys(self) -> list[str]:
        env = os.environ.get(self.keys_env, "") if self.keys_env else ""
        return list(self.keys) + [k.strip() for k in env.split(",") if k.strip()]


DEFAULT_TENANT = "default"


class Throughput(BaseModel):
    """Seconds of compute per unit, seeding /v1/estimate until real clips are measured (tiny bundle, 2 CPU)."""

    model_config = ConfigDict(extra="forbid")

    face_s_per_megapixel_frame: float = 0.5
    audio_s_per_frame: float = 0.005
    unet_s_per_window_step_256: float = 2.0
    vae_s_per_frame_256: float = 0.02
    encode_s_per_megapixel_frame: float = 0.05


class ServeSettings(BaseModel):
    """The ``args`` of the ``lsray`` Serve application."""

    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="model bundle directory (or a URI a registered resolver understands)")
    model_name: str = "default"
    staging_root: str | None = Field(
        default=None, description="where requests' inputs and clips' intermediate files pass between replicas: "
        "an s3:// prefix or a folder every node sees (default: a local temp folder, one node only)")
    output_root: str = Field(default="/tmp/lsray-serve/outputs", description="where job results go (path or s3://)")
    storage_roots: list[str] = Field(default_factory=list, description="the only places request URIs may point to")
    auth: Literal["api_key", "disabled"] = "api_key"
    api_keys: list[str] = Field(default_factory=list)
    api_keys_env: str = "LSRAY_API_KEYS"
    tenants: list[Tenant] = Field(default_factory=list, description="named key groups; api_keys form the tenant 'default'")
    job_store: JobStoreSettings = Field(default_factory=JobStoreSettings)
    public_metrics: bool = Field(default=False, description="serve /metrics without a key")
    s3: S3Config | None = Field(default=None, description="S3 endpoint/region (and, in tests, credentials) for "
                                "staging_root, output_root and s3:// inputs; default: the environment's")
    encode_preset: str = "veryfast"
    precision: Precision | None = Field(default=None, description="UNet/VAE precision (None: the bundle's; auto = fp16 on CUDA)")
    compile_unet: bool = Field(default=False, description="torch.compile the sample replicas' UNet (compiled on the first window)")
    torch_threads: int = Field(default=2, ge=1)
    limits: Limits = Field(default_factory=Limits)
    webhooks: Webhooks = Field(default_factory=Webhooks)
    throughput: Throughput = Field(default_factory=Throughput)

    @field_validator("storage_roots")
    @classmethod
    def _roots(cls, v: list[str]) -> list[str]:
        for root in v:
            if root.lower().startswith(("http://", "https://")):
                raise ValueError(f"storage root {root!r}: http(s) is never a storage root")
        return v

    def apply_storage(self) -> None:
        """Make ``s3`` this process's default S3 config (every replica calls it at start)."""
        if self.s3 is not None:
            from lsray.storage import set_default_s3_config

            set_default_s3_config(self.s3)

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, v: list[Tenant]) -> list[Tenant]:
        names = [t.name for t in v]
        if len(set(names)) != len(names) or DEFAULT_TENANT in names:
            raise ValueError(f"tenant names must be unique and not {DEFAULT_TENANT!r} (the api_keys tenant): {names}")
        return v

    def resolved_api_keys(self) -> list[str]:
        keys = list(self.api_keys)
        keys += [k.strip() for k in os.environ.get(self.api_keys_env, "").split(",") if k.strip()]
        return keys

    def resolved_tenants(self) -> list[Tenant]:
        """The configured tenants plus ``default``: the plain ``api_keys`` (and ``api_keys_env``)."""
        default = Tenant(name=DEFAULT_TENANT, keys=self.resolved_api_keys())
        return [default, *self.tenants]
