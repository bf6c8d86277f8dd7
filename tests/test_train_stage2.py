"""Stage-2 fine-tune on tiny models (CPU): loss goes down, trainable filters, the exported bundle
has no discriminator, and 2-process DDP gives the 1-process gradients of the combined batch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lsray.train.config import load_job_config
from lsray.train.tiny import make_tiny_bundle, synthetic_shards

SIZE, FRAMES = 32, 8


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stage2")
    return {"bundle": make_tiny_bundle(root / "bundle"),
            "shards": synthetic_shards(root / "shards", clips=2, frames=24, size=SIZE),
            "root": root}


def stage2_config(tiny: dict[str, Path], out: Path, **over) -> dict:
    cfg = {
        "job": "stage2", "bundle": str(tiny["bundle"]), "out": str(out), "steps": 50, "lr": 1e-3,
        "unet_overrides": {"temporal": {"band": 2, "anchor_stride": 4, "max_len": 64}},
        "anchor_window": 4, "adv_warmup_steps": 10,
        "discriminator": {"crop_size": 48, "ndf": 8, "n_layers": 2, "norm_groups": 4},
        "data": {"shards": str(tiny["shards"]), "image_size": SIZE, "seq_len": FRAMES, "stride": 4, "batch_size": 2},
    }
    cfg.update(over)
    return cfg


@pytest.mark.slow
def test_stage2_loss_goes_down_and_bundle_has_no_discriminator(tiny, tmp_path):
    from safetensors.torch import load_file

    from lsray.bundle import load_bundle
    from lsray.train.runner import train_local

    job, hist = train_local(load_job_config(stage2_config(tiny, tmp_path / "out")))
    for key in ("noise", "recon", "smooth", "anchor", "adv", "fm", "d_loss"):
        assert all(np.isfinite(h[key]) for h in hist), key
    first = np.mean([h["noise"] + h["recon"] for h in hist[:10]])
    last = np.mean([h["noise"] + h["recon"] for h in hist[-10:]])
    print(f"stage2 noise+recon loss: first 10 steps {first:.4f} -> last 10 steps {last:.4f}")
    assert last < first
    assert hist[0]["adv_weight"] == 0.0 and abs(hist[-1]["adv_weight"] - 0.1) < 1e-6  # warm-up from 0 to 0.1

    bundle = load_bundle(tmp_path / "out", device="cpu")
    assert bundle.config.unet.temporal.band == 2 and bundle.config.unet.temporal.anchor_stride == 4
    keys = load_file(str(tmp_path / "out" / "unet.safetensors")).keys()
    assert set(keys) == set(bundle.unet.state_dict())  # exactly the UNet
    assert not any("disc" in k or "scales." in k for k in keys)
    assert not any(p.name.startswith("disc") for p in (tmp_path / "out").rglob("*"))
    assert "disc" in job.state_dict()  # the discriminator lives in training checkpoints only


def test_trainable_filter_and_upgrade_preserve_weights(tiny):
    from lsray.bundle import load_bundle
    from lsray.train.latents import trainable_parameters
    from lsray.train.stage2 import upgraded_unet

    base = load_bundle(tiny["bundle"], device="cpu").unet
    up = upgraded_unet(base, {"temporal": {"anchor_stride": 4, "max_len": 64}})  # anchors only: zero-init
    x, audio = torch.randn(1, 13, FRAMES, 4, 4), torch.randn(FRAMES, 20, 64)
    with torch.no_grad():
        torch.testing.assert_close(up(x, 500, audio), base(x, 500, audio))  # identity at load time
    params = trainable_parameters(up, ("motion_modules.", "attentions.", ".anchor.", "time_embedding.cond_proj"))
    names = {n for n, p in up.named_parameters() if p.requires_grad}
    assert len(params) == len(names) > 0
    assert any(".anchor." in n for n in names) and not any(n.startswith("conv_in") for n in names)


# --------------------------------------------------------------------------------------------
# DDP: 2 gloo processes, each with half the batch == 1 process with the whole batch
# --------------------------------------------------------------------------------------------
def _fixed_inputs(cfg_dict: dict):
    from lsray.train.data import collate, local_sequences

    seqs = local_sequences(cfg_dict["data"]["shards"], seq_len=FRAMES, stride=4, image_size=SIZE)[:4]
    batch = collate(seqs)
    g = torch.Generator().manual_seed(123)
    noise = torch.randn(4, 4, 1, SIZE // 8, SIZE // 8, generator=g).expand(4, 4, FRAMES, SIZE // 8, SIZE // 8).contiguous()
    t = torch.tensor([100, 400, 700, 950])
    return batch, noise, t


def _grads(job, batch, noise, t) -> dict[str, torch.Tensor]:
    out = job.losses(batch, step=100, noise=noise, t=t)
    out["total"].backward()
    return {n: p.grad.detach().clone() for n, p in job.unet.named_parameters() if p.grad is not None}


def _ddp_worker(rank: int, cfg_dict: dict, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from lsray.train.stage2 import Stage2Job

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    job = Stage2Job(load_job_config(cfg_dict), torch.device("cpu"), world=2)
    batch, noise, t = _fixed_inputs(cfg_dict)
    half = slice(2 * rank, 2 * rank + 2)
    grads = _grads(job, {k: v[half] for k, v in batch.items()}, noise[half], t[half])
    torch.save(grads, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_worker_ddp_matches_one_worker_on_combined_batch(tiny, tmp_path):
    import socket

    import torch.multiprocessing as mp

    from lsray.train.stage2 import Stage2Job

    cfg = stage2_config(tiny, tmp_path / "unused")
    torch.manual_seed(0)
    single = _grads(Stage2Job(load_job_config(cfg), torch.device("cpu")), *_fixed_inputs(cfg))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(cfg, port, str(tmp_path)), nprocs=2, start_method="spawn", join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert set(r0) == set(single)
    worst = 0.0
    for name, g in single.items():
        torch.testing.assert_close(r0[name], r1[name])  # DDP all-reduced: identical on both ranks
        torch.testing.assert_close(r0[name], g, rtol=1e-4, atol=1e-6)
        worst = max(worst, float((r0[name] - g).abs().max()))
    print(f"DDP vs single-process gradients: {len(single)} tensors, max abs difference {worst:.2e}")


def test_gradient_checkpointing_gives_the_same_gradients():
    import copy

    from lsray.models.unet import LipSyncUNet
    from lsray.train.latents import enable_gradient_checkpointing
    from lsray.train.tiny import tiny_unet_config

    torch.manual_seed(0)
    unet = LipSyncUNet(tiny_unet_config(temporal={"band": 2, "anchor_stride": 4, "max_len": 64}))
    ckpt = enable_gradient_checkpointing(copy.deepcopy(unet))
    x, audio = torch.randn(1, 13, FRAMES, 4, 4), torch.randn(FRAMES, 20, 64)
    for m in (unet, ckpt):
        m(x, 300, audio).square().mean().backward()
    assert set(ckpt.state_dict()) == set(unet.state_dict())
    for (n, a), (_, b) in zip(unet.named_parameters(), ckpt.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=n)


@pytest.mark.parametrize("mouth_weight", [0.0, 3.0])
def test_mouth_weight_weights_the_regenerated_region(tiny, monkeypatch, mouth_weight):
    """An error of 1 only inside the regenerated region: plain MSE gives its share R / N of the
    latent, the weighted loss (1 + w) R / (N + w R)."""
    import lsray.train.stage2 as stage2
    from lsray.train.data import collate, local_sequences
    from lsray.train.runner import sequence_kwargs

    cfg = load_job_config(stage2_config(tiny, tiny["root"] / "mw", mouth_weight=mouth_weight, discriminator=None,
                                        recon_weight=0.0, smooth_weight=0.0, anchor_weight=0.0))
    job = stage2.Stage2Job(cfg, torch.device("cpu"))
    regen = []

    def model(inp, t, audio, a0, window, positions=None):
        r = (1.0 - inp[:, 4:5]).expand(-1, 4, -1, -1, -1)  # side[0] is the keep-mask (1 = keep)
        regen.append(r)
        return r, None

    monkeypatch.setattr(job, "model", model)
    monkeypatch.setattr(stage2, "prediction_target", lambda latents, *a: torch.zeros_like(latents))
    batch = collate(local_sequences(str(tiny["shards"]), **sequence_kwargs(cfg))[:2])
    loss = float(job.losses(batch, 0)["noise"])
    r, n = float(regen[0].sum()), regen[0].numel()
    assert 0 < r < n
    assert loss == pytest.approx((1 + mouth_weight) * r / (n + mouth_weight * r), rel=1e-5)


def test_audio_check_sees_a_deaf_unet_and_a_listening_one(tiny):
    """The recipe's audio check: a UNet whose cross-attention outputs are zeroed cannot depend on
    the audio (the right and the wrong audio give the same x0 error, to the bit); the random UNet
    as built does depend on it."""
    from lsray.bundle import load_bundle
    from lsray.bundle.config import BundleConfig
    from lsray.train.audio_check import audio_reliance
    from lsray.train.export import save_inference_bundle

    kw = {"sequences": 6, "seq_len": FRAMES, "batch_size": 3, "image_size": SIZE}
    listening = audio_reliance(tiny["bundle"], tiny["shards"], **kw)
    assert listening.sequences == 6 and listening.right != listening.shuffled

    bundle = load_bundle(tiny["bundle"], device="cpu")
    unet = bundle.unet
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if ".attn2.to_out." in name:  # the audio cross-attention's output projection
                p.zero_()
    deaf_dir = tiny["root"] / "deaf"
    save_inference_bundle(deaf_dir, unet, tiny["bundle"], BundleConfig.read(Path(tiny["bundle"]) / "config.json"))
    deaf = audio_reliance(deaf_dir, tiny["shards"], **kw)
    assert deaf.right == deaf.shuffled and deaf.gain == 0.0
    assert "another sequence's (+0.0 %)" in deaf.describe()


# --------------------------------------------------------------------------------------------
# Long-range anchors (upgrade 3): training pins keyframes the way the sampler does
# --------------------------------------------------------------------------------------------
LONG = 64  # frames of an anchors training sequence
ANCHORS_8 = {"temporal": {"band": 2, "anchor_stride": 8, "max_len": 64}}


@pytest.fixture(scope="module")
def long_shards(tiny) -> Path:
    return synthetic_shards(tiny["root"] / "long", clips=1, frames=LONG, size=SIZE)


def long_config(tiny, long_shards, **over) -> dict:
    cfg = stage2_config(tiny, tiny["root"] / "unused", unet_overrides=ANCHORS_8, anchor_window=16,
                        data={"shards": str(long_shards), "image_size": SIZE, "seq_len": LONG, "stride": LONG,
                              "batch_size": 1})
    cfg.update(over)
    return cfg


def spy_forward(monkeypatch, unet) -> list[dict]:
    """Record what ``unet`` is called with (its input, audio and frame positions)."""
    calls: list[dict] = []
    forward = unet.forward

    def spy(sample, timestep, audio, *args, positions=None, **kwargs):
        calls.append({"sample": sample.detach().clone(), "audio": audio.detach().clone(), "positions": positions})
        return forward(sample, timestep, audio, *args, positions=positions, **kwargs)

    monkeypatch.setattr(unet, "forward", spy)
    return calls


def first_batch(cfg) -> dict:
    from lsray.train.data import collate, local_sequences
    from lsray.train.runner import sequence_kwargs

    return collate(local_sequences(cfg.data.shards, **sequence_kwargs(cfg))[:cfg.data.batch_size])


def fake_latent_batch(b: int = 2, f: int = 64):
    from lsray.train.latents import LatentBatch

    g = torch.Generator().manual_seed(0)
    return LatentBatch(latents=torch.randn(b, 4, f, 2, 2, generator=g), side=torch.randn(b, 9, f, 2, 2, generator=g),
                       mask_latent=torch.ones(b, 1, f, 2, 2), audio=torch.randn(b * f, 3, 5, generator=g),
                       frames=torch.randn(b, f, 3, 4, 4, generator=g), pixel_mask=torch.ones(4, 4))


def test_anchor_layout_draws_pinned_windows_keyframe_sequences_and_plain_ones():
    from lsray.train.config import AnchorTraining
    from lsray.train.latents import anchor_layout

    lb = fake_latent_batch()
    settings = AnchorTraining(pin_probability=0.5, keyframe_probability=0.3, overlap=2)

    def draws(seed: int):
        g = torch.Generator().manual_seed(seed)
        return [anchor_layout(lb, settings, 8, 64, g) for _ in range(60)]

    layouts = draws(1)
    for a, b in zip(layouts, draws(1)):  # deterministic given the generator
        assert a.keyframes == b.keyframes and str(a.pins) == str(b.pins)
    kinds = {"keyframes": 0, "pinned": 0, "plain": 0}
    leading = set()
    for lay in layouts:
        if lay.keyframes:
            kinds["keyframes"] += 1
            assert lay.positions.tolist() == list(range(0, 64, 8)) == lay.frames.tolist()
            torch.testing.assert_close(lay.batch.latents, lb.latents[:, :, ::8])
            torch.testing.assert_close(lay.batch.side, lb.side[:, :, ::8])
            torch.testing.assert_close(lay.batch.frames, lb.frames[:, ::8])
            torch.testing.assert_close(lay.batch.audio, lb.audio.view(2, 64, 3, 5)[:, ::8].flatten(0, 1))
            k = 0 if lay.pins is None else int(lay.pins.sum())
            assert lay.pins is None or lay.pins.tolist() == [True] * k + [False] * (8 - k)
            leading.add(k)
        elif lay.pins is not None:
            kinds["pinned"] += 1
            assert lay.positions is None and lay.batch is lb
            assert lay.pins.tolist() == [i % 8 == 0 for i in range(64)]
        else:
            kinds["plain"] += 1
    assert all(kinds.values()), kinds
    assert leading == {0, 1, 2}  # the overlap's pinned keyframes: 0..overlap

    # positions stay inside the UNet's positional table; too few keyframes: no keyframe sequence
    always = AnchorTraining(pin_probability=1.0, keyframe_probability=1.0, overlap=1)
    lay = anchor_layout(lb, always, 8, 40, torch.Generator().manual_seed(0))
    assert lay.positions.tolist() == [0, 8, 16, 24, 32]
    short = anchor_layout(fake_latent_batch(f=8), always, 8, 64, torch.Generator().manual_seed(0))
    assert not short.keyframes and short.pins.tolist() == [True] + [False] * 7
    # stride 1: every frame would be pinned, which leaves nothing to learn
    assert anchor_layout(fake_latent_batch(f=4), AnchorTraining(keyframe_probability=0.0, pin_probability=1.0),
                         1, 64, torch.Generator()).pins is None


@pytest.mark.parametrize("kind", ["pinned", "keyframes"])
def test_stage2_trains_a_64_frame_sequence_to_follow_anchors(tiny, long_shards, monkeypatch, kind):
    from lsray.train.stage2 import Stage2Job

    anchors = ({"pin_probability": 1.0, "keyframe_probability": 0.0} if kind == "pinned"
               else {"keyframe_probability": 1.0, "overlap": 1})
    cfg = load_job_config(long_config(tiny, long_shards, anchors=anchors))
    torch.manual_seed(0)
    job = Stage2Job(cfg, torch.device("cpu"))
    batch = first_batch(cfg)
    with torch.no_grad():
        lb = job.inputs.prepare(batch, torch.device("cpu"))  # the clean latents (the VAE's mode)
    calls = spy_forward(monkeypatch, job.unet)
    before = {n: p.detach().clone() for n, p in job.unet.named_parameters() if p.requires_grad}
    m = job.step(batch, 0)
    assert all(np.isfinite(v) for v in m.values()), m
    assert any(not torch.equal(p, before[n]) for n, p in job.unet.named_parameters() if p.requires_grad)

    keys = torch.arange(LONG) % 8 == 0
    if kind == "pinned":  # the full pass and the 16-frame anchor-window pass, keyframes clean in both
        assert len(calls) == 2 and "anchor" in m and "recon" in m
        full, win = calls
        assert full["positions"] is None and full["sample"].shape[2] == LONG
        assert torch.equal(full["sample"][:, :4, keys], lb.latents[:, :, keys])
        assert not torch.equal(full["sample"][:, :4, ~keys], lb.latents[:, :, ~keys])  # the rest is noised
        assert win["sample"].shape[2] == 16
        torch.testing.assert_close(win["sample"], full["sample"][:, :, :16])  # step 0: the window at frame 0
    else:  # one pass over the keyframes at their frame times, no window pass
        assert len(calls) == 1 and "anchor" not in m
        (call,) = calls
        assert call["positions"].tolist() == list(range(0, LONG, 8))
        assert call["sample"].shape[2] == 8
        assert torch.equal(call["sample"][:, 4:], lb.side[:, :, keys])  # their own mask / masked / reference
        assert torch.equal(call["audio"], lb.audio.view(1, LONG, *lb.audio.shape[1:])[:, keys].flatten(0, 1))
        # overlap 1: at most frame 0 is pinned, the other keyframes are noised
        assert not torch.equal(call["sample"][:, :4, 1:], lb.latents[:, :, keys][:, :, 1:])


def test_stage2_noise_loss_leaves_pinned_frames_out(tiny, monkeypatch):
    """A UNet wrong only at the keyframes: no noise loss once they are pinned (the sampler keeps
    their clean latents); with nothing pinned the same error counts."""
    import lsray.train.stage2 as stage2
    from lsray.train.config import AnchorTraining

    cfg = load_job_config(stage2_config(tiny, tiny["root"] / "pins", discriminator=None, recon_weight=0.0,
                                        smooth_weight=0.0, anchor_weight=0.0, mouth_weight=2.0,
                                        anchors={"pin_probability": 1.0, "keyframe_probability": 0.0}))
    job = stage2.Stage2Job(cfg, torch.device("cpu"))
    keys = (torch.arange(FRAMES) % 4 == 0).view(1, 1, -1, 1, 1)

    def model(inp, t, audio, a0, window, positions=None):
        return keys.float().expand(inp.shape[0], 4, -1, *inp.shape[3:]), None

    monkeypatch.setattr(job, "model", model)
    monkeypatch.setattr(stage2, "prediction_target", lambda latents, *a: torch.zeros_like(latents))
    batch = first_batch(cfg)
    assert float(job.losses(batch, 0)["noise"]) == 0.0
    job.cfg = cfg.model_copy(update={"anchors": AnchorTraining(pin_probability=0.0, keyframe_probability=0.0)})
    assert float(job.losses(batch, 0)["noise"]) > 0.0


def test_stage2_without_anchors_is_unchanged(tiny):
    """anchors None is today's step; anchors whose layout pins nothing give the very same losses
    (the layout is drawn after the noise and timesteps, from the same generator)."""
    from lsray.train.stage2 import Stage2Job

    runs = []
    for anchors in (None, {"pin_probability": 0.0, "keyframe_probability": 0.0}):
        cfg = load_job_config(stage2_config(tiny, tiny["root"] / "same", anchors=anchors))
        torch.manual_seed(0)
        job = Stage2Job(cfg, torch.device("cpu"))
        runs.append(job.losses(first_batch(cfg), 3, generator=torch.Generator().manual_seed(11)))
    plain, layout = runs
    assert set(plain) == set(layout) and {"noise", "recon", "smooth", "anchor", "adv"} <= set(plain)
    for key, value in plain.items():
        assert torch.equal(value, layout[key]), key


def test_anchors_need_a_unet_with_anchor_stride(tiny):
    from lsray.errors import LsrayError
    from lsray.train.stage2 import Stage2Job

    cfg = load_job_config(stage2_config(tiny, tiny["root"] / "none", anchors={},
                                        unet_overrides={"temporal": {"band": 2, "max_len": 64}}))
    with pytest.raises(LsrayError, match="anchor_stride"):
        Stage2Job(cfg, torch.device("cpu"))


def test_training_keeps_fp32_weights_whatever_precision_the_bundle_samples_in(tiny, tmp_path):
    """A bundle's ``precision`` is how it samples; stage 2 loads it in fp32 (as distillation and
    the audio check do): a bf16 bundle would otherwise be fine-tuned in bf16 weights, its VAE too."""
    import json
    import shutil

    from lsray.train.stage2 import Stage2Job

    bundle = tmp_path / "bf16"
    shutil.copytree(tiny["bundle"], bundle)
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "precision": "bf16"}))
    job = Stage2Job(load_job_config(stage2_config({**tiny, "bundle": bundle}, tmp_path / "out")), torch.device("cpu"))
    assert {p.dtype for p in job.unet.parameters()} == {torch.float32}
    assert {p.dtype for p in job.inputs.codec.vae.parameters()} == {torch.float32}


def test_stage2_learning_rate_warms_up_then_decays_and_is_constant_by_default(tiny):
    """A fine-tune's schedule: linear warm-up (AdamW's moments start empty on a trained UNet),
    then a cosine decay towards ``min_lr_ratio * lr``; a function of the step, so a resumed run
    (a new job given the step it stopped at) steps at the same rate. The default is v1's
    constant rate."""
    from lsray.train.stage2 import Stage2Job

    over = {"discriminator": None, "steps": 6, "lr": 1e-3}
    cfg = load_job_config(stage2_config(tiny, tiny["root"] / "sched", warmup_steps=2, min_lr_ratio=0.1, **over))
    batch = first_batch(cfg)
    torch.manual_seed(0)
    job = Stage2Job(cfg, torch.device("cpu"))
    rates = []
    for step in range(cfg.steps):
        rates.append(job.step(batch, step)["lr"])
        assert job.opt.param_groups[0]["lr"] == pytest.approx(rates[-1])  # the rate the step was taken at
    # warm-up 0.5e-3, 1e-3; then 1e-3 * (0.1 + 0.9 * (1 + cos(pi * (s - 2) / 4)) / 2) for s = 2..5
    assert rates == pytest.approx([5e-4, 1e-3, 1e-3, 8.682e-4, 5.5e-4, 2.318e-4], rel=1e-3)
    resumed = Stage2Job(cfg, torch.device("cpu"))
    assert resumed.step(batch, 4)["lr"] == pytest.approx(rates[4])

    constant = Stage2Job(load_job_config(stage2_config(tiny, tiny["root"] / "const", **over)), torch.device("cpu"))
    assert [constant.step(batch, s)["lr"] for s in (0, 5)] == pytest.approx([1e-3, 1e-3])
