"""Which source frame each output frame shows, and how long the output is, per sync mode.

The vocabulary is the one commercial lip-sync APIs use for a duration mismatch between the video
and the dubbed audio:
- ``video``   (default for dubbing) the output keeps the source's frame count; a longer dub is cut
               (with a warning), a shorter one padded with silence;
- ``cut_off`` the shorter input sets the length;
- ``bounce``  LatentSync's behaviour: a shorter video plays forward then backward until the audio ends;
- ``loop``    the video restarts until the audio ends;
- ``silence`` nothing is cut: a shorter video holds its last frame, a shorter dub is padded with silence;
- ``remap``   the video is time-stretched to the audio's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from lsray.pipeline.options import SyncMode


@dataclass(frozen=True)
class Timeline:
    """Output length and the output -> source frame map of one clip."""

    mode: SyncMode
    fps: Fraction
    source_frames: int
    output_frames: int
    audio_seconds: float
    warnings: tuple[str, ...] = field(default=())

    @property
    def output_seconds(self) -> float:
        return float(self.output_frames / self.fps)

    def source_index(self, out: np.ndarray | int) -> np.ndarray:
        """Source frame index shown at output frame(s) ``out``."""
        i = np.asarray(out, dtype=np.int64)
        n, m = self.source_frames, self.output_frames
        if self.mode == "bounce" and n > 1:
            period = 2 * (n - 1)
            k = i % period
            return np.where(k < n, k, period - k)
        if self.mode == "loop":
            return i % n
        if self.mode == "remap":
            return np.minimum((i * n) // max(m, 1), n - 1)
        return np.minimum(i, n - 1)  # video, cut_off, silence (holds the last frame)


def make_timeline(mode: SyncMode, fps: Fraction, source_frames: int, audio_seconds: float) -> Timeline:
    """Decide the output length for ``mode`` (frames at the source's own rate)."""
    if source_frames < 1:
        raise ValueError("the video has no frames")
    audio_frames = max(1, math.floor(audio_seconds * fps + 1e-6))
    warnings: list[str] = []
    if mode == "video":
        frames = source_frames
        video_s = float(source_frames / fps)
        if audio_seconds > video_s + 1e-3:
            warnings.append(
                f"dubbed audio ({audio_seconds:.3f} s) is longer than the video ({video_s:.3f} s): "
                f"cut to the video's length (use --sync-mode silence, loop, bounce or remap to keep it)"
            )
    elif mode == "cut_off":
        frames = min(source_frames, audio_frames)
    elif mode in ("bounce", "loop", "remap"):
        frames = audio_frames
    elif mode == "silence":
        frames = max(source_frames, math.ceil(audio_seconds * fps - 1e-6))
    else:
        raise ValueError(f"unknown sync mode {mode!r}")
    return Timeline(mode, fps, source_frames, frames, audio_seconds, tuple(warnings))
