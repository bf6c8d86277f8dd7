"""Upgrade 2: the lip discriminator, a multi-scale PatchGAN on 96x96 mouth crops (training only).

Three pix2pix-style PatchGANs (DESIGN.md #2) see the mouth crop at full, half and quarter size;
each returns its intermediate feature maps (for feature matching) and a patch logit map. The
discriminator lives beside the UNet during stage 2 with its own optimizer and is never written
into an inference bundle (:mod:`lsray.train.stage2` saves it only inside training checkpoints).

Losses: ``hinge`` or ``lsgan`` (config), plus L1 feature matching of the generator's crops to the
real crops' discriminator features.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class DiscriminatorConfig(BaseModel):
    """Default = full size: 3 scales x (ndf 96, 3 layers) ~ 19.6 M parameters on 96x96 crops."""

    model_config = ConfigDict(extra="forbid")

    crop_size: int = Field(96, ge=16)
    num_scales: int = Field(3, ge=1)
    ndf: int = Field(96, ge=4)
    n_layers: int = Field(3, ge=1)
    max_channels: int = 768
    norm_groups: int = 8  # GroupNorm keeps D independent of the (tiny, per-worker) batch
    loss: Literal["hinge", "lsgan"] = "hinge"


class PatchDiscriminator(nn.Module):
    """One PatchGAN: k4 convs (stride 2 for the first ``n_layers``), then two stride-1 convs."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        chans = [3] + [min(cfg.ndf * 2**i, cfg.max_channels) for i in range(cfg.n_layers + 1)]
        layers: list[nn.Module] = []
        for i in range(cfg.n_layers + 1):
            stride = 2 if i < cfg.n_layers else 1
            norm: nn.Module = nn.Identity() if i == 0 else nn.GroupNorm(min(cfg.norm_groups, chans[i + 1]), chans[i + 1])
            layers.append(nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 4, stride, 1), norm, nn.LeakyReLU(0.2, True)))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Conv2d(chans[-1], 1, 4, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats, self.head(x)  # logits: n 1 h' w'


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on the crop downsampled by 2 each scale (pix2pixHD)."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        self.scales = nn.ModuleList(PatchDiscriminator(self.config) for _ in range(self.config.num_scales))

    def forward(self, crops: torch.Tensor) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        # crops: n 3 S S in [-1, 1]
        out = []
        x = crops
        for i, disc in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(disc(x))
        return out


def discriminator_loss(real: list, fake: list, kind: str = "hinge") -> torch.Tensor:
    """D's loss on real vs (detached) generated crops, averaged over scales."""
    total = 0.0
    for (_, r), (_, f) in zip(real, fake):
        if kind == "hinge":
            total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            total = total + 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()
    return total / len(real)


def generator_adv_loss(fake: list, kind: str = "hinge") -> torch.Tensor:
    """G's adversarial loss on D's output for generated crops, averaged over scales."""
    total = 0.0
    for _, f in fake:
        total = total + (-f.mean() if kind == "hinge" else ((f - 1) ** 2).mean())
    return total / len(fake)


def feature_matching_loss(real: list, fake: list) -> torch.Tensor:
    """L1 between D's features of generated and real crops (real detached), mean over layers/scales."""
    total, n = 0.0, 0
    for (rf, _), (ff, _) in zip(real, fake):
        for a, b in zip(rf, ff):
            total = total + F.l1_loss(b, a.detach())
            n += 1
    return total / max(n, 1)


def adversarial_weight(step: int, weight: float = 0.1, warmup_steps: int = 1000, start_step: int = 0) -> float:
    """Linear warm-up from 0 at ``start_step`` to ``weight`` at ``start_step + warmup_steps``."""
    if step < start_step:
        return 0.0
    if warmup_steps <= 0:
        return weight
    return weight * min(1.0, (step - start_step) / warmup_steps)
