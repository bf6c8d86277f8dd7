"""One clip's outcome in a batch run: :class:`ClipReport`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ClipStatus = Literal["done", "skipped", "error", "no_face", "invalid"]
CLIP_STATUSES: tuple[str, ...] = ("done", "skipped", "error", "no_face", "invalid")
FAILED_STATUSES: frozenset[str] = frozenset({"error", "invalid"})


def as_utc(ts: datetime | None) -> datetime | None:
    """``ts`` in UTC; a naive time is taken to be UTC already (the workers stamp UTC)."""
    if ts is None:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


class ClipReport(BaseModel):
    """What happened to one clip: status, output, frame counts, time per stage, retries.

    ``no_face`` is an outcome, not a failure: the clip had no usable face and passed through.
    ``clip_id`` may be None only for an invalid catalog row without a readable id; ``line``
    then says where it is.
    """

    model_config = ConfigDict(extra="forbid")

    clip_id: str | None
    status: ClipStatus
    error: str | None = None
    output_uri: str | None = None
    frames: int = Field(default=0, ge=0)
    no_face_frames: int = Field(default=0, ge=0)
    duration_seconds: float | None = Field(default=None, ge=0, description="the dubbed video's length (frames / fps)")
    warnings: list[str] = Field(default_factory=list, description="what the flow noticed but carried on past")
    seconds: dict[str, float] = Field(default_factory=dict, description="stage name -> wall seconds")
    retries: int = Field(default=0, ge=0)
    speaker_similarity: float | None = Field(default=None, description="the dubbed audio's speaker similarity to the "
                                             "on-screen speaker (resemblyzer cosine; voice conversion only)")
    similarity_before: float | None = Field(default=None, description="the same for the dub as given, before conversion")
    voice: str | None = Field(default=None, description="voice backend the dub was re-voiced with (off = as given)")
    sampler: str | None = None
    sampling_steps: int | None = None
    unet_calls_per_window: int | None = Field(default=None, description="UNet forward calls per window, counted")
    timesteps: list[int] | None = Field(default=None, description="the timesteps those calls were made at")
    generated_sha256: str | None = Field(default=None, description="digest of the generated mouth crops")
    anchor_keyframes: int | None = Field(default=None, description="keyframes the anchor pass sampled before "
                                         "the windows (None: long-range anchors off)")
    fingerprint: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    line: int | None = Field(default=None, description="catalog line, for invalid rows")

    def record_result(self, result: object) -> None:
        """Copy what a finished ClipResult says about how the clip was dubbed."""
        self.no_face_frames = result.no_face_frames
        self.warnings = list(result.warnings)
        if result.fps and result.frames:
            self.duration_seconds = result.frames / result.fps
        self.speaker_similarity, self.similarity_before = result.speaker_similarity, result.similarity_before
        self.voice = result.voice
        trace = result.sampling or {}
        self.sampler, self.sampling_steps = trace.get("sampler"), trace.get("steps")
        self.unet_calls_per_window, self.timesteps = trace.get("unet_calls_per_window"), trace.get("timesteps")
        self.generated_sha256 = trace.get("generated_sha256")
        self.anchor_keyframes = (trace.get("anchors") or {}).get("keyframes")

    @classmethod
    def for_invalid_row(cls, line: int, clip_id: str | None, reason: str) -> "ClipReport":
        """The report entry of a catalog row that never ran (pass an InvalidRow's fields)."""
        return cls(clip_id=clip_id, status="invalid", error=reason, line=line)
