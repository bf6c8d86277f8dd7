"""``LipSyncUNet``: LatentSync's UNet3D (audio-conditioned mouth inpainting) on diffusers blocks.

Input channels are ``[noisy latents (4), mask (1), masked-frame latents (4), reference latents (4)]``;
audio enters through per-frame cross-attention (one token set per video frame); motion modules mix
information across the frames of a window. Frames are folded into the batch throughout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from lsray.models.blocks import DownLevel, MidLevel, UpLevel, video_group_norm
from lsray.models.config import UNetConfig


class DeepCache:
    """DeepCache (Ma et al., 2023) for one sampling loop: on a full step the UNet records the
    input of its last up level; on a shallow step (``reuse``) it runs only the first down level
    and the last up level on that record. With ``interval`` N, one step in N is full."""

    def __init__(self, interval: int) -> None:
        self.interval, self.deep, self.reuse = max(1, interval), None, False

    def at_step(self, i: int) -> "DeepCache":
        self.reuse = i % self.interval != 0
        return self


class LipSyncUNet(nn.Module):
    """The lip-sync denoiser. Build with a :class:`UNetConfig`; load upstream weights with
    :meth:`from_latentsync` and lsray bundles with :func:`lsray.bundle.load_bundle`."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        ch = list(cfg.block_out_channels)
        n = len(ch)

        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(ch[0], cfg.flip_sin_to_cos, cfg.freq_shift)
        self.time_embedding = TimestepEmbedding(
            ch[0], cfg.time_embed_dim, act_fn=cfg.act_fn, cond_proj_dim=cfg.time_cond_proj_dim
        )
        if self.time_embedding.cond_proj is not None:
            # A fresh guidance embedding adds nothing until it is trained (function preserved).
            nn.init.zeros_(self.time_embedding.cond_proj.weight)

        def has_motion(res: int, decoder: bool) -> bool:
            return cfg.use_motion_module and res in cfg.motion_module_resolutions and (decoder or not cfg.motion_module_decoder_only)

        self.down_blocks = nn.ModuleList()
        cout = ch[0]
        for i, kind in enumerate(cfg.down_block_types):
            cin, cout = cout, ch[i]
            self.down_blocks.append(
                DownLevel(cfg, cin, cout, kind.startswith("CrossAttn"), has_motion(2**i, False), downsample=i < n - 1)
            )

        self.mid_block = MidLevel(cfg, ch[-1])

        rev = ch[::-1]
        self.up_blocks = nn.ModuleList()
        cout = rev[0]
        for i, kind in enumerate(cfg.up_block_types):
            prev, cout, skip_in = cout, rev[i], rev[min(i + 1, n - 1)]
            m = cfg.layers_per_block + 1
            ins = [(prev if j == 0 else cout) + (skip_in if j == m - 1 else cout) for j in range(m)]
            self.up_blocks.append(
                UpLevel(cfg, ins, cout, kind.startswith("CrossAttn"), has_motion(2 ** (n - 1 - i), True), upsample=i < n - 1)
            )

        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, ch[0], eps=cfg.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels, kernel_size=3, padding=1)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.conv_in.weight.device

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        audio: torch.Tensor | None,
        timestep_cond: torch.Tensor | None = None,
        cache: "DeepCache | None" = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise of ``sample``.

        sample: (B, in_channels, F, H, W); timestep: scalar or (B,); audio: (B*F, N, D) or
        (B, F, N, D), N = 10 x (Whisper layers + 1); timestep_cond: (B, time_cond_proj_dim), the
        guidance-scale embedding of distilled students; cache: DeepCache-style reuse of the deep
        features between adjacent sampling steps (see :class:`DeepCache`); positions: (F,) the
        frames' times in frames, for sequences that are not consecutive frames (the anchor pass's
        keyframes, every 8th frame); None = 0..F-1. Returns (B, out_channels, F, H, W).
        """
        b, _, f, h, w = sample.shape
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        x = sample.transpose(1, 2).reshape(b * f, -1, h, w)  # (b f) c h w
        if audio is not None:
            if audio.dim() == 4:
                audio = audio.reshape(b * f, audio.shape[2], audio.shape[3])  # (b f) n d
            if audio.shape[0] != b * f:
                raise ValueError(f"audio has {audio.shape[0]} frame rows, expected B*F = {b * f}")

        t = torch.as_tensor(timestep, device=sample.device)
        if t.dim() == 0:
            t = t[None]
        temb = self._time_embedding(t.expand(b), timestep_cond, sample.dtype)  # b t
        temb = temb.repeat_interleave(f, dim=0)  # (b f) t

        x = self.conv_in(x)
        skips: list[torch.Tensor] = [x]
        last = self.up_blocks[-1]
        if cache is not None and cache.reuse and cache.deep is not None:
            # Shallow step: only the first down level and the last up level run; everything in
            # between is the previous full step's output (features change slowly between steps).
            x, s = self.down_blocks[0](x, temb, audio, f, positions)
            skips.extend(s)
            x = last(cache.deep, temb, audio, f, skips[: len(last.resnets)], None, positions)
        else:
            for block in self.down_blocks:
                x, s = block(x, temb, audio, f, positions)
                skips.extend(s)
            x = self.mid_block(x, temb, audio, f, positions)
            for block in self.up_blocks:
                res = skips[-len(block.resnets):]
                del skips[-len(block.resnets):]
                size = tuple(skips[-1].shape[-2:]) if skips and block.upsamplers is not None else None
                if block is last and cache is not None:
                    cache.deep = x  # what the last up level receives: reused by the shallow steps
                x = block(x, temb, audio, f, res, size, positions)
        x = self.conv_act(video_group_norm(self.conv_norm_out, x, f))
        x = self.conv_out(x)
        return x.view(b, f, -1, h, w).transpose(1, 2)  # b c f h w

    def _time_embedding(self, t: torch.Tensor, cond: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """(B,) timesteps [+ (B, d) guidance embeddings] -> (B, t) embeddings, one row at a time.

        A linear layer over B rows may round differently from the same row alone (BLAS blocks
        by batch size), and the sample stage batches windows of different clips together: row by
        row, a window's result is bit-identical however it was batched (and this is tiny work).
        """
        rows = []
        for i in range(t.shape[0]):
            c = None if cond is None else cond[i : i + 1].to(dtype)
            rows.append(self.time_embedding(self.time_proj(t[i : i + 1]).to(dtype), c))
        return torch.cat(rows)

    @classmethod
    def from_latentsync(
        cls,
        checkpoint: str | Path | dict[str, torch.Tensor],
        config: str | Path | dict[str, Any] | UNetConfig,
        **upgrades: Any,
    ) -> "LipSyncUNet":
        """Load an upstream ``latentsync_unet.pt`` strictly; see :mod:`lsray.models.latentsync`."""
        from lsray.models.latentsync import load_latentsync_unet

        return load_latentsync_unet(checkpoint, config, **upgrades)
