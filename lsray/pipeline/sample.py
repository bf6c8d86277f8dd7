"""Stage 4, sample: VAE-encode the aligned faces, denoise each 16-frame window, decode the mouths.

Per window (LatentSync's inference step by step): masked and reference frames are encoded,
one noise frame is shared by all frames, the UNet denoises with the chosen sampler, and the
decoded face keeps the reference outside the mask (``decoded * (1 - mask) + ref * mask``).
Windows with no frame to change (no face, or silence that keeps the original mouth) skip the
UNet entirely. Noise is seeded per (clip, window), so a window's result does not depend on how
the clip was sharded or which worker ran it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from lsray.models.unet import LipSyncUNet
from lsray.pipeline.records import WINDOW_FRAMES, ClipShard
from lsray.sampling import WindowConditioning, denoise_window, initial_noise, make_scheduler


@dataclass(frozen=True)
class SamplerSettings:
    """The bundle's sampling defaults (a request may override steps / guidance / sampler)."""

    steps: int = 20
    guidance: float = 1.5
    scaling_factor: float = 0.18215
    shift_factor: float = 0.0
    scheduler_config: dict | None = None


def window_seed(seed: int, clip_id: str, window: int) -> int:
    """A stable 63-bit seed for one window of one clip."""
    digest = hashlib.sha256(f"{seed}:{clip_id}:{window}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class SampleStage:
    """ClipShard -> ClipShard with ``generated`` (n, S, S, 3) uint8 crops."""

    def __init__(self, unet: LipSyncUNet, vae: AutoencoderKL, mask: np.ndarray, settings: SamplerSettings) -> None:
        self.unet, self.vae, self.settings = unet, vae, settings
        self.device = unet.device
        self.mask = torch.from_numpy(np.asarray(mask, np.float32))  # (S, S) 1 keep, 0 regenerate

    def _mask_for(self, s: int) -> torch.Tensor:
        m = self.mask if self.mask.shape[-1] == s else F.interpolate(self.mask[None, None], size=(s, s), mode="bilinear")[0, 0]
        return m.to(self.device)

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        z = self.vae.encode(pixels).latent_dist.mode()  # deterministic (upstream draws a sample)
        return (z - self.settings.shift_factor) * self.settings.scaling_factor

    @torch.no_grad()
    def __call__(self, shard: ClipShard) -> ClipShard:
        opts = shard.plan.spec.options
        steps = opts.steps or self.settings.steps
        guidance = opts.guidance or self.settings.guidance
        n, s = shard.crops.shape[0], shard.crops.shape[1]
        mask = self._mask_for(s)  # (S, S)
        generated = shard.crops.copy()
        t_vae = t_unet = 0.0
        first_window = shard.start // WINDOW_FRAMES
        for w0 in range(0, n, WINDOW_FRAMES):
            idx = np.arange(w0, min(n, w0 + WINDOW_FRAMES))
            if not np.any(shard.mouth_weight[idx] > 0):
                continue
            # Pad a short last window by repeating its last frame (dropped after decoding).
            full = np.concatenate([idx, np.full(WINDOW_FRAMES - len(idx), idx[-1])])
            t0 = time.perf_counter()
            pixels = torch.from_numpy(shard.crops[full]).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # f 3 S S
            masked = self._encode(pixels * mask)  # f 4 h w
            ref = self._encode(pixels)
            h, w = masked.shape[-2:]
            cond = WindowConditioning(
                mask=F.interpolate(mask[None, None], size=(h, w))[:, :, None].expand(1, 1, WINDOW_FRAMES, h, w),
                masked=masked.permute(1, 0, 2, 3)[None],  # 1 4 f h w
                ref=ref.permute(1, 0, 2, 3)[None],
                audio=torch.from_numpy(shard.tokens[full]).to(self.device),  # f N D
            )
            t1 = time.perf_counter()
            gen = torch.Generator().manual_seed(window_seed(opts.seed, shard.plan.clip_id, first_window + w0 // WINDOW_FRAMES))
            scheduler = make_scheduler(opts.sampler, self.settings.scheduler_config)
            noise = initial_noise(1, WINDOW_FRAMES, h, w, generator=gen, device=self.device) * scheduler.init_noise_sigma
            latents = denoise_window(
                self.unet, noise, cond, sampler=opts.sampler, steps=steps, guidance=guidance,
                scheduler_config=self.settings.scheduler_config, generator=gen,
            )
            t2 = time.perf_counter()
            z = latents[0].permute(1, 0, 2, 3) / self.settings.scaling_factor + self.settings.shift_factor  # f 4 h w
            decoded = self.vae.decode(z).sample.clamp(-1, 1)  # f 3 S S
            face = decoded * (1 - mask) + pixels * mask
            out = ((face + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
            generated[idx] = out[: len(idx)]
            t_vae += (t1 - t0) + (time.perf_counter() - t2)
            t_unet += t2 - t1
        shard.generated = generated
        shard.timings["vae"] = shard.timings.get("vae", 0.0) + t_vae
        shard.timings["unet"] = shard.timings.get("unet", 0.0) + t_unet
        return shard
