"""Guidance-scale embedding of consistency-distilled students (upgrade 4).

A student takes the guidance scale as an input instead of running a second, unconditional pass;
the scale enters like a timestep through ``LipSyncUNet(..., timestep_cond=...)``. The embedding is
the LCM paper's: sinusoids of ``(w - 1) * 1000`` with the frequency denominator ``half - 1``.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_timestep_embedding


def guidance_embedding(guidance: float | torch.Tensor, dim: int, batch: int = 1) -> torch.Tensor:
    """(batch, dim) embedding of guidance scale(s) ``w`` (1.0 = no guidance).

    A scalar is repeated ``batch`` times; a (batch,) tensor gives one scale per clip.
    """
    w = torch.as_tensor(guidance, dtype=torch.float32).reshape(-1)
    if w.numel() == 1:
        w = w.expand(batch)
    w = w - 1.0
    return get_timestep_embedding(w * 1000.0, dim, flip_sin_to_cos=False, downscale_freq_shift=1)
