"""Where the dubbed track is silent, on the 50 Hz grid every audio-side index uses.

The lip-sync pipeline keeps the original mouth where the dub is silent (a closed mouth
generated from silence features looks frozen, the source's own face is better). Energy against
the track's own loudness is enough for that decision on clean studio dubs, needs no weights
and runs on a stream, so it is what lsray uses here.
"""

from __future__ import annotations

import numpy as np

from lsray.audio.mel import HOP_LENGTH, SAMPLE_RATE
from lsray.audio.wave import WaveSource

#: Samples per 50 Hz row (two mel hops: 20 ms).
ROW_SAMPLES = 2 * HOP_LENGTH
#: A row is speech when it is within this many dB of the track's loud level (95th percentile).
RELATIVE_DB = 35.0
#: ... and above this absolute floor (dBFS), so room tone never counts as speech.
FLOOR_DBFS = -55.0
#: Gaps of silence shorter than this (s) are bridged: pauses between words keep the dubbed mouth.
MIN_SILENCE_S = 0.3


def row_levels(wave: WaveSource, block_rows: int = 1_500) -> np.ndarray:
    """RMS level (dBFS) of every 20 ms row of a 16 kHz track, read in bounded blocks."""
    total = len(wave) // ROW_SAMPLES
    out = np.empty(total, dtype=np.float32)
    for r0 in range(0, total, block_rows):
        r1 = min(total, r0 + block_rows)
        x = np.asarray(wave[r0 * ROW_SAMPLES : r1 * ROW_SAMPLES], dtype=np.float32).reshape(r1 - r0, ROW_SAMPLES)
        out[r0:r1] = 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)
    return out


def speech_rows(wave: WaveSource) -> np.ndarray:
    """Boolean speech activity per 50 Hz row, short pauses bridged (shape (len // 320,))."""
    levels = row_levels(wave)
    if levels.size == 0:
        return np.zeros(0, dtype=bool)
    loud = float(np.percentile(levels, 95))
    active = levels > max(FLOOR_DBFS, loud - RELATIVE_DB)
    gap = int(MIN_SILENCE_S * SAMPLE_RATE / ROW_SAMPLES)
    idx = np.flatnonzero(active)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= gap:
            active[a:b] = True
    return active


def speech_at(rows: np.ndarray, times_s: np.ndarray, margin_s: float = 0.1) -> np.ndarray:
    """Whether there is speech within +-``margin_s`` of each time (frames' mouths anticipate sound)."""
    if rows.size == 0:
        return np.zeros(len(times_s), dtype=bool)
    per_s = SAMPLE_RATE / ROW_SAMPLES
    csum = np.concatenate([[0], np.cumsum(rows)])
    lo = np.clip(np.floor((np.asarray(times_s) - margin_s) * per_s).astype(int), 0, rows.size)
    hi = np.clip(np.ceil((np.asarray(times_s) + margin_s) * per_s).astype(int) + 1, 0, rows.size)
    return (csum[hi] - csum[lo]) > 0
