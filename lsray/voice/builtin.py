"""The weight-free default converter: WORLD analysis, speaker-statistics mapping, resynthesis.

Why WORLD (pyworld): it separates speech into F0, a smooth spectral envelope and an
aperiodicity map, each of which carries a different part of "who is speaking", and it needs no
weights, so the voice stage works on any install. The mapping is deliberately simple:

- pitch: voiced log-F0 is shifted and scaled to the target's log-F0 mean and spread;
- formants: the envelope's frequency axis is warped by one factor ``alpha`` (a vocal-tract
  length style warp, formant ``F`` moves to ``alpha * F``) chosen so the source's average
  envelope best matches the target's;
- timbre: what is left between the warped average envelope and the target's average becomes a
  smooth (cepstrally liftered) equaliser, clipped to +-12 dB so it cannot colour content.

Timing is untouched (same frames in, same frames out), so lip-sync alignment is preserved.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np

from lsray.voice.base import VoiceConversionError, as_mono_float, fit_length, match_loudness, resample

with warnings.catch_warnings():  # pyworld imports pkg_resources and warns about it
    warnings.simplefilter("ignore")
    import pyworld

_F0_FLOOR = 60.0
_F0_CEIL = 500.0


@dataclass(frozen=True)
class SpeakerStats:
    """What the built-in converter knows about a voice: pitch statistics and average envelope.

    ``mean_log_env`` is the mean over voiced frames of the log power envelope, sampled on
    ``freqs`` (Hz); comparing two speakers' curves gives the warp factor and equaliser.
    """

    log_f0_mean: float
    log_f0_std: float
    freqs: np.ndarray
    mean_log_env: np.ndarray


@dataclass
class _World:
    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray
    fft_size: int


def _analyse(x: np.ndarray, sr: int, frame_period: float, need_ap: bool = True) -> _World:
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    # dio + stonemask: ~10x faster than harvest at similar accuracy on clean speech.
    f0, t = pyworld.dio(x64, sr, f0_floor=_F0_FLOOR, f0_ceil=_F0_CEIL, frame_period=frame_period)
    f0 = pyworld.stonemask(x64, f0, t, sr)
    fft_size = pyworld.get_cheaptrick_fft_size(sr, _F0_FLOOR)
    sp = pyworld.cheaptrick(x64, f0, t, sr, fft_size=fft_size)
    ap = pyworld.d4c(x64, f0, t, sr, fft_size=fft_size) if need_ap else np.empty(0)
    return _World(f0, sp, ap, fft_size)


def speaker_stats(audio: np.ndarray, sr: int, frame_period: float = 10.0) -> SpeakerStats:
    """Measure a voice (e.g. the reference cut from the video) for :class:`WorldConverter`."""
    x = as_mono_float(audio, "reference")
    w = _analyse(x, sr, frame_period, need_ap=False)
    voiced = w.f0 > 0
    if voiced.sum() < 10:
        raise VoiceConversionError("the reference has (almost) no voiced speech to learn a voice from")
    log_f0 = np.log(w.f0[voiced])
    freqs = np.arange(w.sp.shape[1]) * sr / w.fft_size
    mean_log_env = np.log(w.sp[voiced] + 1e-12).mean(axis=0)
    return SpeakerStats(float(log_f0.mean()), float(max(log_f0.std(), 1e-3)), freqs, mean_log_env)


def _warp_matrix_indices(n_bins: int, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation taps so that ``out[k] = in[k / alpha]`` on the bin axis."""
    pos = np.clip(np.arange(n_bins) / alpha, 0, n_bins - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_bins - 1)
    return lo, hi, (pos - lo)


def _warp(log_env: np.ndarray, alpha: float) -> np.ndarray:
    """Warp log envelopes (frames x bins or bins) along frequency: formant ``F`` -> ``alpha F``."""
    lo, hi, frac = _warp_matrix_indices(log_env.shape[-1], alpha)
    return log_env[..., lo] * (1.0 - frac) + log_env[..., hi] * frac


def _on_grid(stats: SpeakerStats, freqs: np.ndarray) -> np.ndarray:
    """The target's mean log envelope on another frequency grid (edge-held past its Nyquist)."""
    return np.interp(freqs, stats.freqs, stats.mean_log_env)


def estimate_warp(src_mean_log_env: np.ndarray, tgt_mean_log_env: np.ndarray, freqs: np.ndarray,
                  band: tuple[float, float] = (200.0, 5000.0), limits: tuple[float, float] = (0.75, 1.4)) -> float:
    """The frequency-warp factor that best maps the source's average envelope onto the target's.

    Grid search over ``alpha`` (log-spaced, 1% steps) of the mean-removed squared error inside
    the formant band; mean removal leaves overall loudness to the equaliser.
    """
    sel = (freqs >= band[0]) & (freqs <= band[1])
    tgt = tgt_mean_log_env[sel] - tgt_mean_log_env[sel].mean()
    best, best_err = 1.0, np.inf
    for alpha in np.exp(np.arange(np.log(limits[0]), np.log(limits[1]) + 1e-9, 0.01)):
        warped = _warp(src_mean_log_env, float(alpha))[sel]
        err = float(np.mean((warped - warped.mean() - tgt) ** 2))
        if err < best_err:
            best, best_err = float(alpha), err
    return best


def _smooth_eq(diff: np.ndarray, n_ceps: int = 24, max_db: float = 12.0) -> np.ndarray:
    """Keep only the smooth part (first cepstral coefficients) of a log-gain curve, clipped."""
    ceps = np.fft.irfft(diff)  # diff is a half spectrum of an even sequence -> real cepstrum
    ceps[n_ceps:len(ceps) - n_ceps + 1] = 0.0
    smooth = np.fft.rfft(ceps).real[: len(diff)]
    lim = max_db / 10.0 * np.log(10.0)  # dB of power -> natural-log power units
    return np.clip(smooth, -lim, lim)


class WorldConverter:
    """Built-in, weight-free voice conversion with pyworld (see the module docstring for why).

    ``work_sr``: sources above this rate are converted at it (WORLD's cost grows with the FFT
    size, ~0.17 x real time at 48 kHz against ~0.05 at 16 kHz) and upsampled; the source's own
    band above ``work_sr / 2`` (fricative "air", little speaker identity) is added back so the
    output keeps the full bandwidth. ``frame_period`` (ms) trades speed for time resolution:
    5 ms is WORLD's default, 10 ms halves the work and is still finer than a 25/30 fps video
    frame. ``formant_warp`` / ``equalize``
    switch the envelope mapping on or off (pitch-only conversion is ``False, False``).
    """

    name = "builtin"

    def __init__(self, frame_period: float = 5.0, formant_warp: bool = True, equalize: bool = True,
                 warp_limits: tuple[float, float] = (0.75, 1.4), work_sr: int = 16000) -> None:
        self.frame_period = float(frame_period)
        self.work_sr = int(work_sr)
        self.formant_warp = formant_warp
        self.equalize = equalize
        self.warp_limits = warp_limits
        self._cache: tuple[tuple[str, int], SpeakerStats] | None = None  # ((digest, sr), stats)
        self.last_alpha: float = 1.0  # the warp chosen by the last convert(), for reports

    def _target(self, reference: np.ndarray, ref_sr: int) -> SpeakerStats:
        """Stats of the reference, cached: one video converts many segments against one speaker."""
        key = (hashlib.blake2b(reference.tobytes(), digest_size=16).hexdigest(), int(ref_sr))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, speaker_stats(reference, ref_sr, frame_period=10.0))
        return self._cache[1]

    def convert(self, source: np.ndarray, sr: int, reference: np.ndarray, ref_sr: int) -> np.ndarray:
        """Convert ``source`` (mono, ``sr``) into the voice of ``reference`` (mono, ``ref_sr``)."""
        x = as_mono_float(source, "source")
        tgt = self._target(as_mono_float(reference, "reference"), ref_sr)
        if sr <= self.work_sr:
            return self._convert(x, sr, tgt)
        low = resample(x, sr, self.work_sr)
        air = x - fit_length(resample(low, self.work_sr, sr), len(x))  # the band WORLD does not see
        y = fit_length(resample(self._convert(low, self.work_sr, tgt), self.work_sr, sr), len(x))
        return match_loudness(y + air, x)

    def _convert(self, x: np.ndarray, sr: int, tgt: SpeakerStats) -> np.ndarray:
        if len(x) < int(0.05 * sr):  # too short for WORLD's windows; nothing audible to convert
            return x.copy()
        w = _analyse(x, sr, self.frame_period)
        voiced = w.f0 > 0
        if voiced.sum() < 3:  # unvoiced / silent segment: no voice identity to change
            return x.copy()

        # Pitch: match log-F0 mean and spread over voiced frames.
        log_f0 = np.log(w.f0[voiced])
        mu, sd = float(log_f0.mean()), float(max(log_f0.std(), 1e-3))
        f0 = np.zeros_like(w.f0)
        f0[voiced] = np.exp((log_f0 - mu) / sd * tgt.log_f0_std + tgt.log_f0_mean)

        # Envelope: frequency warp toward the target's formants, then a smooth equaliser.
        freqs = np.arange(w.sp.shape[1]) * sr / w.fft_size
        log_sp = np.log(w.sp + 1e-12)
        src_mean = log_sp[voiced].mean(axis=0)
        tgt_mean = _on_grid(tgt, freqs)
        alpha = estimate_warp(src_mean, tgt_mean, freqs, limits=self.warp_limits) if self.formant_warp else 1.0
        self.last_alpha = alpha
        if alpha != 1.0:
            log_sp = _warp(log_sp, alpha)
            ap = np.clip(np.exp(_warp(np.log(np.maximum(w.ap, 1e-6)), alpha)), 0.0, 1.0)
        else:
            ap = w.ap
        if self.equalize:
            top = min(float(tgt.freqs[-1]), freqs[-1])  # no evidence about the target above its Nyquist
            diff = tgt_mean - log_sp[voiced].mean(axis=0)
            diff = np.where(freqs <= top, diff, diff[np.searchsorted(freqs, top, side="right") - 1])
            log_sp = log_sp + _smooth_eq(diff)[None, :]
        sp = np.exp(log_sp)

        y = pyworld.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap),
                               sr, frame_period=self.frame_period)
        return match_loudness(fit_length(y.astype(np.float32), len(x)), x)
