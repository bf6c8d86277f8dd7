"""Denoising one window of frames: LatentSync's DDIM loop and the 1-4 step LCM path.

A window is F frames of one clip in latent space. The UNet input is
``[noisy latents (4), mask (1), masked-frame latents (4), reference latents (4)]`` along channels.
DDIM uses classifier-free guidance with zeroed audio as the unconditional branch (one batched
forward of [uncond, cond]); LCM students take the guidance scale as an embedding instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lsray.models.unet import DeepCache, LipSyncUNet
from lsray.sampling.guidance import guidance_embedding
from lsray.sampling.pins import pin_latents
from lsray.sampling.schedulers import SamplerKind, SchedulerConfig, make_scheduler


@dataclass
class WindowConditioning:
    """What the UNet sees besides the noisy latents, for B clips of F frames.

    mask: (B, 1, F, h, w), 1 = keep, 0 = regenerate; masked, ref: (B, 4, F, h, w), already
    VAE-scaled; audio: (B*F, N, D) per-frame audio tokens.
    """

    mask: torch.Tensor
    masked: torch.Tensor
    ref: torch.Tensor
    audio: torch.Tensor


def initial_noise(
    batch: int, frames: int, height: int, width: int, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu", channels: int = 4,
) -> torch.Tensor:
    """LatentSync's start: ONE noise frame per clip, repeated over the window's frames.

    Returns (B, channels, F, h, w) (``channels``: the VAE's latent channels). Sharing the noise
    across frames is what keeps the unmasked texture steady from frame to frame. Scale by the
    scheduler's ``init_noise_sigma`` before use.
    """
    noise = torch.randn((batch, channels, 1, height, width), generator=generator, dtype=dtype, device="cpu")
    return noise.to(device).repeat(1, 1, frames, 1, 1)


@torch.no_grad()
def denoise_window(
    unet: LipSyncUNet,
    latents: torch.Tensor,
    cond: WindowConditioning,
    *,
    sampler: SamplerKind = "ddim",
    steps: int = 20,
    guidance: float = 1.5,
    scheduler_config: SchedulerConfig | dict | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    lcm_grid: int | None = None,
    deep_cache: int = 1,
    pinned: torch.Tensor | None = None,
    pins: torch.Tensor | None = None,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the sampler from ``latents`` (B, 4, F, h, w) (already times ``init_noise_sigma``).

    Returns the denoised latents (B, 4, F, h, w). DDIM reproduces upstream's
    ``LipsyncPipeline`` loop step for step; LCM returns the scheduler's denoised estimate on the
    distillation's timestep grid ``lcm_grid``. DPM-Solver++ runs the DDIM loop's guidance with
    its own update. ``deep_cache`` N > 1: only one step in N runs the whole UNet (DeepCache).

    Latents and the scheduler's arithmetic stay float32; the UNet runs in its own dtype (fp16 /
    bf16 weights get their inputs cast and their output upcast), so low precision costs only
    the UNet's own rounding.

    Long-range anchors: ``pins`` (B, 1, F, 1, 1) bool marks frames already decided, whose clean
    latents ``pinned`` (B, 4, F, h, w) the UNet sees at every step and the result returns exactly
    (:mod:`lsray.sampling.pins`); ``positions`` (F,) are the frames' times when they are not
    consecutive (the anchor pass's keyframes).
    """
    dtype = unet.dtype
    cache = DeepCache(deep_cache) if deep_cache > 1 else None
    if positions is not None:
        positions = positions.to(latents.device)

    def model(x: torch.Tensor, t: torch.Tensor, audio: torch.Tensor, i: int, **kw) -> torch.Tensor:
        extra = {"cache": cache.at_step(i)} if cache is not None else {}
        if positions is not None:
            extra["positions"] = positions
        return unet(x.to(dtype), t, audio.to(dtype), **kw, **extra).float()

    def pin(x: torch.Tensor) -> torch.Tensor:
        return pin_latents(x, pinned, pins)

    scheduler = make_scheduler(sampler, scheduler_config, lcm_grid if sampler == "lcm" else None)
    scheduler.set_timesteps(steps, device=latents.device)
    b = latents.shape[0]
    side = torch.cat([cond.mask, cond.masked, cond.ref], dim=1)  # B 9 F h w

    if sampler == "lcm":
        dim = unet.config.time_cond_proj_dim
        if dim is None:
            raise ValueError("the LCM sampler needs a distilled student (time_cond_proj_dim is unset)")
        w_emb = guidance_embedding(guidance, dim, b).to(latents.device, dtype)
        denoised = latents
        for i, t in enumerate(scheduler.timesteps):
            x = torch.cat([scheduler.scale_model_input(pin(latents), t), side], dim=1)
            eps = model(x, t, cond.audio, i, timestep_cond=w_emb)
            latents, denoised = scheduler.step(eps, t, latents, generator=generator, return_dict=False)
        return pin(denoised)

    use_cfg = guidance > 1.0
    if use_cfg:
        side = torch.cat([side, side])
        audio = torch.cat([torch.zeros_like(cond.audio), cond.audio])  # [uncond; cond], batch-major
    else:
        audio = cond.audio
    step_kw = {"eta": 0.0} if sampler == "ddim" else {}  # DDIM deterministic; DPM-Solver++ has no eta
    for i, t in enumerate(scheduler.timesteps):
        x = pin(latents)
        x = torch.cat([x, x]) if use_cfg else x
        x = torch.cat([scheduler.scale_model_input(x, t), side], dim=1)  # (2)B 13 F h w
        eps = model(x, t, audio, i)
        if use_cfg:
            uncond, audio_eps = eps.chunk(2)
            eps = uncond + guidance * (audio_eps - uncond)
        latents = scheduler.step(eps, t, latents, generator=generator, **step_kw).prev_sample
    return pin(latents)


def visited_timesteps(sampler: SamplerKind, steps: int, scheduler_config: SchedulerConfig | dict | None = None,
                      lcm_grid: int | None = None) -> list[int]:
    """The timesteps a sampler visits for ``steps`` steps (e.g. DDIM 4 -> [751, 501, 251, 1])."""
    scheduler = make_scheduler(sampler, scheduler_config, lcm_grid if sampler == "lcm" else None)
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]
