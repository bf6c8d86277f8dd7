"""MFCCs exactly as SyncNet's evaluation computes them (``python_speech_features.mfcc`` defaults).

``python_speech_features`` is not installed here, so this is a numpy re-implementation of its
``mfcc(signal, 16000)`` with the defaults SyncNet relies on: 25 ms rectangular frames every
10 ms (100 per second), pre-emphasis 0.97, |rfft|^2 / 512 power spectrum, 26 triangular mel
filters 0-8000 Hz on ``floor((nfft + 1) * hz / sr)`` bins, log, orthonormal DCT-II, 13 cepstra,
sinusoidal lifter 22, and c0 replaced by the log frame energy. As in ``SyncNetInstance``, the
signal is in int16 units (``scipy.io.wavfile.read`` of a 16-bit WAV): pass float audio in
[-1, 1] and it is scaled by 32768 first. (librosa's MFCC differs in windowing, mel scale and
normalisation, so it is not used: the original network was trained on these features.)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.fft import dct

MFCC_RATE = 100  # frames per second


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _hz2mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel2hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(nfilt: int = 26, nfft: int = 512, sr: int = 16000, low: float = 0.0, high: float | None = None) -> np.ndarray:
    high = high or sr / 2
    mel = np.linspace(_hz2mel(low), _hz2mel(high), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel2hz(mel) / sr)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(int(bins[j]), int(bins[j + 1])):
            fb[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(int(bins[j + 1]), int(bins[j + 2])):
            fb[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return fb


def syncnet_mfcc(audio_16k: np.ndarray, sr: int = 16000, numcep: int = 13) -> np.ndarray:
    """(13, T) MFCCs at 100 Hz of 16 kHz mono audio (float in [-1, 1] or int16)."""
    x = np.asarray(audio_16k)
    x = x.astype(np.float64) * (32768.0 if np.issubdtype(x.dtype, np.floating) else 1.0)
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1]) if len(x) else np.zeros(1)
    flen, fstep, nfft = _round_half_up(0.025 * sr), _round_half_up(0.01 * sr), 512
    n = 1 if len(x) <= flen else 1 + int(math.ceil((len(x) - flen) / fstep))
    padded = np.concatenate([x, np.zeros(int((n - 1) * fstep + flen) - len(x))])
    idx = np.arange(flen)[None, :] + fstep * np.arange(n)[:, None]
    frames = padded[idx]
    pspec = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    energy = pspec.sum(1)
    eps = np.finfo(float).eps
    energy = np.where(energy == 0, eps, energy)
    feat = pspec @ mel_filterbank(26, nfft, sr).T
    feat = np.where(feat == 0, eps, feat)
    feat = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :numcep]
    lift = 1 + (22 / 2.0) * np.sin(np.pi * np.arange(numcep) / 22)
    feat = feat * lift
    feat[:, 0] = np.log(energy)
    return feat.T.astype(np.float32)
