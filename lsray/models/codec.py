"""Pixels <-> the UNet's latents: one frozen VAE and the bundle's latent scaling.

Inference (the sample stage) and training (stage 2, distillation) must see exactly the same
latents, or a model trained on one scaling is sampled with another; so the encode / scale /
decode formulas live here once. Encoding takes the posterior's mode, not a sample: the result
is deterministic (upstream LatentSync draws a sample; the difference is far below the VAE's
reconstruction error) and a window's latents do not depend on a random stream.

Latents are ``(z - shift_factor) * scaling_factor`` (SD's VAE: shift 0, scale 0.18215; a VAE
trained by ``lsray train vae`` writes its own, see :mod:`lsray.train.vae`).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL


class LatentCodec:
    """Frozen AutoencoderKL + latent scaling. Frame batches are ``(n, 3, S, S)`` pixels in
    [-1, 1] <-> ``(n, 4, h, w)`` scaled latents; videos are the UNet's layout, channels before
    frames: ``(b, 4, f, h, w)`` (or one video ``(4, f, h, w)``)."""

    def __init__(self, vae: AutoencoderKL, scaling_factor: float, shift_factor: float = 0.0) -> None:
        self.vae = vae.requires_grad_(False).eval()  # never trained through the codec
        self.scaling_factor, self.shift_factor = scaling_factor, shift_factor

    def to(self, device: torch.device | str) -> "LatentCodec":
        self.vae.to(device)
        return self

    # -- frames ---------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) in [-1, 1] -> (n, 4, h, w) scaled latents (the posterior's mode)."""
        z = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mode().float()  # n 4 h w
        return (z - self.shift_factor) * self.scaling_factor

    def unscale(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> the VAE's own latent space (any layout)."""
        return latents / self.scaling_factor + self.shift_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(n, 4, h, w) scaled latents -> (n, 3, S, S) pixels, not clamped. Differentiable:
        training's pixel losses reach the UNet through it (wrap in ``torch.no_grad`` otherwise)."""
        return self.vae.decode(self.unscale(latents).to(self.vae.dtype)).sample.float()

    # -- videos (the UNet's layout) ---------------------------------------------------------------
    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """(b, f, 3, S, S) or one video (f, 3, S, S) -> (b, 4, f, h, w) (b = 1 for one video)."""
        if pixels.dim() == 4:
            pixels = pixels[None]
        b, f = pixels.shape[:2]
        z = self.encode(pixels.flatten(0, 1))  # (b f) 4 h w
        return z.view(b, f, *z.shape[1:]).transpose(1, 2)  # b 4 f h w

    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """(b, 4, f, h, w) -> (b, f, 3, S, S); one video (4, f, h, w) -> (f, 3, S, S)."""
        if latents.dim() == 4:
            return self.decode(latents.transpose(0, 1))  # f 4 h w -> f 3 S S
        b, _, f = latents.shape[:3]
        x = self.decode(latents.transpose(1, 2).flatten(0, 1))  # (b f) 3 S S
        return x.view(b, f, *x.shape[1:])
