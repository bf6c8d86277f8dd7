"""Upgrade 2's lip discriminator: size, shapes, losses, warm-up."""

from __future__ import annotations

import torch

from lsray.models.discriminator import (
    DiscriminatorConfig,
    MultiScaleDiscriminator,
    adversarial_weight,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
)


def test_full_size_is_about_20m_parameters_on_three_scales():
    d = MultiScaleDiscriminator()  # the default config is the full-size one
    n = sum(p.numel() for p in d.parameters())
    print(f"discriminator parameters: {n / 1e6:.1f} M")
    assert 15e6 < n < 25e6
    out = d(torch.randn(1, 3, 96, 96))
    assert len(out) == 3
    sizes = [logits.shape[-1] for _, logits in out]
    assert sizes[0] > sizes[1] > sizes[2] >= 1


def test_losses_and_feature_matching():
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(ndf=8, n_layers=2, crop_size=48, norm_groups=4)
    for kind in ("hinge", "lsgan"):
        d = MultiScaleDiscriminator(cfg.model_copy(update={"loss": kind}))
        real, fake = d(torch.randn(2, 3, 48, 48)), d(torch.randn(2, 3, 48, 48))
        assert discriminator_loss(real, fake, kind).item() >= 0
        assert torch.isfinite(generator_adv_loss(fake, kind))
        assert feature_matching_loss(real, real).item() == 0.0
        assert feature_matching_loss(real, fake).item() > 0


def test_adversarial_weight_warms_up_linearly_from_zero():
    assert adversarial_weight(0, 0.1, 100) == 0.0
    assert abs(adversarial_weight(50, 0.1, 100) - 0.05) < 1e-12
    assert adversarial_weight(100, 0.1, 100) == 0.1
    assert adversarial_weight(10_000, 0.1, 100) == 0.1
    assert adversarial_weight(5, 0.1, 100, start_step=10) == 0.0
