"""LipSyncUNet: exact parity with upstream LatentSync, strict loading, and the two model upgrades."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lsray.errors import CheckpointMismatchError, MissingWeightError
from lsray.models.config import UNetConfig
from lsray.models.unet import LipSyncUNet
from lsray.models.latentsync import compare_shapes, read_state_dict
from lsray.models.temporal import TemporalTransformer


@pytest.fixture(scope="module")
def small(parity_dir):
    d = parity_dir / "unet_small"
    return d / "latentsync_unet.pt", d / "config.json", load_file(d / "cases.safetensors")


@pytest.fixture(scope="module")
def upstream(small):
    ckpt, cfg, _ = small
    return LipSyncUNet.from_latentsync(ckpt, cfg)


@torch.no_grad()
def test_parity_with_upstream_on_all_cases(upstream, small):
    cases = small[2]
    errors = {}
    for i in range(3):
        out = upstream(cases[f"case{i}.sample"], cases[f"case{i}.timestep"], cases[f"case{i}.audio"])
        assert out.shape == cases[f"case{i}.out"].shape
        errors[i] = (out - cases[f"case{i}.out"]).abs().max().item()
    print("unet parity max abs error per case:", errors)
    assert all(e < 1e-4 for e in errors.values()), errors


@torch.no_grad()
def test_audio_layouts_and_scalar_timestep_agree(upstream, small):
    c = small[2]
    sample, audio = c["case0.sample"], c["case0.audio"]  # audio (B*F, N, D)
    ref = upstream(sample, c["case0.timestep"], audio)
    f = sample.shape[2]
    folded = upstream(sample, int(c["case0.timestep"][0]), audio.view(1, f, *audio.shape[1:]))
    assert torch.allclose(ref, folded, atol=1e-6)


@torch.no_grad()
def test_token_count_is_not_hard_coded(upstream):
    # Whisper small has 12 blocks: 10 rows x 13 layers = 130 tokens per frame.
    out = upstream(torch.randn(1, 13, 4, 16, 16), 10, torch.randn(4, 130, 384))
    assert out.shape == (1, 4, 4, 16, 16)


def test_loading_is_strict_and_names_keys(small, tmp_path):
    ckpt, cfg, _ = small
    sd = read_state_dict(ckpt)
    broken = dict(sd)
    gone = "down_blocks.1.resnets.0.conv1.weight"
    del broken[gone]
    broken["down_blocks.0.extra.weight"] = torch.zeros(1)
    shaped = "conv_out.bias"
    broken[shaped] = torch.zeros(7)
    with pytest.raises(CheckpointMismatchError) as err:
        LipSyncUNet.from_latentsync(broken, cfg)
    msg = str(err.value)
    assert gone in msg and "down_blocks.0.extra.weight" in msg and shaped in msg
    with pytest.raises(MissingWeightError, match="nope.pt"):
        LipSyncUNet.from_latentsync(tmp_path / "nope.pt", cfg)


def test_full_size_architecture_matches_released_stage2(parity_dir):
    data = json.loads((parity_dir / "unet_small" / "config.json").read_text())
    data.update(block_out_channels=[320, 640, 1280, 1280], norm_num_groups=32)
    with torch.device("meta"):
        model = LipSyncUNet(UNetConfig.from_latentsync(data))
    diffs = compare_shapes(model, parity_dir / "stage2_state_dict_shapes.json")
    assert diffs == [], diffs[:10]
    assert len(model.state_dict()) == 1246


@torch.no_grad()
def test_upgrade1_512d_audio_preserves_function(small, upstream):
    ckpt, cfg, cases = small
    wide = LipSyncUNet.from_latentsync(ckpt, cfg, cross_attention_dim=512)
    k = wide.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.weight
    assert k.shape[1] == 512 and torch.count_nonzero(k[:, 384:]) == 0
    worst = 0.0
    for i in range(3):
        whisper = cases[f"case{i}.audio"]
        phoneme = torch.randn(*whisper.shape[:2], 128) * 5  # whatever the last 128 carry
        ref = upstream(cases[f"case{i}.sample"], cases[f"case{i}.timestep"], whisper)
        out = wide(cases[f"case{i}.sample"], cases[f"case{i}.timestep"], torch.cat([whisper, phoneme], -1))
        worst = max(worst, (out - ref).abs().max().item())
    print("512-d vs 384-d max abs difference:", worst)
    assert worst < 1e-5


@torch.no_grad()
def test_upgrade3_is_identity_at_load_time(small, upstream):
    ckpt, cfg, cases = small
    model = LipSyncUNet.from_latentsync(ckpt, cfg, temporal={"anchor_stride": 8, "max_len": 64}, time_cond_proj_dim=32)
    pe = model.down_blocks[0].motion_modules[0].temporal_transformer.transformer_blocks[0].attention_blocks[0].pos_encoder.pe
    upstream_pe = read_state_dict(ckpt)[
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
    ]
    assert pe.shape[1] == 64 and torch.equal(pe[:, :24], upstream_pe)
    worst = max(
        (model(cases[f"case{i}.sample"], cases[f"case{i}.timestep"], cases[f"case{i}.audio"])
         - upstream(cases[f"case{i}.sample"], cases[f"case{i}.timestep"], cases[f"case{i}.audio"])).abs().max().item()
        for i in range(3)
    )
    print("anchors + 64-frame encoding + guidance embedding at load vs upstream:", worst)
    assert worst < 1e-5
    # 64-frame training sequences fit the extended encoding.
    out = model(torch.randn(1, 13, 64, 8, 8), 500, torch.randn(64, 50, 384))
    assert out.shape == (1, 4, 64, 8, 8)


def _random_temporal(band: int | None, anchor_stride: int | None, n_attn: int) -> TemporalTransformer:
    torch.manual_seed(0)
    tt = TemporalTransformer(
        channels=32, heads=4, n_blocks=1, n_attn=n_attn, pos_len=64, norm_groups=8,
        band=band, anchor_stride=anchor_stride, anchor_pos_len=64,
    )
    for p in tt.parameters():  # undo zero-initialisation so every branch carries signal
        if p.dim() >= 1 and torch.count_nonzero(p) == 0:
            torch.nn.init.normal_(p, std=0.2)
    return tt.eval()


def _changed_frames(tt: TemporalTransformer, frames: int, perturbed: int) -> set[int]:
    x = torch.randn(frames, 32, 2, 2)  # (b f) c h w with b = 1
    y = x.clone()
    y[perturbed] += torch.randn(32, 2, 2) * 0.1
    with torch.no_grad():
        diff = (tt(x, frames) - tt(y, frames)).abs().flatten(1).amax(1)
    # GroupNorm over channels is per frame here, so only attention carries information across frames.
    return {i for i in range(frames) if diff[i] > 1e-6}


@pytest.mark.parametrize("n_attn", [1, 2])
def test_local_band_limits_temporal_reach(n_attn):
    tt = _random_temporal(band=2, anchor_stride=None, n_attn=n_attn)
    reach = 2 * n_attn  # +-2 frames per attention layer in the stack
    for j in (0, 7, 15):
        changed = _changed_frames(tt, 16, j)
        assert changed == {i for i in range(16) if abs(i - j) <= reach}, (j, changed)


def test_anchor_frames_reach_every_frame():
    tt = _random_temporal(band=2, anchor_stride=8, n_attn=1)
    assert _changed_frames(tt, 16, 0) == set(range(16))  # frame 0 is an anchor
    assert _changed_frames(tt, 16, 8) == set(range(16))  # and so is frame 8
    # A frame more than the band away from every anchor still only reaches its neighbourhood.
    assert _changed_frames(tt, 16, 13) == {11, 12, 13, 14, 15}
