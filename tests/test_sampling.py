"""Window samplers: LatentSync's DDIM loop reproduced step for step, and the LCM student path."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lsray.models.unet import LipSyncUNet
from lsray.sampling.guidance import guidance_embedding
from lsray.sampling.window import WindowConditioning, denoise_window, initial_noise, visited_timesteps


@pytest.fixture(scope="module")
def fixture(parity_dir):
    d = parity_dir / "unet_small"
    return d, load_file(d / "denoise.safetensors")


def _cond(data) -> WindowConditioning:
    return WindowConditioning(data["mask"], data["masked_image_latents"], data["ref_latents"], data["audio"])


@pytest.mark.parametrize("run", ["cfg", "nocfg"])
def test_ddim_loop_matches_upstream(fixture, run):
    d, data = fixture
    unet = LipSyncUNet.from_latentsync(d / "latentsync_unet.pt", d / "config.json")
    steps, guidance = int(data[f"{run}.steps"]), float(data[f"{run}.guidance"])
    assert visited_timesteps("ddim", steps) == data[f"{run}.timesteps"].tolist()
    out = denoise_window(unet, data["latents_init"], _cond(data), steps=steps, guidance=guidance)
    err = (out - data[f"{run}.latents_out"]).abs().max().item()
    print(f"denoise {run}: max abs error {err:.2e}")
    assert err < 1e-4


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_lcm_student_samples_in_few_steps(fixture, steps):
    d, data = fixture
    student = LipSyncUNet.from_latentsync(d / "latentsync_unet.pt", d / "config.json", time_cond_proj_dim=32)
    calls = []
    student.register_forward_hook(lambda *_: calls.append(1))
    out = denoise_window(student, data["latents_init"], _cond(data), sampler="lcm", steps=steps, guidance=1.5,
                         generator=torch.Generator().manual_seed(0))
    assert out.shape == data["latents_init"].shape and torch.isfinite(out).all()
    assert len(calls) == steps  # one forward per step: no unconditional pass


def test_lcm_needs_a_student(fixture):
    d, data = fixture
    teacher = LipSyncUNet.from_latentsync(d / "latentsync_unet.pt", d / "config.json")
    with pytest.raises(ValueError, match="time_cond_proj_dim"):
        denoise_window(teacher, data["latents_init"], _cond(data), sampler="lcm", steps=2)


def test_guidance_embedding_distinguishes_scales():
    e = guidance_embedding(torch.tensor([1.0, 1.5, 2.0]), 32)
    assert e.shape == (3, 32)
    assert torch.allclose(e[0], guidance_embedding(1.0, 32)[0])
    assert not torch.allclose(e[1], e[2])


def test_initial_noise_is_one_frame_repeated():
    z = initial_noise(2, 8, 4, 4, generator=torch.Generator().manual_seed(1))
    assert z.shape == (2, 4, 8, 4, 4)
    assert torch.equal(z[:, :, 0], z[:, :, 7]) and not torch.equal(z[0], z[1])


@pytest.mark.parametrize("shared", [0.0, 0.5, 1.0])
def test_training_noise_shares_the_asked_fraction_of_its_variance(shared):
    from lsray.train.latents import sample_noise

    n = sample_noise(torch.zeros(64, 4, 2, 8, 8), shared, torch.Generator().manual_seed(0))
    a, b = n[:, :, 0].flatten(), n[:, :, 1].flatten()
    assert abs(float(a.var()) - 1) < 0.05 and abs(float(b.var()) - 1) < 0.05
    assert abs(float((a * b).mean()) - shared) < 0.05  # frame-to-frame covariance = the shared part
    with pytest.raises(ValueError):
        sample_noise(torch.zeros(1, 4, 2, 8, 8), 1.5)
