"""The 16 kHz track as the audio encoders read it: anything sliceable (:class:`WaveSource`), or the
span of it one shard carries (:class:`WaveSlice`). Numpy only: clip records hold these, and
workers that only move records (render, assemble) must not load torch to unpickle them."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class WaveSource(Protocol):
    """Anything with a length and contiguous slicing: a numpy array, an ``np.memmap``...

    The encoders only ever read ``wave[lo:hi]`` spans, so a memory-mapped hour of audio works.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> np.ndarray: ...


class WaveSlice:
    """The samples ``[offset, offset + len(data))`` of a longer 16 kHz track, as a WaveSource.

    A shard of a long clip carries only the span its encoder windows read
    (:func:`lsray.audio.whisper.samples_for_rows`); reading outside it is a bug, so it raises.
    """

    def __init__(self, data: np.ndarray, offset: int, total: int) -> None:
        self.data = np.asarray(data, dtype=np.float32)
        self.offset = offset
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: slice) -> np.ndarray:
        lo, hi, _ = index.indices(self.total)
        if lo < self.offset or hi > self.offset + len(self.data):
            raise IndexError(f"samples [{lo}, {hi}) are outside this slice [{self.offset}, {self.offset + len(self.data)})")
        return self.data[lo - self.offset : hi - self.offset]
