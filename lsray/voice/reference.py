"""The reference voice: 5-10 s of the on-screen speaker cut from the video's own audio track.

Why cut it ourselves: a catalog row rarely comes with a clean sample of the speaker, but the
source video has one. The track also holds silence, music and noise, which would teach a
converter the wrong voice, so segments are found with a VAD and then kept only if they look
like speech:

1. VAD: webrtcvad (installed with resemblyzer) on 30 ms frames at 16 kHz, AND an energy floor
   (webrtcvad alone calls steady noise "speech"); energy-only when webrtcvad is unavailable.
2. Segments: speech frames joined across gaps < 0.3 s; shorter than 0.3 s dropped.
3. Speech test per segment (pyworld F0 voicing + spectrum):
   - voiced ratio >= 0.2 (noise and breath have almost no F0),
   - spectral flatness < 0.3 (noise is flat, speech is peaky),
   - syllabic energy modulation (std of frame energy) >= 6 dB (music and tones are steady),
   - F0 movement (median |d log F0| per 10 ms) >= 0.002 (notes hold their pitch, voices glide).
4. Accepted segments in time order are concatenated (5 ms fades at the joins) up to ``max_s``.
   Less than ``min_s`` of speech is :class:`NotEnoughSpeechError`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsray.errors import LsrayError, MediaError
from lsray.voice.base import as_mono_float, resample

_VAD_SR = 16000
_FRAME_S = 0.03
_HOP = int(_VAD_SR * _FRAME_S)


class NotEnoughSpeechError(LsrayError):
    """The audio holds too little clean speech to learn the speaker's voice from."""

    def __init__(self, found_s: float, needed_s: float, where: str = "the source audio") -> None:
        self.found_s = found_s
        self.needed_s = needed_s
        super().__init__(
            f"only {found_s:.1f} s of usable speech in {where}; at least {needed_s:.1f} s is needed "
            "for a reference voice (give a reference file, or turn voice conversion off)"
        )


@dataclass(frozen=True)
class SegmentCheck:
    """Why a candidate segment was kept or skipped (kept for logs and tests)."""

    start_s: float
    end_s: float
    voiced_ratio: float
    flatness: float
    energy_std_db: float
    f0_motion: float
    is_speech: bool


@dataclass
class ReferenceClip:
    """The reference voice: mono float32 ``samples`` at ``sr`` plus where they came from."""

    samples: np.ndarray
    sr: int
    segments: list[tuple[float, float]] = field(default_factory=list)  # (start_s, end_s) in the source
    checks: list[SegmentCheck] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sr


def _frame_energy_db(x16: np.ndarray) -> np.ndarray:
    n = len(x16) // _HOP
    frames = x16[: n * _HOP].reshape(n, _HOP).astype(np.float64)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-10)


def _speech_frames(x16: np.ndarray, aggressiveness: int) -> np.ndarray:
    """Boolean speech flag per 30 ms frame: webrtcvad AND an adaptive energy floor."""
    energy = _frame_energy_db(x16)
    if energy.size == 0:
        return np.zeros(0, bool)
    # Floor: 30 dB under the loud frames, never below -55 dBFS (digital silence, hum).
    floor = max(float(np.percentile(energy, 95)) - 30.0, -55.0)
    loud = energy > floor
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import webrtcvad
    except ImportError:  # energy-only fallback
        return loud
    vad = webrtcvad.Vad(aggressiveness)
    pcm = (np.clip(x16, -1.0, 1.0) * 32767).astype("<i2")
    flags = np.array([vad.is_speech(pcm[i * _HOP:(i + 1) * _HOP].tobytes(), _VAD_SR) for i in range(len(energy))])
    return flags & loud


def _segments(flags: np.ndarray, max_gap_s: float = 0.3, min_len_s: float = 0.3) -> list[tuple[int, int]]:
    """Runs of speech frames ``[start, end)`` joined across short gaps, short runs dropped."""
    runs: list[list[int]] = []
    for i in np.flatnonzero(flags):
        if runs and i - runs[-1][1] <= max_gap_s / _FRAME_S:
            runs[-1][1] = i + 1
        else:
            runs.append([int(i), int(i) + 1])
    return [(a, b) for a, b in runs if (b - a) * _FRAME_S >= min_len_s]


def _check(seg: np.ndarray, start_s: float, end_s: float) -> SegmentCheck:
    """Measure one candidate segment (16 kHz) and decide whether it is speech."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld
    x = seg.astype(np.float64)
    f0, t = pyworld.dio(x, _VAD_SR, f0_floor=60.0, f0_ceil=500.0, frame_period=10.0)
    f0 = pyworld.stonemask(x, f0, t, _VAD_SR)
    voiced = f0 > 0
    both = voiced[1:] & voiced[:-1]
    motion = float(np.median(np.abs(np.diff(np.log(np.where(voiced, f0, 1.0))))[both])) if both.any() else 0.0
    n = 512
    frames = np.lib.stride_tricks.sliding_window_view(seg, n)[:: n // 2] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    flatness = float(np.median(np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)))
    energy_std = float(np.std(_frame_energy_db(seg)))
    vr = float(voiced.mean())
    ok = vr >= 0.2 and flatness < 0.3 and energy_std >= 6.0 and motion >= 0.002
    return SegmentCheck(start_s, end_s, vr, flatness, energy_std, motion, ok)


def cut_reference(audio: np.ndarray, sr: int, *, max_s: float = 10.0, min_s: float = 2.0,
                  vad_aggressiveness: int = 2, where: str = "the source audio") -> ReferenceClip:
    """Cut up to ``max_s`` seconds of clean speech from a track, at the track's own rate.

    ``audio`` is the source video's (mono) track at ``sr`` (16 kHz or native). Raises
    :class:`NotEnoughSpeechError` when less than ``min_s`` seconds of speech survive.
    """
    x = as_mono_float(audio, where)
    x16 = resample(x, sr, _VAD_SR)
    flags = _speech_frames(x16, vad_aggressiveness)
    checks: list[SegmentCheck] = []
    for a, b in _segments(flags):
        checks.append(_check(x16[a * _HOP: b * _HOP], round(a * _FRAME_S, 3), round(b * _FRAME_S, 3)))
    pieces: list[np.ndarray] = []
    used: list[tuple[float, float]] = []
    total = 0.0
    fade = max(int(0.005 * sr), 1)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    for c in checks:
        if not c.is_speech or total >= max_s:
            continue
        end_s = float(min(c.end_s, c.start_s + (max_s - total)))
        piece = x[int(round(c.start_s * sr)): int(round(end_s * sr))].copy()
        if len(piece) > 2 * fade:
            piece[:fade] *= ramp
            piece[-fade:] *= ramp[::-1]
        pieces.append(piece)
        used.append((c.start_s, end_s))
        total += len(piece) / sr
    if total < min_s:
        raise NotEnoughSpeechError(total, min_s, where)
    return ReferenceClip(np.concatenate(pieces).astype(np.float32), int(sr), used, checks)


def load_reference(path: str | Path, *, max_s: float = 10.0, min_s: float = 2.0, cut: bool = True) -> ReferenceClip:
    """Read a reference file a catalog row names (any soundfile format), mono.

    With ``cut`` (default) it goes through :func:`cut_reference` too, so a long or untrimmed
    file still yields clean speech of at most ``max_s`` seconds.
    """
    p = Path(path)
    if not p.is_file():
        raise MediaError(p, "reference voice file not found")
    import soundfile

    try:
        data, sr = soundfile.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
        raise MediaError(p, f"unreadable audio ({exc})") from exc
    mono = data.mean(axis=1)
    if not cut:
        return ReferenceClip(mono[: int(max_s * sr)].astype(np.float32), int(sr), [(0.0, min(len(mono) / sr, max_s))])
    return cut_reference(mono, int(sr), max_s=max_s, min_s=min_s, where=str(p))
