"""Fused audio (upgrade 1) through model bundles: a bundle holding the phoneme branch loads and
dubs, and stage 2 upgrades a Whisper-only bundle to fused audio without changing what it computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lsray.audio.fused import FusedAudioEncoder
from lsray.audio.phoneme import PHONEME_DIM
from lsray.audio.whisper import load_wave
from lsray.audio.windows import chunks
from lsray.errors import BundleError, LsrayError, MissingWeightError
from lsray.bundle import BundleConfig, load_bundle
from lsray.bundle.config import CONFIG_FILE, PHONEME_DIR
from lsray.bundle.load import bundle_files
from lsray.train.tiny import make_tiny_bundle, tiny_phoneme_encoder, tiny_whisper

WHISPER_DIM = 64  # tiny_whisper's width
FUSED_DIM = WHISPER_DIM + PHONEME_DIM
SIZE, FRAMES = 32, 8


def fused_config(config: BundleConfig) -> BundleConfig:
    """``config`` with fused audio and the UNet widened to take it (validated)."""
    data = config.model_dump()
    data["audio"]["encoder"] = "fused"
    data["unet"]["cross_attention_dim"] = FUSED_DIM
    return BundleConfig.model_validate(data)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    """A Whisper-only tiny bundle, a saved tiny phoneme encoder, and the fused bundle made of both."""
    from lsray.train.export import save_inference_bundle
    from lsray.train.stage2 import upgraded_unet

    root = tmp_path_factory.mktemp("fused")
    base = make_tiny_bundle(root / "bundle")
    phoneme = tiny_phoneme_encoder().save_pretrained(root / "phoneme")
    whisper_only = load_bundle(base, device="cpu", load_vae=False, lazy=True)
    unet = upgraded_unet(whisper_only.unet, {"cross_attention_dim": FUSED_DIM})
    fused = save_inference_bundle(root / "fused", unet, base, fused_config(whisper_only.config), phoneme_dir=phoneme)
    return {"root": root, "base": base, "phoneme": phoneme, "fused": fused}


@pytest.fixture(scope="module")
def wave(assets) -> np.ndarray:
    from talking import write_dub

    return load_wave(write_dub(assets["root"] / "speech.wav", 1.6, sample_rate=16000))


# ---- (a) the bundle format ---------------------------------------------------------------------
def test_phoneme_encoder_save_pretrained_round_trips(tmp_path, wave):
    from lsray.audio.phoneme import PhonemeEncoder

    for normalize in (True, False):
        enc = tiny_phoneme_encoder(seed=3, normalize=normalize)
        loaded = PhonemeEncoder.from_pretrained(enc.save_pretrained(tmp_path / str(normalize)), device=torch.device("cpu"))
        assert loaded.normalize is normalize
        torch.testing.assert_close(loaded.features(wave), enc.features(wave))  # (T, 128), projection included
    # the pipeline hands every shard the clip's (mean, std): an encoder that does not normalise ignores them
    torch.testing.assert_close(loaded.rows(wave, 10, 30, (0.3, 2.0)), loaded.rows(wave, 10, 30))


def test_fused_bundle_round_trips_and_gives_wider_tokens(assets, wave):
    bundle = load_bundle(assets["fused"], device="cpu")  # everything loads up front, phoneme branch included
    assert bundle.config.audio.encoder == "fused" and bundle.config.unet.cross_attention_dim == FUSED_DIM
    enc = bundle.audio_encoder
    assert isinstance(enc, FusedAudioEncoder) and enc.dim == FUSED_DIM
    saved = tiny_phoneme_encoder()
    torch.testing.assert_close(enc.phoneme.proj.weight, saved.proj.weight)  # the projection, not a random one
    tokens, whisper_tokens = enc.chunks(wave), chunks(tiny_whisper().features(wave))  # (N, 10 L, C + 128), (N, 10 L, C)
    assert tokens.shape == (whisper_tokens.shape[0], 20, FUSED_DIM)
    torch.testing.assert_close(tokens[..., :WHISPER_DIM], whisper_tokens)  # the Whisper part is unchanged
    files = bundle_files(assets["fused"])
    assert all(files.values()) and f"{PHONEME_DIR}/projection.safetensors" in files
    assert not any(name.startswith(PHONEME_DIR) for name in bundle_files(assets["base"]))
    whisper_only = load_bundle(assets["base"], device="cpu", load_vae=False)
    assert whisper_only.phoneme is None and whisper_only.audio_encoder is whisper_only.whisper


def test_fused_bundle_errors_name_the_problem(assets, tmp_path):
    from lsray import doctor
    from lsray.train.export import save_inference_bundle

    broken = tmp_path / "broken"
    shutil.copytree(assets["fused"], broken)
    shutil.rmtree(broken / PHONEME_DIR)
    with pytest.raises(MissingWeightError, match=f"{PHONEME_DIR}/config.json"):
        load_bundle(broken, device="cpu", load_vae=False)
    check = doctor.check_bundle(str(broken))
    assert not check.ok and f"lacks {PHONEME_DIR}/config.json" in check.detail
    assert doctor.check_bundle(str(assets["fused"])).info["config"]["audio_encoder"] == "fused"

    data = json.loads((assets["fused"] / CONFIG_FILE).read_text())
    data["unet"]["cross_attention_dim"] = WHISPER_DIM + 64  # does not add up to Whisper + 128
    (broken / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match=f"{FUSED_DIM}-d but the UNet attends to {WHISPER_DIM + 64}-d"):
        BundleConfig.read(broken / CONFIG_FILE)

    unet = load_bundle(assets["fused"], device="cpu", lazy=True).unet
    config = BundleConfig.read(assets["fused"] / CONFIG_FILE)
    with pytest.raises(MissingWeightError, match="phoneme encoder"):  # base without phoneme/, none given
        save_inference_bundle(tmp_path / "never", unet, assets["base"], config)
    assert not (tmp_path / "never").exists()


# ---- (b) the pipeline's audio and sample stages ------------------------------------------------
def test_pipeline_stages_run_a_fused_bundle(assets, tmp_path):
    from talking import write_dub, write_face_clip

    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec
    from lsray.pipeline.flow import ClipFlow

    flow = ClipFlow(load_bundle(assets["fused"], device="cpu", lazy=True))
    dub = write_dub(tmp_path / "dub.wav", 16 / 25)
    video = write_face_clip(tmp_path / "face.mp4", frames=16)
    spec = ClipSpec("fused", str(video), str(dub), str(tmp_path / "out.mp4"), DubOptions(steps=1, guidance=1.0))
    plan = flow.prepare(spec)
    [shard] = list(flow.shard(plan))
    assert shard.phoneme_stats is not None  # the clip's normalisation, shared by every shard
    shard = flow.audio(shard)
    assert shard.tokens.shape == (16, 20, FUSED_DIM)
    assert np.abs(shard.tokens[..., WHISPER_DIM:]).max() > 0  # the phoneme part is really there
    [shard] = flow.sample([shard])  # the widened UNet takes them
    assert shard.generated.shape == (16, 256, 256, 3)


# ---- (c) stage 2 upgrades a Whisper-only bundle to fused audio ---------------------------------
@pytest.fixture(scope="module")
def phoneme_shards(assets) -> Path:
    from talking import write_dub, write_face_clip

    from lsray.train.data import prepare_training

    root = assets["root"]
    dub = write_dub(root / "talk.wav", 1.0)
    write_face_clip(root / "talk.mp4", frames=25, audio=dub)
    (root / "catalog.jsonl").write_text(json.dumps({"clip_id": "talk", "video": "talk.mp4", "audio": "talk.wav"}) + "\n")
    summary = prepare_training(str(root / "catalog.jsonl"), str(root / "shards"), whisper=tiny_whisper(),
                               phoneme=tiny_phoneme_encoder(), min_frames=FRAMES)
    assert summary.clips_written == 1
    return root / "shards"


def test_prepare_training_on_a_fused_bundle_uses_its_phoneme_branch(assets, phoneme_shards, tmp_path):
    from lsray.cli import main
    from lsray.train.data import load_clip, read_index

    out = tmp_path / "shards"
    assert main(["prepare-training", str(assets["root"] / "catalog.jsonl"), "--out", str(out),
                 "--bundle", str(assets["fused"]), "--min-frames", str(FRAMES)]) == 0
    [row] = read_index(str(out))
    assert row["phoneme"]
    ours, reference = load_clip(str(out), row["file"]), load_clip(str(phoneme_shards), row["file"])
    np.testing.assert_array_equal(ours["phoneme"], reference["phoneme"])  # the encoder saved in the bundle


def upgrade_config(assets, shards: Path, out: Path, **over) -> dict:
    cfg = {
        "job": "stage2", "bundle": str(assets["base"]), "out": str(out), "steps": 3, "lr": 1e-3,
        "unet_overrides": {"cross_attention_dim": FUSED_DIM}, "phoneme": str(assets["phoneme"]),
        "discriminator": None, "recon_weight": 0.0, "anchor_window": None,
        "data": {"shards": str(shards), "image_size": SIZE, "seq_len": FRAMES, "stride": FRAMES, "batch_size": 1},
    }
    cfg.update(over)
    return cfg


def test_stage2_upgrades_a_whisper_bundle_to_fused_audio(assets, phoneme_shards, tmp_path):
    from lsray.train.config import load_job_config
    from lsray.train.runner import sequence_kwargs, train_local
    from lsray.train.stage2 import Stage2Job

    cfg = load_job_config(upgrade_config(assets, phoneme_shards, tmp_path / "out"))
    kw = sequence_kwargs(cfg)
    assert kw["fused"] and kw["token_dim"] == FUSED_DIM

    # step 0: with a zero phoneme part the widened UNet computes exactly the Whisper-only one
    base = load_bundle(assets["base"], device="cpu", lazy=True).unet
    job = Stage2Job(cfg, torch.device("cpu"))
    x, audio = torch.randn(1, 13, FRAMES, 4, 4), torch.randn(FRAMES, 20, WHISPER_DIM)
    fused_audio = torch.cat([audio, torch.zeros(FRAMES, 20, PHONEME_DIM)], -1)
    with torch.no_grad():
        torch.testing.assert_close(job.unet(x, 500, fused_audio), base(x, 500, audio))

    _, hist = train_local(cfg)
    assert len(hist) == 3 and all(np.isfinite(h["noise"]) for h in hist)
    bundle = load_bundle(tmp_path / "out", device="cpu")
    assert bundle.config.audio.encoder == "fused" and bundle.config.unet.cross_attention_dim == FUSED_DIM
    assert isinstance(bundle.audio_encoder, FusedAudioEncoder)
    assert (tmp_path / "out" / PHONEME_DIR / "projection.safetensors").is_file()
    # the shards' phoneme features reached the UNet: its zero-padded K/V columns were trained
    kv = [w for name, w in bundle.unet.state_dict().items() if name.endswith(".attn2.to_k.weight")]
    assert kv and all(w.shape[1] == FUSED_DIM for w in kv) and any(w[:, WHISPER_DIM:].abs().max() > 0 for w in kv)


def test_stage2_upgrade_errors(assets, phoneme_shards, tmp_path):
    from lsray.train.config import load_job_config
    from lsray.train.runner import sequence_kwargs
    from lsray.train.tiny import synthetic_shards

    def kwargs(**over):
        return sequence_kwargs(load_job_config(upgrade_config(assets, phoneme_shards, tmp_path / "out", **over)))

    with pytest.raises(LsrayError, match=f"{FUSED_DIM}-d but the UNet attends to {WHISPER_DIM}-d"):
        kwargs(unet_overrides={})  # phoneme without the wider UNet
    with pytest.raises(LsrayError, match="no phoneme features"):
        kwargs(data={"shards": str(synthetic_shards(tmp_path / "plain", clips=1, frames=FRAMES, size=SIZE)),
                     "image_size": SIZE, "seq_len": FRAMES})
    w2v_only = tmp_path / "w2v-only"  # a plain Wav2Vec2 folder: no projection to ship
    tiny_phoneme_encoder().model.save_pretrained(str(w2v_only))
    with pytest.raises(MissingWeightError, match="projection.safetensors"):
        kwargs(phoneme=str(w2v_only))
    with pytest.raises(LsrayError, match="already has fused audio"):
        kwargs(bundle=str(assets["fused"]), unet_overrides={})
    # a Whisper-only UNet made wider (no phoneme branch) trains on zero-padded tokens, as it is dubbed
    assert kwargs(phoneme=None) == {**kwargs(), "fused": False}


# ---- (d) a fused fine-tune blended back toward its Whisper-only start (the recipe's ``blend``) ------
@pytest.fixture(scope="module")
def tuned(assets) -> Path:
    """The fused bundle with every weight moved, the new audio columns included: a stand-in fine-tune."""
    from lsray.train.export import save_inference_bundle

    fused = load_bundle(assets["fused"], device="cpu", lazy=True)
    unet = fused.unet
    torch.manual_seed(1)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_inference_bundle(assets["root"] / "tuned", unet, assets["fused"], fused.config)


def test_blend_runs_the_line_from_the_start_to_the_fine_tune(assets, tuned):
    from lsray.train.blend import blend_unets

    start = load_bundle(assets["base"], device="cpu", lazy=True).unet
    fine = load_bundle(tuned, device="cpu", lazy=True).unet
    x, audio = torch.randn(1, 13, FRAMES, 4, 4), torch.randn(FRAMES, 20, WHISPER_DIM)
    fused_audio = torch.cat([audio, torch.randn(FRAMES, 20, PHONEME_DIM)], -1)  # a phoneme part that is not zero
    with torch.no_grad():
        # weight 0 computes the Whisper-only start exactly (its phoneme columns are zero), 1 the fine-tune
        torch.testing.assert_close(blend_unets(start, fine, 0.0)(x, 500, fused_audio), start(x, 500, audio))
        torch.testing.assert_close(blend_unets(start, fine, 1.0)(x, 500, fused_audio), fine(x, 500, fused_audio))
        half = blend_unets(start, fine, 0.5)
        assert half.config == fine.config
        out = half(x, 500, fused_audio)
        assert not torch.allclose(out, fine(x, 500, fused_audio)) and not torch.allclose(out, start(x, 500, audio))
    mid, old, new = half.state_dict(), start.state_dict(), fine.state_dict()
    torch.testing.assert_close(mid["conv_in.weight"], (old["conv_in.weight"] + new["conv_in.weight"]) / 2)
    key = next(k for k in mid if k.endswith("attn2.to_k.weight"))  # (C, 64 + 128): the widened audio input
    torch.testing.assert_close(mid[key][:, :WHISPER_DIM], (old[key] + new[key][:, :WHISPER_DIM]) / 2)
    torch.testing.assert_close(mid[key][:, WHISPER_DIM:], new[key][:, WHISPER_DIM:] / 2)  # from the start's zeros
    with pytest.raises(ValueError, match="outside"):
        blend_unets(start, fine, 1.5)


def test_blended_bundle_is_the_fine_tune_with_the_blended_unet(assets, tuned, tmp_path):
    from lsray.train.blend import blend_bundles, blend_unets

    out = blend_bundles(assets["base"], tuned, 0.25, tmp_path / "blended")
    bundle = load_bundle(out, device="cpu")
    assert bundle.config == load_bundle(tuned, device="cpu", lazy=True).config  # audio, sampler, provenance: the fine-tune's
    assert isinstance(bundle.audio_encoder, FusedAudioEncoder)
    want = blend_unets(load_bundle(assets["base"], device="cpu", lazy=True).unet,
                       load_bundle(tuned, device="cpu", lazy=True).unet, 0.25).state_dict()
    for key, value in bundle.unet.state_dict().items():
        torch.testing.assert_close(value, want[key])
    # a consistency student is not blended: its teacher is, before distilling; nothing is written
    student = tmp_path / "student"
    shutil.copytree(tuned, student)
    data = json.loads((student / CONFIG_FILE).read_text())
    data["lcm"], data["unet"]["time_cond_proj_dim"] = {"time_cond_proj_dim": 16}, 16
    (student / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="consistency student"):
        blend_bundles(assets["base"], student, 0.5, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
