"""Audio conditioning for lip-sync: LatentSync-exact Whisper features, phoneme branch, fused tokens.

- :class:`WhisperEncoder`: multi-layer Whisper features at 50 Hz (upstream-exact up to 30 s,
  continuous beyond), streamed in bounded memory.
- :func:`chunks` / :func:`windows_at` / :func:`stream_windows`: per-video-frame windows.
- :class:`PhonemeEncoder`, :class:`FusedAudioEncoder`: the 128-d phoneme branch and the fused
  (C + 128)-d tokens the upgraded UNet attends to.
"""

from lsray.audio.fused import FusedAudioEncoder, fuse
from lsray.audio.mel import (
    WaveSlice,
    ROWS_PER_SECOND,
    SAMPLE_RATE,
    WaveSource,
    log_mel,
    log_mel_max,
    log_mel_span,
    mel_filters,
    num_frames,
    num_rows,
)
from lsray.audio.phoneme import PHONEME_DIM, PhonemeEncoder, resample_to_rows
from lsray.audio.whisper import DEFAULT_HOP_FRAMES, FeatureBlock, WhisperEncoder, load_wave, samples_for_rows
from lsray.audio.windows import (
    ROWS_PER_WINDOW,
    chunks,
    frame_times,
    stream_windows,
    upstream_frame_count,
    windows_at,
)

__all__ = [
    "WaveSlice",
    "samples_for_rows",
    "DEFAULT_HOP_FRAMES",
    "PHONEME_DIM",
    "ROWS_PER_SECOND",
    "ROWS_PER_WINDOW",
    "SAMPLE_RATE",
    "FeatureBlock",
    "FusedAudioEncoder",
    "PhonemeEncoder",
    "WaveSource",
    "WhisperEncoder",
    "chunks",
    "frame_times",
    "fuse",
    "load_wave",
    "log_mel",
    "log_mel_max",
    "log_mel_span",
    "mel_filters",
    "num_frames",
    "num_rows",
    "resample_to_rows",
    "stream_windows",
    "upstream_frame_count",
    "windows_at",
]
