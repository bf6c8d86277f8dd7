"""Per-video-frame audio windows: the 10 feature rows x L layers the UNet attends to per frame.

LatentSync's ``feature2chunks`` takes, for video frame ``i`` at ``fps``, the rows
``c - 4 .. c + 5`` around ``c = int(i * 50 / fps)``, each index clamped to ``[0, T - 1]`` (release 1.6;
older forks clamped at 1, the parity fixtures show 0), and flattens them row-major into (10 * L, C). Here the same window is
defined for a TIME ``t`` (``c = floor(50 t)``), so any frame rate, or irregular timestamps, use
one code path; ``chunks(fps=25)`` is the special case ``t = i / 25`` (``c = 2 i``).
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from lsray.audio.mel import ROWS_PER_SECOND

#: Rows before / after the centre row (upstream ``audio_feat_length=[2, 2]``: 2 * 2 before, 3 * 2 after).
ROWS_BEFORE = 4
ROWS_AFTER = 6  # exclusive
ROWS_PER_WINDOW = ROWS_BEFORE + ROWS_AFTER
#: Tolerance when turning a time into a row, so ``i / fps * 50`` lands on ``int(i * 50 / fps)``.
_EPS = 1e-6


def centre_rows(times_s: Sequence[float] | np.ndarray) -> np.ndarray:
    """The feature row each time is centred on: ``floor(50 t)`` (int64, shape (N,))."""
    t = np.asarray(times_s, dtype=np.float64)
    return np.floor(t * ROWS_PER_SECOND + _EPS).astype(np.int64)


def window_rows(centres: np.ndarray, total_rows: int) -> np.ndarray:
    """Row indices of each window (N, 10), clamped to ``[0, T - 1]`` exactly as upstream 1.6."""
    offsets = np.arange(-ROWS_BEFORE, ROWS_AFTER)
    rows = centres[:, None] + offsets[None, :]
    return np.minimum(np.maximum(rows, 0), total_rows - 1)


def windows_at(features: torch.Tensor, times_s: Sequence[float] | np.ndarray) -> torch.Tensor:
    """Audio windows centred at the given times: (T, L, C) features -> (N, 10 * L, C).

    Token ``r * L + l`` of a window is layer ``l`` of its ``r``-th row (row-major, as upstream).
    """
    total, layers, dim = features.shape
    rows = torch.from_numpy(window_rows(centre_rows(times_s), total))  # (N, 10)
    picked = features[rows.reshape(-1)]  # (N * 10, L, C)
    return picked.reshape(len(rows), ROWS_PER_WINDOW * layers, dim)  # (N, 10 L, C)


def upstream_frame_count(total_rows: int, fps: float = 25.0) -> int:
    """How many windows ``feature2chunks`` yields: every frame ``i`` up to and including the first
    one whose start row ``int(i * 50 / fps)`` is past the end (upstream checks after appending)."""
    step = ROWS_PER_SECOND / fps
    i = 0
    while int(i * step) <= total_rows:
        i += 1
    return i + 1


def frame_times(num_frames: int, fps: float, first_frame: int = 0) -> np.ndarray:
    """Timestamps (s) of video frames ``first_frame .. first_frame + num_frames - 1``."""
    return np.arange(first_frame, first_frame + num_frames, dtype=np.float64) / fps


def chunks(features: torch.Tensor, fps: float = 25.0, num_frames: int | None = None) -> torch.Tensor:
    """Per-video-frame windows (N, 10 * L, C), equal to upstream ``feature2chunks(fps)``.

    ``num_frames`` defaults to upstream's count (a couple of frames past the audio's end, whose
    windows repeat the last row); pass the video's frame count to get exactly one per frame.
    """
    if num_frames is None:
        num_frames = upstream_frame_count(features.shape[0], fps)
    return windows_at(features, frame_times(num_frames, fps))


def rows_for_times(times_s: Sequence[float] | np.ndarray, total_rows: int) -> tuple[int, int]:
    """The feature rows ``[r0, r1)`` the windows at ``times_s`` read."""
    rows = window_rows(centre_rows(times_s), total_rows)
    return int(rows.min()), int(rows.max()) + 1


def stream_windows(
    blocks: Iterable[torch.Tensor],
    total_rows: int,
    times_s: Sequence[float] | np.ndarray,
    batch: int = 64,
    first_row: int = 0,
) -> Iterator[torch.Tensor]:
    """Windows at ascending ``times_s`` from a stream of consecutive feature blocks (rows, L, C).

    Yields batches (<= ``batch``, 10 * L, C) in order, holding only the rows a pending window
    still needs, so an hour of audio never materialises. ``total_rows`` is the full feature
    length (``lsray.audio.mel.num_rows``), needed for upstream's end clamp before the end is read.
    """
    rows = window_rows(centre_rows(times_s), total_rows)  # (N, 10)
    if len(rows) and np.any(np.diff(rows[:, 0]) < 0):
        raise ValueError("stream_windows needs ascending times")
    it = iter(blocks)
    buf: torch.Tensor | None = None  # rows [buf_start, buf_start + len(buf))
    buf_start = first_row  # a ranged stream's first block need not start at row 0
    out: list[torch.Tensor] = []
    for win in rows:
        lo, hi = int(win.min()), int(win.max()) + 1
        while buf is None or buf_start + buf.shape[0] < hi:
            block = next(it)  # StopIteration here means the stream is shorter than total_rows
            buf = block if buf is None else torch.cat([buf, block], dim=0)
        if lo > buf_start:  # earlier rows will never be needed again (centres ascend)
            buf, buf_start = buf[lo - buf_start :], lo
        picked = buf[torch.from_numpy(win - buf_start)]  # (10, L, C)
        out.append(picked.reshape(1, -1, picked.shape[-1]))  # (1, 10 L, C)
        if len(out) == batch:
            yield torch.cat(out)
            out = []
    if out:
        yield torch.cat(out)


def frames_in_rows(total_rows: int, fps: float) -> int:
    """Video frames the audio covers: ``ceil(T * fps / 50)`` (a convenience for callers)."""
    return math.ceil(total_rows * fps / ROWS_PER_SECOND)
