"""Fused audio tokens (upgrade 1): Whisper features and the phoneme branch, 512-d for tiny.

Token (row r, layer l) = [Whisper(r, l), phoneme(r)]: the phoneme vector of a row is repeated for
every Whisper layer, so the per-frame windows keep LatentSync's layout (10 rows x L layers,
row-major) and only grow in width, C -> C + 128. With a zero phoneme branch the first C dims are
exactly the Whisper-only windows, which is what lets a 384-d LatentSync checkpoint load into the
512-d UNet by zero-padding its K/V projections.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from lsray.audio.mel import num_rows
from lsray.audio.wave import WaveSource
from lsray.audio.phoneme import PhonemeEncoder
from lsray.audio.whisper import DEFAULT_HOP_FRAMES, FeatureBlock, WhisperEncoder, windows_from_blocks
from lsray.audio.windows import chunks, rows_for_times, windows_at


def fuse(whisper_features: torch.Tensor, phoneme_features: torch.Tensor) -> torch.Tensor:
    """(T, L, C) and (T, P) -> (T, L, C + P), the phoneme vector repeated over the layers."""
    rows, layers, _ = whisper_features.shape
    if phoneme_features.shape[0] != rows:
        raise ValueError(f"row counts differ: whisper {rows}, phoneme {phoneme_features.shape[0]}")
    expanded = phoneme_features[:, None, :].expand(rows, layers, phoneme_features.shape[1])  # (T, L, P)
    return torch.cat([whisper_features, expanded.to(whisper_features.dtype)], dim=-1)


class FusedAudioEncoder(nn.Module):
    """Whisper (LatentSync-identical) + phoneme branch -> per-frame windows (N, 10 L, C + 128)."""

    def __init__(self, whisper: WhisperEncoder, phoneme: PhonemeEncoder) -> None:
        super().__init__()
        self.whisper = whisper
        self.phoneme = phoneme

    @property
    def dim(self) -> int:
        """Token width: Whisper C + phoneme 128 (512 for tiny)."""
        return self.whisper.dim + self.phoneme.dim

    @property
    def num_layers(self) -> int:
        return self.whisper.num_layers

    def stream(
        self,
        wave: WaveSource,
        hop_frames: int = DEFAULT_HOP_FRAMES,
        rows: tuple[int, int] | None = None,
        file_max: float | None = None,
        phoneme_stats: tuple[float, float] | None = None,
    ) -> Iterator[FeatureBlock]:
        """Fused feature blocks (rows, L, C + 128), one Whisper block at a time (bounded memory).

        The phoneme rows of each block are encoded for that block only (with context), so the
        phoneme chunking follows the Whisper blocks and ``features`` is this stream concatenated.
        ``rows``, ``file_max`` and ``phoneme_stats`` restrict the work to one shard's span.
        """
        stats = self.phoneme.stats(wave) if phoneme_stats is None else phoneme_stats
        for block in self.whisper.stream(wave, hop_frames, rows=rows, file_max=file_max):
            end = block.start_row + block.features.shape[0]
            phon = self.phoneme.rows(wave, block.start_row, end, stats)  # (rows, 128)
            yield FeatureBlock(block.start_row, fuse(block.features, phon))

    def features(self, wave: WaveSource, hop_frames: int = DEFAULT_HOP_FRAMES) -> torch.Tensor:
        """Fused rows (T, L, C + 128) at 50 Hz."""
        return torch.cat([block.features for block in self.stream(wave, hop_frames)], dim=0)

    def stream_windows(
        self,
        wave: WaveSource,
        times_s: Sequence[float] | np.ndarray,
        batch: int = 64,
        file_max: float | None = None,
        phoneme_stats: tuple[float, float] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Fused windows at ascending ``times_s`` in batches (<= batch, 10 L, C + 128), streamed
        over just the encoder windows those times need."""
        total = num_rows(len(wave))
        blocks = self.stream(
            wave, rows=rows_for_times(times_s, total), file_max=file_max, phoneme_stats=phoneme_stats
        )
        yield from windows_from_blocks(blocks, total, times_s, batch)

    def windows_at(self, wave: WaveSource, times_s: Sequence[float] | np.ndarray) -> torch.Tensor:
        """Fused windows centred at ``times_s``: (N, 10 L, C + 128)."""
        return windows_at(self.features(wave), times_s)

    def chunks(self, wave: WaveSource, fps: float = 25.0, num_frames: int | None = None) -> torch.Tensor:
        """Fused per-video-frame windows, LatentSync's ``feature2chunks`` layout: (N, 10 L, C + 128)."""
        return chunks(self.features(wave), fps, num_frames)
