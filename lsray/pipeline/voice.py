"""Stage 2, voice: re-voice the dub in the on-screen speaker's voice (upgrade 5).

Runs on the clip's plan, before any audio is encoded, so the converted track is both what the
model hears and what is muxed into the output. Until a converter is configured it passes the
plan through unchanged.
"""

from __future__ import annotations

from lsray.pipeline.records import ClipPlan


class VoiceStage:
    """ClipPlan -> ClipPlan (``plan.track`` replaced by the converted audio when enabled)."""

    def __init__(self, converter: object | None = None) -> None:
        self.converter = converter

    def __call__(self, plan: ClipPlan) -> ClipPlan:
        if plan.spec.options.voice_conversion and self.converter is None:
            plan.warnings.append("voice conversion requested but no converter is configured: dub kept as is")
        return plan
