"""Autoencoder training (``job: vae``) and the x0 / v objectives of stage 2 on tiny models (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lsray.train.config import load_job_config
from lsray.train.tiny import synthetic_shards

SIZE = 32


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return synthetic_shards(tmp_path_factory.mktemp("vae") / "shards", clips=2, frames=24, size=SIZE)


def test_vae_job_learns_to_reconstruct_and_exports_latent_stats(shards, tmp_path):
    from diffusers import AutoencoderKL

    from lsray.train.data import load_clip, read_index
    from lsray.train.runner import train_local
    from lsray.train.vae import build_vae, read_latent_stats, reconstruction_psnr

    cfg = load_job_config({
        "job": "vae", "out": str(tmp_path / "vae"), "steps": 120, "lr": 2e-3,
        "model": {"block_out_channels": [16, 16, 32, 32], "norm_num_groups": 8},
        "data": {"shards": str(shards), "image_size": SIZE, "seq_len": 4, "stride": 4, "batch_size": 2},
    })
    crops = load_clip(str(shards), read_index(str(shards))[0]["file"])[f"crops_{SIZE}"][:8]
    torch.manual_seed(cfg.data.seed)
    before = reconstruction_psnr(build_vae(cfg).eval(), crops)  # the same initial weights train_local builds
    job, history = train_local(cfg)
    assert np.mean([h["l1"] for h in history[-10:]]) < 0.5 * np.mean([h["l1"] for h in history[:10]])
    vae = AutoencoderKL.from_pretrained(str(tmp_path / "vae")).eval()
    after = reconstruction_psnr(vae, crops)
    assert after > before + 6.0, (before, after)
    stats = read_latent_stats(tmp_path / "vae")
    with torch.no_grad():
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
        z = (vae.encode(x).latent_dist.mean - stats["shift_factor"]) * stats["scaling_factor"]
    assert 0.3 < float(z.std()) < 3.0  # the bundle's scaling gives the UNet roughly unit-variance latents


@pytest.mark.parametrize("kind", ["sample", "v_prediction"])
def test_stage2_objective_follows_the_bundles_prediction_type(kind, tmp_path):
    """Each objective's target, turned back into x0 by predicted_x0, is the clean latent."""
    from lsray.train.latents import add_noise, predicted_x0, prediction_target

    ac = torch.linspace(0.999, 0.01, 1000)
    x0, noise = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    t = torch.tensor([10, 900])
    noisy = add_noise(x0, noise, ac, t)
    for k in ("epsilon", kind):
        target = prediction_target(x0, noise, ac, t, k)
        assert torch.allclose(predicted_x0(target, noisy, ac, t, k), x0, atol=1e-4), k


def test_decoder_only_fine_tune_keeps_every_latent(shards, tmp_path):
    """The encoder (so the latents a UNet was trained on) and the latent scaling stay exactly
    as they were; only the decoder moves."""
    from diffusers import AutoencoderKL

    from lsray.train.runner import train_local
    from lsray.train.vae import read_latent_stats

    data = {"shards": str(shards), "image_size": SIZE, "seq_len": 4, "stride": 4, "batch_size": 2}
    model = {"block_out_channels": [16, 16, 32, 32], "norm_num_groups": 8}
    train_local(load_job_config({"job": "vae", "out": str(tmp_path / "base"), "steps": 5, "model": model, "data": data}))
    train_local(load_job_config({"job": "vae", "out": str(tmp_path / "ft"), "steps": 10, "lr": 2e-3, "model": model,
                                 "data": data, "init": str(tmp_path / "base"), "decoder_only": True}))
    base, ft = (AutoencoderKL.from_pretrained(str(tmp_path / n)).state_dict() for n in ("base", "ft"))
    for key in base:
        same = torch.equal(base[key], ft[key])
        assert same == key.startswith(("encoder.", "quant_conv.")), key
    assert read_latent_stats(tmp_path / "ft") == read_latent_stats(tmp_path / "base")
