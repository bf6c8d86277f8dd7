"""Consistency distillation (upgrade 4): the 4-step student gets closer to the 20-step teacher."""

from __future__ import annotations

import pytest
import torch

from lsray.bundle import load_bundle
from lsray.sampling.schedulers import make_scheduler
from lsray.sampling.window import WindowConditioning, denoise_window, initial_noise
from lsray.train.config import load_job_config
from lsray.train.data import collate, local_sequences
from lsray.train.distill import boundary_scalings, student_from_teacher
from lsray.models.codec import LatentCodec
from lsray.train.latents import InpaintingInputs
from lsray.train.runner import train_local
from lsray.train.tiny import make_tiny_bundle, synthetic_shards, tiny_unet_config

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


# --------------------------------------------------------------------------------------------
# Long-range anchors: the student keeps the anchor conditioning (pinned keyframes, frame times)
# --------------------------------------------------------------------------------------------
LONG = 64


@pytest.fixture(scope="module")
def anchored(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("distill-anchors")
    unet = tiny_unet_config(temporal={"band": 2, "anchor_stride": 8, "max_len": 64})
    return {"teacher": make_tiny_bundle(root / "teacher", unet_config=unet),
            "shards": synthetic_shards(root / "shards", clips=1, frames=LONG, size=SIZE), "root": root}


def distill_config(anchored: dict, seq_len: int = LONG, **over):
    cfg = {"job": "distill", "teacher": str(anchored["teacher"]), "out": str(anchored["root"] / "student"),
           "lr": 1e-3, "time_cond_proj_dim": 32,
           "data": {"shards": str(anchored["shards"]), "image_size": SIZE, "seq_len": seq_len, "stride": seq_len,
                    "batch_size": 1}}
    cfg.update(over)
    return load_job_config(cfg)


def spy_forward(monkeypatch, unet, name: str, calls: list) -> None:
    forward = unet.forward

    def spy(sample, timestep, audio, *args, positions=None, **kwargs):
        calls.append({"unet": name, "sample": sample.detach().clone(), "audio": audio.detach().clone(),
                      "positions": positions})
        return forward(sample, timestep, audio, *args, positions=positions, **kwargs)

    monkeypatch.setattr(unet, "forward", spy)


@pytest.mark.parametrize("kind", ["pinned", "keyframes"])
def test_distillation_keeps_the_anchor_conditioning(anchored, monkeypatch, kind):
    """A 64-frame sequence: student, teacher (both guidance branches) and EMA target all see the
    clean latents at the pinned frames and the frame times; the loss leaves pinned frames out."""
    import lsray.train.distill as distill

    anchors = ({"pin_probability": 1.0, "keyframe_probability": 0.0} if kind == "pinned"
               else {"keyframe_probability": 1.0, "overlap": 1})
    cfg = distill_config(anchored, anchors=anchors)
    torch.manual_seed(0)
    job = distill.DistillJob(cfg, torch.device("cpu"))
    batch = collate(local_sequences(cfg.data.shards, seq_len=LONG, stride=LONG, image_size=SIZE))
    with torch.no_grad():
        lb = job.inputs.prepare(batch, torch.device("cpu"))
    calls: list[dict] = []
    for name in ("student", "teacher", "target"):
        spy_forward(monkeypatch, getattr(job, name), name, calls)
    compared = []
    huber = distill.pseudo_huber
    monkeypatch.setattr(distill, "pseudo_huber", lambda a, b, c: compared.append(a.shape[2]) or huber(a, b, c))
    before = {n: p.detach().clone() for n, p in job.student.named_parameters()}
    m = job.step(batch, 0)
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values()), m
    assert any(not torch.equal(p, before[n]) for n, p in job.student.named_parameters())

    assert [c["unet"] for c in calls] == ["student", "teacher", "teacher", "target"]
    keys = torch.arange(LONG) % 8 == 0
    if kind == "pinned":
        for c in calls:  # x_t for student and teacher, x_s for the target: keyframes clean in all
            assert c["positions"] is None and c["sample"].shape[2] == LONG
            assert torch.equal(c["sample"][:, :4, keys], lb.latents[:, :, keys]), c["unet"]
            assert not torch.equal(c["sample"][:, :4, ~keys], lb.latents[:, :, ~keys])
        assert compared == [int((~keys).sum())]  # the consistency loss: unpinned frames only
    else:
        k = LONG // 8
        key_latents = lb.latents[:, :, keys]
        first_pinned = torch.equal(calls[0]["sample"][:, :4, :1], key_latents[:, :, :1])  # overlap 1: 0 or 1 pinned
        for c in calls:
            assert c["positions"].tolist() == list(range(0, LONG, 8)) and c["sample"].shape[2] == k
            assert torch.equal(c["sample"][:, 4:], lb.side[:, :, keys])
            assert torch.equal(c["sample"][:, :4, :1], key_latents[:, :, :1]) == first_pinned
            assert not torch.equal(c["sample"][:, :4, 1:], key_latents[:, :, 1:])
        audio = lb.audio.view(1, LONG, *lb.audio.shape[1:])[:, keys].flatten(0, 1)
        assert torch.equal(calls[0]["audio"], audio) and torch.equal(calls[3]["audio"], audio)
        assert compared == [k - int(first_pinned)]


def test_distillation_without_anchors_is_unchanged(anchored):
    """anchors None is today's step; a layout that pins nothing gives the very same loss (it is
    drawn after the solver interval, noise and guidance scale)."""
    from lsray.train.distill import DistillJob

    losses = []
    for anchors in (None, {"pin_probability": 0.0, "keyframe_probability": 0.0}):
        cfg = distill_config(anchored, seq_len=16, anchors=anchors)
        torch.manual_seed(0)
        job = DistillJob(cfg, torch.device("cpu"))
        batch = collate(local_sequences(cfg.data.shards, seq_len=16, stride=16, image_size=SIZE)[:2])
        losses.append(job.losses(batch, 0, generator=torch.Generator().manual_seed(4))["total"])
    assert torch.equal(losses[0], losses[1])


def test_distillation_anchors_need_a_teacher_with_anchor_stride(tmp_path):
    from lsray.errors import LsrayError
    from lsray.train.distill import DistillJob

    teacher = make_tiny_bundle(tmp_path / "plain")  # no temporal.anchor_stride
    cfg = load_job_config({"job": "distill", "teacher": str(teacher), "out": str(tmp_path / "out"), "anchors": {},
                           "data": {"shards": str(tmp_path), "image_size": SIZE}})
    with pytest.raises(LsrayError, match="anchor_stride"):
        DistillJob(cfg, torch.device("cpu"))
