"""Evaluation metrics: LSE offset search, the syncnet_v2 format, MFCCs, mouth/temporal/identity metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsray.eval import (
    ClipMetrics,
    SyncNetV2,
    SyncNetV2Scorer,
    aggregate,
    boundary_jump,
    evaluate_clip,
    identity_drift,
    load_syncnet_v2,
    lse,
    lse_from_distances,
    mouth_psnr,
    mouth_sharpness,
    mouth_ssim,
    offset_distances,
    oracle_lag,
    save_syncnet_v2,
    syncnet_mfcc,
)
from lsray.synth import Identity, render_frames, synthesize, talking_head_geometry, viseme_track


class StubScorer:
    """Video window i embeds as e_i, audio window j as e_{j + lag}: in sync at offset ``lag``."""

    video_window = 5

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.basis = np.random.default_rng(0).standard_normal((400, 8))

    def embed_video(self, faces, num_windows):
        return self.basis[:num_windows]

    def embed_audio(self, audio_16k, num_windows, fps=25.0):
        return np.roll(self.basis, self.lag, axis=0)[:num_windows]


def test_offset_search_finds_the_lag_and_confidence_is_median_minus_min():
    for lag in (0, 3, -4):
        faces = np.zeros((60, 8, 8, 3), np.uint8)
        r = lse(StubScorer(lag), faces, np.zeros(16000 * 3, np.float32), fps=25, vshift=15)
        assert r.offset == -lag  # audio window j matches video window j - lag
        assert r.mdist.shape == (31,) and r.dists.shape == (55, 31)
        assert r.lse_d == pytest.approx(r.mdist.min())
        assert r.lse_c == pytest.approx(np.median(r.mdist) - r.mdist.min())
    d = np.tile(np.arange(31, dtype=float)[::-1], (4, 1))  # distance falls with index: min at k=30
    r = lse_from_distances(d, vshift=15)
    assert r.offset == -15 and r.lse_d == 0.0 and r.lse_c == 15.0


def test_offset_distances_pad_like_calc_pdist():
    v = np.eye(3)
    dist = offset_distances(v, v, vshift=1)
    assert dist.shape == (3, 3)
    assert np.allclose(dist[:, 1], 0, atol=1e-5)  # offset 0: identical
    assert dist[0, 0] == pytest.approx(1.0, abs=1e-5)  # padded zero row: |e_0 - 0|


def test_syncnet_v2_shapes_keys_and_round_trip(tmp_path):
    torch.manual_seed(0)
    net = SyncNetV2().eval()
    keys = set(net.state_dict())
    assert {"netcnnaud.0.weight", "netcnnaud.1.running_mean", "netcnnlip.0.weight", "netcnnlip.18.weight",
            "netfcaud.3.weight", "netfclip.1.running_var", "netcnnaud.18.weight"} <= keys
    assert net.state_dict()["netcnnaud.18.weight"].shape == (512, 256, 5, 4)
    assert net.state_dict()["netcnnlip.18.weight"].shape == (512, 256, 1, 6, 6)
    assert len(keys) == 90 or len(keys) > 50
    with torch.no_grad():
        assert net.forward_aud(torch.randn(2, 1, 13, 20)).shape == (2, 1024)
        assert net.forward_lip(torch.randn(2, 3, 5, 224, 224)).shape == (2, 1024)
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}  # old files lack it
    torch.save(state, tmp_path / "syncnet_v2.model")
    loaded = load_syncnet_v2(tmp_path / "syncnet_v2.model")
    for k, v in state.items():
        assert torch.equal(loaded.state_dict()[k], v)
    save_syncnet_v2(loaded, tmp_path / "again.model")
    assert set(torch.load(tmp_path / "again.model", weights_only=True)) == keys
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "bad.model")
    from lsray.errors import BundleError, MissingWeightError

    with pytest.raises(BundleError):
        load_syncnet_v2(tmp_path / "bad.model")
    with pytest.raises(MissingWeightError):
        load_syncnet_v2(tmp_path / "missing.model")


def test_lse_with_random_syncnet_v2_is_finite_and_deterministic():
    torch.manual_seed(1)
    scorer = SyncNetV2Scorer(SyncNetV2().eval())
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (12, 64, 64, 3), dtype=np.uint8)
    audio = rng.standard_normal(16000 * 12 // 25).astype(np.float32) * 0.1
    a = lse(scorer, faces, audio, vshift=3)
    b = lse(scorer, faces, audio, vshift=3)
    assert np.isfinite(a.lse_c) and np.isfinite(a.lse_d) and a.lse_c >= 0 and -3 <= a.offset <= 3
    assert a.dists.shape == (12 - 5, 7)
    assert a.lse_c == b.lse_c and a.offset == b.offset


def test_mfcc_matches_python_speech_features_layout():
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    m = syncnet_mfcc(x)
    assert m.shape == (13, 99)  # 1 + ceil((16000 - 400) / 160) frames at 100 Hz
    assert np.isfinite(m).all()
    assert m[0].mean() == pytest.approx(np.log(np.sum((np.abs(np.fft.rfft(
        np.append(x[:1], x[1:] - 0.97 * x[:-1])[:400].astype(np.float64) * 32768, 512)) ** 2) / 512)), rel=0.05)
    y = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)  # broadband
    q = syncnet_mfcc((y * 32768).astype(np.int16))  # int16 input: same features up to rounding
    assert np.allclose(q, syncnet_mfcc(y), atol=0.05)


@pytest.fixture(scope="module")
def oracle():
    speech = synthesize("Mama bought a big map.", "en-us")
    ident = Identity.from_seed(4)
    params = viseme_track(speech.phonemes, speech.duration_s, 25)
    frames = np.stack(list(render_frames(ident, params, 25, 256)))
    geoms = talking_head_geometry(ident, len(frames), 25, 256)
    return speech, ident, params, frames, geoms


def test_mouth_psnr_and_ssim_vs_oracle(oracle):
    speech, ident, params, frames, geoms = oracle
    boxes = [g.mouth_box for g in geoms]
    assert mouth_psnr(frames, frames, boxes) == float("inf")
    assert mouth_ssim(frames, frames, boxes) == pytest.approx(1.0)
    shifted = np.stack(list(render_frames(ident, np.roll(params, 6, axis=0), 25, 256)))  # mouth 240 ms late
    p = mouth_psnr(shifted, frames, boxes)
    assert 10 < p < 40
    assert mouth_ssim(shifted, frames, boxes) < 0.99
    wrong = np.stack(list(render_frames(ident, np.roll(params, 12, axis=0), 25, 256)))
    assert mouth_psnr(wrong, frames, boxes) < mouth_psnr(np.stack(list(render_frames(ident, np.roll(params, 1, axis=0), 25, 256))), frames, boxes)


def test_mouth_sharpness_sees_blur_that_psnr_forgives(oracle):
    import cv2

    speech, ident, params, frames, geoms = oracle
    boxes = [g.mouth_box for g in geoms]
    assert mouth_sharpness(frames, frames, boxes) == pytest.approx(1.0)
    soft = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames])
    noisy = np.clip(frames + np.random.default_rng(0).normal(0, 6, frames.shape), 0, 255).astype(np.uint8)
    assert mouth_sharpness(soft, frames, boxes) < 0.5  # a blurred mouth has lost most of its edges
    assert mouth_sharpness(noisy, frames, boxes) > 1.2  # noise is detail the oracle lacks
    assert mouth_psnr(soft, frames, boxes) > 25  # while PSNR calls the blur close
    m = evaluate_clip(soft, frames, mouth_boxes=boxes)
    assert m.mouth_sharpness == pytest.approx(mouth_sharpness(soft, frames, boxes))


def test_oracle_lag_finds_a_mouth_that_is_late_or_early(oracle):
    speech, ident, params, frames, geoms = oracle
    boxes = [g.mouth_box for g in geoms]
    assert oracle_lag(frames, frames, boxes) == 0
    for shift in (2, -3):  # np.roll by +2: output frame i + 2 shows oracle frame i's mouth
        moved = np.stack(list(render_frames(ident, np.roll(params, shift, axis=0), 25, 256)))
        assert oracle_lag(moved, frames, boxes) == shift
    with pytest.raises(ValueError, match="too short"):
        oracle_lag(frames[:5], frames[:5], boxes[:5])


def test_boundary_jump_and_drift(oracle):
    speech, ident, params, frames, geoms = oracle
    boxes = [g.mouth_box for g in geoms]
    broken = frames.copy()
    broken[16:] = np.clip(broken[16:].astype(int) + 25, 0, 255).astype(np.uint8)  # a seam at frame 16
    assert boundary_jump(broken, frames, boxes) > 3 * max(boundary_jump(frames, frames, boxes), 0.3)
    assert boundary_jump(broken, None, boxes) > boundary_jump(frames, None, boxes)
    faces = [g.face_box for g in geoms]
    assert identity_drift(frames, faces, boxes) < 0.1
    other = np.stack(list(render_frames(Identity.from_seed(9), params, 25, 256)))
    mixed = np.concatenate([frames[:10], other[10:]])
    assert identity_drift(mixed, faces, boxes) > identity_drift(frames, faces, boxes) + 0.05


def test_evaluate_clip_and_aggregate(oracle, tmp_path):
    from lsray.synth import write_clip

    speech, ident, params, frames, geoms = oracle
    path = write_clip(tmp_path / "o.mp4", ident, speech, 25, 256)
    m = evaluate_clip(path, frames, (speech.samples, speech.sr), name="o", mouth_boxes=[g.mouth_box for g in geoms],
                      face_boxes=[g.face_box for g in geoms], sync_scorer=StubScorer(0), vshift=5)
    assert isinstance(m, ClipMetrics) and m.frames == len(frames)
    assert m.mouth_psnr > 30  # H.264 at crf 14 vs the raw oracle
    assert m.lse_c is not None and m.av_offset == 0 and m.speaker_similarity is None and m.oracle_lag == 0
    m2 = evaluate_clip(frames, None, None)
    assert m2.mouth_psnr is None and m2.lse_c is None and m2.identity_drift is not None
    agg = aggregate([m, m2, ClipMetrics(name="perfect", frames=3, mouth_psnr=float("inf"))])
    assert agg["clips"] == 3 and agg["mouth_psnr"] == pytest.approx(m.mouth_psnr) and agg["mouth_psnr_n"] == 1


def test_project_syncnet_adapter():
    from lsray.eval import ProjectSyncNetScorer, SyncScorer
    from lsray.models.syncnet import SyncNet, SyncNetConfig

    torch.manual_seed(0)
    cfg = SyncNetConfig(num_frames=5, image_size=32, visual_channels=(8, 16), audio_channels=(8, 16), embed_dim=16, norm_groups=4)
    scorer = ProjectSyncNetScorer(SyncNet(cfg).eval())
    assert isinstance(scorer, SyncScorer) and scorer.video_window == 5
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (20, 48, 48, 3), dtype=np.uint8)
    r = lse(scorer, faces, rng.standard_normal(16000 * 20 // 25).astype(np.float32) * 0.1, vshift=4)
    assert r.dists.shape == (15, 9) and np.isfinite(r.lse_c) and r.lse_c >= 0
