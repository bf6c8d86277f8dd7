"""SyncNet: mel windows, save/load, the evaluation API, and training (loss goes down)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsray.errors import MissingWeightError
from lsray.models.syncnet import SyncNet, SyncNetConfig, mel_steps, mel_window, syncnet_mel
from lsray.train.tiny import synthetic_shards, tiny_syncnet_config


def test_mel_layout_is_80_by_52_for_16_frames():
    assert mel_steps(16) == 52 and SyncNetConfig().mel_steps == 52
    wave = np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1
    mel = syncnet_mel(wave)
    assert mel.shape[0] == 80 and abs(mel.shape[1] - 80) <= 1
    assert mel.min() >= -4 and mel.max() <= 4
    assert mel_window(mel, 10).shape == (80, 52)
    assert mel_window(mel, 24).shape == (80, 52)  # padded past the end


def test_save_load_roundtrip_and_confidence(tmp_path):
    torch.manual_seed(0)
    net = SyncNet(tiny_syncnet_config()).eval()
    frames = torch.rand(2, 5, 3, 64, 64) * 2 - 1
    mel = torch.randn(2, 80, mel_steps(5))
    p = net(frames, mel)
    assert p.shape == (2,) and float(p.min()) >= 0 and float(p.max()) <= 1
    net.save_pretrained(tmp_path / "sync")
    back = SyncNet.from_pretrained(tmp_path / "sync")
    assert not any(q.requires_grad for q in back.parameters())
    torch.testing.assert_close(back(frames, mel), p)
    conf = back.sync_confidence(frames, mel)
    assert 0 <= float(conf) <= 1
    best, margin, probs = back.offset_confidence(frames[:1], torch.randn(7, 80, mel_steps(5)))
    assert 0 <= best < 7 and probs.shape == (7,) and margin >= 0
    with pytest.raises(MissingWeightError):
        SyncNet.from_pretrained(tmp_path / "nothing")


@pytest.mark.slow
def test_syncnet_training_loss_goes_down(tmp_path):
    from lsray.train.config import load_job_config
    from lsray.train.runner import train_local

    shards = synthetic_shards(tmp_path / "shards", clips=2, frames=24)
    cfg = load_job_config({
        "job": "syncnet", "out": str(tmp_path / "syncnet"), "steps": 50, "lr": 1e-3, "negative_shift": 5,
        "model": tiny_syncnet_config().model_dump(),
        "data": {"shards": str(shards), "image_size": 64, "stride": 4, "batch_size": 4},
    })
    _, hist = train_local(cfg)
    first = np.mean([h["bce"] for h in hist[:10]])
    last = np.mean([h["bce"] for h in hist[-10:]])
    print(f"syncnet BCE: first 10 steps {first:.4f} -> last 10 steps {last:.4f}")
    assert last < 0.8 * first
    SyncNet.from_pretrained(tmp_path / "syncnet")  # the job's product loads
