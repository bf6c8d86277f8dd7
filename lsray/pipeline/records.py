"""The typed records that flow between the pipeline stages.

ClipSpec (what to dub) -> ClipPlan (clip-level decisions: timing, the speaker's face track) ->
ClipShard (a segment of whole 16-frame windows: aligned crops, audio tokens, generated crops) ->
RenderedSegment (an encoded piece of the output) -> ClipResult (the deliverable and its figures).
A shard is what the batch and online runners move between workers, so it carries only its own
frames' data; memory per worker is bounded by the segment length, never by the video's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np

from lsray.audio.wave import WaveSlice
from lsray.media.color import VideoColor
from lsray.pipeline.options import ClipSettings, DubOptions
from lsray.pipeline.timeline import Timeline

#: Frames the UNet denoises together (LatentSync's window).
WINDOW_FRAMES = 16

ClipStatus = Literal["done", "no_face", "error", "skipped"]


@dataclass
class ClipSpec:
    """One (video, dubbed audio) pair to dub, with local paths (runners localise URIs first)."""

    clip_id: str
    video: str
    audio: str
    output: str
    options: DubOptions = field(default_factory=DubOptions)
    voice_reference: str | None = None
    face_sidecar: str | None = None


@dataclass
class ClipPlan:
    """Clip-level facts decided once by the prepare stage and carried (small) by every shard.

    ``points`` holds the chosen speaker's smoothed alignment points per SOURCE frame,
    (source_frames, 3, 2) float32 with NaN where the face is absent: ~24 bytes a frame.
    ``staging`` is the folder or ``s3://`` prefix where the clip's intermediate files (the
    converted voice, the segments) are handed from step to step: never a worker's local path,
    so every step may run on another node.
    """

    spec: ClipSpec
    settings: ClipSettings
    fps: Fraction
    width: int
    height: int
    timeline: Timeline
    points: np.ndarray
    resolution: int
    track: str  # the audio muxed into the output (the dub, or its voice-converted version)
    staging: str
    warnings: list[str] = field(default_factory=list)
    faces_found: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # Resemblyzer cosine of the dub to the on-screen speaker, before / after voice conversion.
    similarity_before: float | None = None
    speaker_similarity: float | None = None
    color: VideoColor = VideoColor()  # the source's colour tags: render encodes back with them

    @property
    def clip_id(self) -> str:
        return self.spec.clip_id

    def shard_bounds(self) -> list[tuple[int, int]]:
        """Output-frame ranges of the shards: whole windows, ~``segment_seconds`` each."""
        per = max(1, round(self.spec.options.segment_seconds * float(self.fps) / WINDOW_FRAMES)) * WINDOW_FRAMES
        n = self.timeline.output_frames
        return [(a, min(n, a + per)) for a in range(0, n, per)]


@dataclass
class ClipShard:
    """Output frames ``[start, stop)`` of one clip on their way through audio -> sample -> render.

    crops: (n, S, S, 3) uint8 aligned faces (zeros where ``has_face`` is False, and throughout a
    dubbing shard with no frame that :meth:`changes`: see ``ShardStage.dubbed_only``);
    affines: (n, 2, 3) frame -> crop (zeros where crops are); mouth_weight: (n,) 1 = dubbed
    mouth, 0 = original mouth (silence in the dub, or no face), ramped so switches never pop;
    wave: the 16 kHz samples the audio stage reads; tokens: (n, 10 L, D) audio windows (left None
    when no frame :meth:`changes`); generated: (n, S, S, 3) uint8.
    """

    plan: ClipPlan
    index: int
    count: int
    start: int
    stop: int
    crops: np.ndarray
    affines: np.ndarray
    has_face: np.ndarray
    mouth_weight: np.ndarray
    wave: WaveSlice
    mel_max: float
    phoneme_stats: tuple[float, float] | None = None
    tokens: np.ndarray | None = None
    generated: np.ndarray | None = None
    sampling: dict | None = None  # what the sample stage ran (CountingUNet's trace), None = no window
    anchors: ClipAnchors | None = None  # the clip's keyframes this shard's windows pin (None: anchors off)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def changes(self, idx: np.ndarray | slice = slice(None)) -> bool:
        """Whether any of these frames (shard-relative; default all) gets a dubbed mouth: a
        window none of whose frames does is never sampled, so it needs no audio tokens either."""
        return bool(np.any(self.mouth_weight[idx] > 0))

    @property
    def times(self) -> np.ndarray:
        """Output timestamps (s) of this shard's frames: the model sees each frame at its own time."""
        return np.arange(self.start, self.stop, dtype=np.float64) / float(self.plan.fps)


@dataclass
class Keyframes:
    """A clip's keyframes (every ``stride``-th output frame) on their way to the anchor pass.

    The same fields as a :class:`ClipShard` where the audio stage reads them (``wave``,
    ``times``, ``mel_max``, ``phoneme_stats``; it writes ``tokens``), for output frames
    ``frames`` (K,) instead of a range. crops: (K, S, S, 3) uint8, aligned exactly as the
    shards align them.
    """

    plan: ClipPlan
    stride: int
    frames: np.ndarray
    crops: np.ndarray
    has_face: np.ndarray
    mouth_weight: np.ndarray
    wave: WaveSlice
    mel_max: float
    phoneme_stats: tuple[float, float] | None = None
    tokens: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def times(self) -> np.ndarray:
        return self.frames.astype(np.float64) / float(self.plan.fps)


@dataclass
class ClipAnchors:
    """The anchor pass's result for (part of) a clip: small, so it travels with every shard.

    frames: (K,) output frames of the keyframes; latents: (K, c, h, w) float32, their sampled
    latents (what every window pins); masked, ref: (K, c, h, w) and tokens: (K, N, D), their
    conditioning, which a window reads for its context frame (the next window's first keyframe)
    so that no window depends on which shard holds its neighbour.
    """

    stride: int
    frames: np.ndarray
    latents: np.ndarray
    masked: np.ndarray
    ref: np.ndarray
    tokens: np.ndarray
    trace: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # "anchors": the pass's UNet seconds, "vae"

    def index(self, frame: int) -> int | None:
        """Row of output frame ``frame``, or None when it is not a keyframe of this record."""
        i = int(np.searchsorted(self.frames, frame))
        return i if i < len(self.frames) and int(self.frames[i]) == frame else None

    def for_shard(self, start: int, stop: int) -> "ClipAnchors":
        """The keyframes a shard of output frames ``[start, stop)`` needs: its own and the one at
        ``stop`` (its last window's context). The timings stay with the whole clip's record."""
        keep = (self.frames >= start) & (self.frames <= stop)
        return ClipAnchors(self.stride, self.frames[keep], self.latents[keep], self.masked[keep], self.ref[keep],
                           self.tokens[keep], trace=self.trace)


@dataclass
class RenderedSegment:
    """An encoded, video-only piece of the output (frames ``[start, stop)``)."""

    clip_id: str
    index: int
    count: int
    path: str
    start: int
    stop: int
    no_face_frames: int
    sampling: dict | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class ClipResult:
    """What happened to one clip: the output, its figures, or the error that stopped it."""

    clip_id: str
    status: ClipStatus
    output: str | None = None
    frames: int = 0
    no_face_frames: int = 0
    fps: float | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    speaker_similarity: float | None = None
    similarity_before: float | None = None
    voice: str | None = None  # the voice backend the clip was re-voiced with ("off": the dub as given)
    sampling: dict | None = None  # sampler, steps, UNet calls per window and their timesteps
