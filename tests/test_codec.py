"""One LatentCodec for sampling and training: bit-identical to the formulas each used before."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL

from lsray.models.codec import LatentCodec

SCALE, SHIFT = 0.19, 0.012


@pytest.fixture(scope="module")
def vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2).eval()


def _pixels(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1


@torch.no_grad()
def test_frames_match_the_sample_stage_formulas(vae):
    codec = LatentCodec(vae, SCALE, SHIFT)
    pixels = _pixels(3, 3, 16, 16)  # f 3 S S
    z = codec.encode(pixels)
    assert torch.equal(z, (vae.encode(pixels).latent_dist.mode() - SHIFT) * SCALE)  # f 4 h w
    video = codec.encode_video(pixels)
    assert video.shape == (1, 4, 3, 8, 8) and torch.equal(video, z.permute(1, 0, 2, 3)[None])  # 1 4 f h w
    lat = video[0] + 0.3  # c f h w, as the UNet returns one window
    old = vae.decode(lat.permute(1, 0, 2, 3) / SCALE + SHIFT).sample  # the sample stage's _unscale + decode
    assert torch.equal(codec.decode_video(lat), old)  # f 3 S S
    assert torch.equal(codec.decode(lat.transpose(0, 1)), old)


def test_videos_match_the_training_formulas(vae):
    codec = LatentCodec(vae, SCALE, SHIFT)
    pixels = _pixels(2, 3, 3, 16, 16)  # b f 3 S S
    with torch.no_grad():
        z = (vae.encode(pixels.flatten(0, 1)).latent_dist.mode() - SHIFT) * SCALE
        old = z.view(2, 3, *z.shape[1:]).transpose(1, 2)  # b 4 f h w
    latents = codec.encode_video(pixels)
    assert torch.equal(latents, old) and not latents.requires_grad
    x0 = (latents + 0.1).requires_grad_()
    decoded = codec.decode_video(x0)  # b f 3 S S
    ref = vae.decode(x0.transpose(1, 2).flatten(0, 1) / SCALE + SHIFT).sample.view(2, 3, 3, 16, 16)
    assert torch.equal(decoded, ref)
    decoded.sum().backward()  # differentiable: training's pixel losses reach the UNet
    assert x0.grad is not None and x0.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in vae.parameters())  # the VAE itself stays frozen


def test_bundle_codec_uses_its_vae_and_scaling(tiny_bundle):
    from lsray.bundle import load_bundle

    bundle = load_bundle(tiny_bundle, device="cpu", lazy=True)
    codec = bundle.codec
    assert codec.vae is bundle.vae and codec is bundle.codec
    assert (codec.scaling_factor, codec.shift_factor) == (bundle.config.vae.scaling_factor, bundle.config.vae.shift_factor)
