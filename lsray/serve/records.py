"""What a client sees of an online job: :class:`JobRecord` (the API's answer, the webhook's
body, a row of the job store). Apart from the deployment so the store needs no Ray."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

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
    attempt: int = Field(default=0, description="runs started so far (a run whose runner died is re-run from the start)")
