"""Stage 5, render: paste the generated mouths back into the full frames and encode a segment;
then, per clip, join the segments in order and mux the dubbed track.

Frames are re-decoded here rather than carried from prepare: a shard of full-resolution frames
would be gigabytes, while its aligned crops are small. Only the chosen face's feathered mouth
region changes; every other pixel is the source's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lsray.face import FaceBlender, regenerated_region
from lsray.media import VideoWriter, assemble_video
from lsray.pipeline.frames import source_frames
from lsray.pipeline.records import ClipPlan, ClipResult, ClipShard, RenderedSegment


class RenderStage:
    """ClipShard -> RenderedSegment (a video-only H.264 file at the path it is given)."""

    def __init__(self, mask: np.ndarray, preset: str = "medium") -> None:
        self.mask = np.asarray(mask, np.float32)
        self.preset = preset
        self._blenders: dict[int, FaceBlender] = {}

    def _blender(self, s: int) -> FaceBlender:
        if s not in self._blenders:
            import cv2

            mask = self.mask if self.mask.shape[0] == s else cv2.resize(self.mask, (s, s), interpolation=cv2.INTER_LINEAR)
            self._blenders[s] = FaceBlender(s, region=regenerated_region(mask))
        return self._blenders[s]

    def __call__(self, shard: ClipShard, path: str | Path) -> RenderedSegment:
        t0 = time.perf_counter()
        plan = shard.plan
        assert shard.generated is not None, "render needs the sample stage's output"
        blender = self._blender(shard.crops.shape[1])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Frames of even size stay in YUV 4:2:0 from decoder to encoder (the mouth is converted
        # and blended there): no RGB round trip of the whole frame, ~40 % less CPU than in RGB.
        pix_fmt = "yuv420p" if plan.width % 2 == 0 and plan.height % 2 == 0 else "rgb24"
        with VideoWriter(path, plan.fps, crf=plan.spec.options.crf, preset=self.preset, color=plan.color,
                         pix_fmt=pix_fmt) as writer:
            for i, _, frame in source_frames(plan, shard.start, shard.stop, pix_fmt=pix_fmt):
                k = i - shard.start
                w = float(shard.mouth_weight[k])
                if w > 0:
                    crop = shard.generated[k]
                    if w < 1:  # fading between the original and the dubbed mouth
                        crop = (w * crop.astype(np.float32) + (1 - w) * shard.crops[k]).round().astype(np.uint8)
                    affine = shard.affines[k].astype(np.float64)
                    frame = (blender.paste_yuv(frame, crop, affine, plan.color) if pix_fmt == "yuv420p"
                             else blender.paste(frame, crop, affine))
                writer.write(frame)
        shard.timings["encode"] = shard.timings.get("encode", 0.0) + time.perf_counter() - t0
        return RenderedSegment(
            clip_id=plan.clip_id, index=shard.index, count=shard.count, path=str(path),
            start=shard.start, stop=shard.stop, no_face_frames=int((~shard.has_face).sum()),
            sampling=shard.sampling, timings=dict(shard.timings),
        )


def assemble(plan: ClipPlan, segments: list[RenderedSegment], output: str) -> ClipResult:
    """Join a clip's segments (local files, all present) and mux its track (a local file) into
    ``output``; the result names ``plan.spec.output``, where the caller publishes it."""
    t0 = time.perf_counter()
    segments = sorted(segments, key=lambda s: s.index)
    expected = plan.shard_bounds()
    if [(s.start, s.stop) for s in segments] != expected:
        raise RuntimeError(f"clip {plan.clip_id}: segments {[s.index for s in segments]} do not cover its {len(expected)} shards")
    assemble_video([s.path for s in segments], plan.track, output, plan.timeline.output_seconds)
    timings: dict[str, float] = dict(plan.timings)
    for seg in segments:
        for key, value in seg.timings.items():
            timings[key] = timings.get(key, 0.0) + value
    timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - t0
    no_face = sum(s.no_face_frames for s in segments)
    return ClipResult(
        clip_id=plan.clip_id, status="done" if plan.faces_found else "no_face", output=plan.spec.output,
        frames=plan.timeline.output_frames, no_face_frames=no_face, fps=float(plan.fps),
        warnings=list(plan.warnings), timings=timings,
        speaker_similarity=plan.speaker_similarity, similarity_before=plan.similarity_before,
        voice=plan.settings.voice, sampling=_clip_trace(segments),
    )


def _clip_trace(segments: list[RenderedSegment]) -> dict | None:
    """The clip's sampling trace: the first sampled shard's, plus one sha256 over every shard's
    generated crops in order (two runs made the same mouths iff these match, however sharded)."""
    import hashlib

    traces = [s.sampling for s in segments if s.sampling]
    if not traces:
        return None
    digest = hashlib.sha256("".join(t["generated_sha256"] for t in traces).encode()).hexdigest()
    return {**{k: v for k, v in traces[0].items() if k != "generated_sha256"}, "generated_sha256": digest}
