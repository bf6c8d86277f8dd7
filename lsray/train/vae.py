"""Autoencoder training on face crops (``job: vae``).

LatentSync borrows Stable Diffusion's VAE. Where that cannot be downloaded (the demo bundle is
trained here, offline, from the synthetic world) the project trains its own small AutoencoderKL
of the same layout: 4 latent channels, /8. The export is a diffusers ``save_pretrained``
directory plus ``latent_stats.json``: the latent mean and ``1 / std`` measured over training,
which become the bundle's ``vae.shift_factor`` / ``vae.scaling_factor`` (SD's 0.18215 is the same
quantity for its VAE), so the UNet sees unit-variance latents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lsray.train.config import VAETrainConfig
from lsray.train.optim import clipped_step, data_parallel

STATS_FILE = "latent_stats.json"


def build_vae(cfg: VAETrainConfig):
    from diffusers import AutoencoderKL

    if cfg.init:
        return AutoencoderKL.from_pretrained(cfg.init)
    m = cfg.model
    n = len(m.block_out_channels)
    return AutoencoderKL(
        block_out_channels=m.block_out_channels, layers_per_block=m.layers_per_block, norm_num_groups=m.norm_num_groups,
        latent_channels=m.latent_channels, down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
    )


def read_latent_stats(vae_dir: str | Path) -> dict[str, float]:
    """``{"scaling_factor", "shift_factor"}`` written by the export."""
    return json.loads((Path(vae_dir) / STATS_FILE).read_text())


class AutoencoderPass(torch.nn.Module):
    """Encode, sample, decode in one ``forward`` (what DistributedDataParallel wraps)."""

    def __init__(self, vae, sample: bool = True) -> None:
        super().__init__()
        self.vae, self.sample = vae, sample

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(images).latent_dist
        z = posterior.sample() if self.sample else posterior.mode()  # the mean, as inference encodes
        return self.vae.decode(z).sample, posterior.mean, posterior.logvar


class VAEJob:
    """Model, optimizer and step of the autoencoder training on one worker."""

    def __init__(self, cfg: VAETrainConfig, device: torch.device, world: int = 1) -> None:
        from lsray.face.mask import load_inpaint_mask
        from lsray.train.data import load_mask

        self.cfg, self.device = cfg, device
        self.vae = build_vae(cfg).to(device).train()
        if cfg.decoder_only:
            if not cfg.init:
                raise ValueError("decoder_only needs init: the autoencoder whose encoder stays fixed")
            for module in (self.vae.encoder, self.vae.quant_conv):
                module.requires_grad_(False).eval()
        passes = AutoencoderPass(self.vae, sample=not cfg.decoder_only)
        self.model = data_parallel(passes, world)
        self.opt = torch.optim.AdamW([p for p in self.vae.parameters() if p.requires_grad], lr=cfg.lr)
        size = cfg.data.image_size
        keep = load_inpaint_mask(cfg.mask, size) if cfg.mask else load_mask(cfg.data.shards, size)
        # (1, 1, S, S): 1 everywhere plus mouth_weight where the UNet regenerates the face
        self.weight = torch.from_numpy(1.0 + cfg.mouth_weight * (1.0 - keep))[None, None].float().to(device)
        # running latent moments (sum, sum of squares, count) for latent_stats.json
        self._moments = torch.zeros(3, dtype=torch.float64)

    def state_dict(self) -> dict[str, Any]:
        return {"vae": self.vae.state_dict(), "opt": self.opt.state_dict(), "moments": self._moments}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.vae.load_state_dict(state["vae"])
        self.opt.load_state_dict(state["opt"])
        self._moments = state["moments"].clone()

    def latent_stats(self) -> dict[str, float]:
        if self.cfg.decoder_only:
            return read_latent_stats(self.cfg.init)  # same encoder, same latents: same scaling
        s, s2, n = (float(x) for x in self._moments)
        if n == 0:
            return {"scaling_factor": 1.0, "shift_factor": 0.0}
        mean = s / n
        std = max((s2 / n - mean * mean) ** 0.5, 1e-6)
        return {"scaling_factor": 1.0 / std, "shift_factor": mean}

    def export(self, out: str) -> None:
        from lsray.media.atomic import atomic_directory

        with atomic_directory(out) as tmp:
            self.vae.save_pretrained(str(tmp), safe_serialization=True)
            (Path(tmp) / STATS_FILE).write_text(json.dumps(self.latent_stats(), indent=2))

    def losses(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        images = batch["frames"].flatten(0, 1).to(self.device)  # (b f) 3 S S in [-1, 1]
        recon, mean, logvar = self.model(images)  # (b f) 3 S S; (b f) 4 S/8 S/8 twice
        l1 = (F.l1_loss(recon, images, reduction="none") * self.weight).mean() / self.weight.mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()  # per latent element
        with torch.no_grad():
            mu = mean.double().cpu()
            self._moments += torch.tensor([mu.sum().item(), (mu * mu).sum().item(), float(mu.numel())], dtype=torch.float64)
            psnr = -10 * torch.log10(F.mse_loss((recon.clamp(-1, 1) + 1) / 2, (images + 1) / 2).clamp_min(1e-10))
        return {"total": l1 + self.cfg.kl_weight * kl, "l1": l1.detach(), "kl": kl.detach(), "psnr": psnr}

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        out = self.losses(batch, step)
        clipped_step(self.opt, out["total"], self.cfg.max_grad_norm)
        return {k: float(v.detach()) for k, v in out.items()}


def reconstruction_psnr(vae, images: np.ndarray) -> float:
    """PSNR (dB) of ``vae``'s encode-decode of uint8 images (N, S, S, 3)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    mse = F.mse_loss((y + 1) / 2, (x + 1) / 2).item()
    return float(-10 * np.log10(max(mse, 1e-10)))
