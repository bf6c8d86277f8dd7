"""The voice-converter interface and the small signal helpers every backend shares.

A converter turns dubbed speech (``source``) into the on-screen speaker's voice, given a few
seconds of that speaker (``reference``). The lip-sync stage that follows is aligned to the
source's timeline, so every backend returns audio at the source's sample rate and exactly the
source's length (models that resample internally are padded/trimmed back to it).
"""

from __future__ import annotations

from math import gcd
from typing import Protocol, runtime_checkable

import numpy as np

from lsray.errors import LsrayError


class VoiceConversionError(LsrayError):
    """A voice conversion could not run (bad input audio, unknown backend, model failure)."""


class VoiceExtraMissingError(VoiceConversionError, ImportError):
    """A Coqui backend was asked for but the optional ``voice`` extra is not installed."""


@runtime_checkable
class VoiceConverter(Protocol):
    """Converts speech into a reference speaker's voice, keeping content and timing."""

    name: str

    def convert(self, source: np.ndarray, sr: int, reference: np.ndarray, ref_sr: int) -> np.ndarray:
        """Return ``source`` spoken in ``reference``'s voice: float32 mono at ``sr``, same length."""
        ...


def as_mono_float(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    """Validate and return a 1-D float32 copy; (n, channels) or (channels, n) input is averaged.

    Decoders disagree on channel layout, so the longer axis is taken to be time.
    """
    a = np.asarray(audio)
    if a.ndim == 2:
        a = a.mean(axis=0 if a.shape[0] < a.shape[1] else 1)
    if a.ndim != 1:
        raise VoiceConversionError(f"{what} must be mono (1-D) samples, got shape {np.shape(audio)}")
    if a.size == 0:
        raise VoiceConversionError(f"{what} is empty")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = np.nan_to_num(a.astype(np.float32, copy=False))
    return a


def resample(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Band-limited polyphase resampling (scipy); identity when the rates match."""
    if int(sr_from) == int(sr_to):
        return np.asarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(sr_from), int(sr_to))
    return resample_poly(np.asarray(audio, dtype=np.float64), int(sr_to) // g, int(sr_from) // g).astype(np.float32)


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to exactly ``n`` samples, so output frames line up with the video."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) >= n:
        return audio[:n].copy()
    return np.concatenate([audio, np.zeros(n - len(audio), np.float32)])


def match_loudness(audio: np.ndarray, like: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """Scale ``audio`` to the RMS of ``like`` (conversion must not change the mix level)."""
    rms_a = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    rms_l = float(np.sqrt(np.mean(np.square(like, dtype=np.float64)))) if like.size else 0.0
    if rms_a < 1e-9:
        return audio.astype(np.float32)
    out = audio * (rms_l / rms_a)
    top = float(np.max(np.abs(out)))
    if top > peak:
        out = out * (peak / top)
    return out.astype(np.float32)
