"""Whisper's log-mel spectrogram, computed span by span so an hour of audio never sits in memory.

LatentSync takes ONE log-mel over the whole file: power STFT (n_fft 400, hop 160, Hann, centred
with reflect padding, last frame dropped) -> OpenAI's 80-band mel filters -> log10 clamped at
1e-10 -> floored at the whole file's max - 8 -> (x + 4) / 4. The floor depends on the whole file,
so exact parity needs (1) a cheap first pass for the global max and (2) spans whose frames equal
the whole-file frames. Frame ``j`` of the centred STFT reads samples ``[160 j - 200, 160 j + 200)``
of the reflect-padded wave, so any span of frames can be computed from a span of samples.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lsray.audio.wave import WaveSource

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
#: Mel frames per Whisper encoder window (30 s) and encoder rows per window (the conv2 stride is 2).
WINDOW_FRAMES = 3_000
WINDOW_ROWS = WINDOW_FRAMES // 2
#: Encoder rows per second (the 50 Hz grid everything audio-side is indexed on).
ROWS_PER_SECOND = SAMPLE_RATE // HOP_LENGTH // 2
#: Mel frames per block of the first (global max) pass: 30 s (~15 MB of STFT), whatever the length.
MAX_PASS_BLOCK_FRAMES = 3_000


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = N_MELS) -> torch.Tensor:
    """OpenAI's mel filterbank (n_mels, 201): what ``mel_filters.npz`` holds, rebuilt with librosa.

    OpenAI saved ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`` (Slaney scale and norm),
    so computing it here avoids shipping or downloading the asset.
    """
    import librosa

    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels)  # (n_mels, 201) float32
    return torch.from_numpy(np.asarray(fb, dtype=np.float32))


def num_frames(num_samples: int) -> int:
    """Mel frames of a whole file: the centred STFT gives ``1 + n // hop``, minus the dropped last."""
    return num_samples // HOP_LENGTH


def num_rows(num_samples: int) -> int:
    """Encoder rows (50 Hz) LatentSync keeps for a file: mel frames / 2, rounded down."""
    return num_frames(num_samples) // 2


def _padded_samples(wave: WaveSource, lo: int, hi: int) -> np.ndarray:
    """Samples ``[lo, hi)`` of the wave reflect-padded by ``N_FFT // 2`` on both sides (as torch.stft)."""
    n = len(wave)
    pad = N_FFT // 2
    if n <= pad:
        raise ValueError(f"audio too short for a log-mel: {n} samples (need more than {pad})")
    src_lo, src_hi = max(0, lo - pad), min(n, hi - pad)
    # Reflection reaches at most `pad` samples past either end, so read that margin as well.
    read_lo, read_hi = max(0, src_lo - pad - 1), min(n, src_hi + pad + 1)
    chunk = np.asarray(wave[read_lo:read_hi], dtype=np.float32)
    idx = np.arange(lo, hi) - pad  # indices in the unpadded wave
    idx = np.abs(idx)  # left reflection (edge sample not repeated)
    idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)  # right reflection
    return chunk[idx - read_lo]


def log_mel_span(wave: WaveSource, start: int, stop: int) -> torch.Tensor:
    """Raw log10 mel of frames ``[start, stop)`` of the whole-file spectrogram -> (80, stop - start).

    Not yet floored or normalised: that needs the whole file's max (see :func:`normalise`).
    """
    stop = min(stop, num_frames(len(wave)))
    if stop <= start:
        return torch.zeros(N_MELS, 0)
    samples = torch.from_numpy(_padded_samples(wave, start * HOP_LENGTH, (stop - 1) * HOP_LENGTH + N_FFT))
    window = torch.hann_window(N_FFT)
    stft = torch.stft(samples, N_FFT, HOP_LENGTH, window=window, center=False, return_complex=True)
    power = stft.abs() ** 2  # (201, stop - start)
    mel = mel_filters() @ power  # (80, stop - start)
    return torch.clamp(mel, min=1e-10).log10()


def log_mel_max(wave: WaveSource, block_frames: int = MAX_PASS_BLOCK_FRAMES) -> float:
    """The whole file's max log10 mel, in a cheap first pass over bounded blocks (30 s each)."""
    total = num_frames(len(wave))
    best = -float("inf")
    for start in range(0, total, block_frames):
        best = max(best, float(log_mel_span(wave, start, start + block_frames).max()))
    return best


def normalise(log_spec: torch.Tensor, file_max: float) -> torch.Tensor:
    """Whisper's normalisation with the WHOLE file's max: floor at max - 8, then (x + 4) / 4."""
    return (torch.clamp(log_spec, min=file_max - 8.0) + 4.0) / 4.0


def log_mel(wave: WaveSource) -> torch.Tensor:
    """The whole file's normalised log-mel (80, frames), as LatentSync computes it (for small files)."""
    raw = log_mel_span(wave, 0, num_frames(len(wave)))
    return normalise(raw, float(raw.max()))
