"""Stage 3, audio: each shard's per-frame audio tokens from Whisper (or Whisper + phonemes).

Tokens for output frame ``i`` are the encoder rows around time ``i / fps`` (LatentSync's 25 fps
indexing, ``row = 2 i``, is the special case), computed from the shard's own sample span with
the clip's statistics, so a shard gets exactly the tokens a whole-clip pass would give it.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lsray.device import single_thread

from lsray.audio.fused import FusedAudioEncoder
from lsray.audio.whisper import WhisperEncoder
from lsray.pipeline.records import ClipShard


class AudioStage:
    """ClipShard -> ClipShard with ``tokens`` (n, 10 L, D) float32.

    ``token_dim`` is the UNet's audio width: Whisper-only tokens narrower than it (a 384-d
    LatentSync model upgraded to 512-d attention, no phoneme branch yet) are zero-padded, which
    is exactly upstream's function thanks to the zero-padded K/V projections.
    """

    def __init__(self, encoder: WhisperEncoder | FusedAudioEncoder, token_dim: int | None = None) -> None:
        self.encoder = encoder
        self.token_dim = token_dim

    @torch.no_grad()
    def __call__(self, shard: ClipShard) -> ClipShard:
        t0 = time.perf_counter()
        kwargs: dict = {"file_max": shard.mel_max}
        if isinstance(self.encoder, FusedAudioEncoder):
            kwargs["phoneme_stats"] = shard.phoneme_stats
        with single_thread():  # the same tokens in every runner, whatever its CPU count
            tokens = torch.cat(list(self.encoder.stream_windows(shard.wave, shard.times, **kwargs)))  # n (10 L) C
        if self.token_dim is not None and tokens.shape[-1] < self.token_dim:
            tokens = torch.nn.functional.pad(tokens, (0, self.token_dim - tokens.shape[-1]))
        shard.tokens = tokens.numpy().astype(np.float32)
        shard.timings["audio"] = shard.timings.get("audio", 0.0) + time.perf_counter() - t0
        return shard
