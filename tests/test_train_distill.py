"""Consistency distillation (upgrade 4): the 4-step student gets closer to the 20-step teacher."""

from __future__ import annotations

import pytest
import torch

from lsray.bundle import load_bundle
from lsray.sampling import WindowConditioning, denoise_window, initial_noise, make_scheduler
from lsray.train.config import load_job_config
from lsray.train.data import collate, local_sequences
from lsray.train.distill import boundary_scalings, student_from_teacher
from lsray.models.codec import LatentCodec
from lsray.train.latents import InpaintingInputs
from lsray.train.runner import train_local
from lsray.train.tiny import make_tiny_bundle, synthetic_shards

SIZE, FRAMES = 32, 4


def test_boundary_conditions():
    c_skip, c_out = boundary_scalings(torch.tensor([0, 999]))
    assert float(c_skip[0]) == 1.0 and float(c_out[0]) == 0.0
    assert float(c_skip[1]) < 1e-4 and float(c_out[1]) > 0.99


@pytest.mark.slow
def test_distilled_student_is_closer_to_teacher(tmp_path):
    teacher_dir = make_tiny_bundle(tmp_path / "teacher")
    shards = synthetic_shards(tmp_path / "shards", clips=2, frames=24, size=SIZE)
    held_out = synthetic_shards(tmp_path / "held-out", clips=1, frames=FRAMES, size=SIZE, seed=5)
    teacher = load_bundle(teacher_dir, device="cpu")

    # held-out conditioning, encoded exactly as the trainer does
    inputs = InpaintingInputs(LatentCodec(teacher.vae, teacher.config.vae.scaling_factor, 0.0), teacher.mask, SIZE)
    lb = inputs.prepare(collate(local_sequences(str(held_out), seq_len=FRAMES, stride=FRAMES, image_size=SIZE)),
                       torch.device("cpu"))
    cond = WindowConditioning(mask=lb.side[:, :1], masked=lb.side[:, 1:5], ref=lb.side[:, 5:], audio=lb.audio)

    def sample(unet, sampler: str, steps: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = initial_noise(1, FRAMES, SIZE // 8, SIZE // 8, generator=g) * make_scheduler(sampler).init_noise_sigma
        return denoise_window(unet, z, cond, sampler=sampler, steps=steps, guidance=1.5,
                              generator=torch.Generator().manual_seed(seed + 100))

    targets = [sample(teacher.unet, "ddim", 20, k) for k in range(3)]

    def distance(student, steps: int = 4) -> float:
        return sum(float((sample(student, "lcm", steps, k) - targets[k]).pow(2).mean()) for k in range(3)) / 3

    before = distance(student_from_teacher(teacher.unet, 32).eval())
    cfg = load_job_config({
        "job": "distill", "teacher": str(teacher_dir), "out": str(tmp_path / "student"), "steps": 80, "lr": 3e-4,
        "time_cond_proj_dim": 32, "num_ddim_timesteps": 20, "ema_decay": 0.95,
        "data": {"shards": str(shards), "image_size": SIZE, "seq_len": FRAMES, "stride": 2, "batch_size": 4},
    })
    _, hist = train_local(cfg)
    student = load_bundle(tmp_path / "student", device="cpu")
    after = distance(student.unet)
    print(f"student(4 LCM steps) vs teacher(20 DDIM steps, w=1.5) MSE: before {before:.3f} -> after {after:.3f}")
    assert after < before

    assert student.config.sampler.method == "lcm" and student.config.sampler.num_inference_steps == 4
    assert student.config.lcm is not None and student.config.lcm.time_cond_proj_dim == 32
    for steps in (1, 2, 4):  # samples in 1, 2 or 4 steps with LCMScheduler
        out = sample(student.unet, "lcm", steps, 7)
        assert out.shape == (1, 4, FRAMES, SIZE // 8, SIZE // 8) and torch.isfinite(out).all()
