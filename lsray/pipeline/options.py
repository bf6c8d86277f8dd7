"""Per-clip dubbing options: one definition shared by the CLI, catalogs, batch and serve."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lsray.resolution import Resolution

SyncMode = Literal["video", "cut_off", "bounce", "loop", "silence", "remap"]
SYNC_MODES: tuple[str, ...] = ("video", "cut_off", "bounce", "loop", "silence", "remap")


class DubOptions(BaseModel):
    """How one clip is dubbed. Defaults are the dubbing-friendly ones (keep the source's timing)."""

    model_config = ConfigDict(extra="forbid")

    sampler: Literal["ddim", "lcm"] = "ddim"
    steps: int | None = Field(default=None, ge=1, le=100, description="None: the bundle's default")
    guidance: float | None = Field(default=None, ge=1.0, le=10.0, description="None: the bundle's default")
    resolution: Resolution | None = None
    sync_mode: SyncMode = "video"
    speaker: str = "largest"
    keep_silent_mouth: bool = True
    voice_conversion: bool = False
    segment_seconds: float = Field(default=10.0, gt=0)
    crf: int = Field(default=18, ge=0, le=51)
    seed: int = 0

    @field_validator("speaker")
    @classmethod
    def _speaker(cls, v: str) -> str:
        from lsray.face.speaker import parse_speaker_spec  # (lazy: keeps `lsray --help` light)

        return str(parse_speaker_spec(v))  # one parser for the CLI, catalogs and the API
