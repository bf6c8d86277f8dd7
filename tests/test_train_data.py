"""``lsray prepare-training``: talking-head clips -> shards; clips with no face are dropped and counted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lsray.train.data import clip_sequences, load_clip, read_index


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from talking import write_blank_clip, write_dub, write_face_clip

    root = tmp_path_factory.mktemp("talking")
    dub = write_dub(root / "speech.wav", 1.6)
    write_face_clip(root / "face.mp4", frames=40, audio=dub)
    write_blank_clip(root / "blank.mp4", frames=20)
    rows = [{"clip_id": "face", "video": "face.mp4", "audio": "speech.wav"},
            {"clip_id": "blank", "video": "blank.mp4", "audio": "speech.wav"}]
    path = root / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prepare_training_python_api_with_phonemes(catalog, tmp_path):
    from lsray.train.data import prepare_training
    from lsray.train.tiny import tiny_phoneme_encoder, tiny_whisper

    summary = prepare_training(str(catalog), str(tmp_path / "shards"), whisper=tiny_whisper(), phoneme=tiny_phoneme_encoder(),
                               resolutions=(256, 512))
    assert (summary.clips_read, summary.clips_written, summary.dropped_no_face) == (2, 1, 1)
    assert summary.dropped == ["blank"]
    [row] = read_index(str(tmp_path / "shards"))
    clip = load_clip(str(tmp_path / "shards"), row["file"])
    f = row["frames"]
    assert f >= 16 and clip["crops_256"].shape == (f, 256, 256, 3) and clip["crops_512"].shape == (f, 512, 512, 3)
    assert clip["whisper"].shape == (f, 20, 64) and clip["phoneme"].shape == (f, 10, 128)
    assert clip["mel"].shape[0] == 80
    seqs = list(clip_sequences(clip, seq_len=16, stride=8, image_size=64, fused=True, negative_shift=5))
    assert seqs and seqs[0]["frames"].shape == (16, 64, 64, 3) and seqs[0]["audio"].shape == (16, 20, 192)
    assert seqs[0]["mel"].shape == (80, 52) and seqs[0]["mel_neg"].shape == (80, 52)


def test_prepare_training_cli(catalog, tmp_path, capsys):
    from lsray.cli import main
    from lsray.train.tiny import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "bundle")
    assert main(["prepare-training", str(catalog), "--out", str(tmp_path / "out"), "--bundle", str(bundle)]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["clips_written"] == 1 and summary["dropped_no_face"] == 1
    assert (tmp_path / "out" / "mask.png").is_file()
    assert np.load(tmp_path / "out" / "clips" / "face.npz")["crops_256"].dtype == np.uint8


def test_shards_hold_what_the_pipeline_gives_the_unet(catalog, tmp_path):
    """Training shards are made by the dubbing pipeline's own steps: the stored crops and audio
    tokens are the ones the flow's shard and audio steps give the sample stage for that clip, and
    the demo's SyncNet scorer sees the same faces on the same frames."""
    from lsray.audio.fused import FusedAudioEncoder
    from lsray.face import aligned_face_crops
    from lsray.media import iter_frames
    from lsray.pipeline.audio import AudioStage
    from lsray.pipeline.options import ClipSettings, DubOptions
    from lsray.pipeline.prepare import PrepareStage, ShardStage
    from lsray.pipeline.records import ClipSpec
    from lsray.train.data import prepare_training
    from lsray.train.tiny import tiny_phoneme_encoder, tiny_whisper

    whisper, phoneme = tiny_whisper(), tiny_phoneme_encoder()
    prepare_training(str(catalog), str(tmp_path / "shards"), whisper=whisper, phoneme=phoneme)
    [row] = read_index(str(tmp_path / "shards"))
    stored = load_clip(str(tmp_path / "shards"), row["file"])
    first, f = int(stored["start_frame"]), row["frames"]

    video, audio = str(catalog.parent / "face.mp4"), str(catalog.parent / "speech.wav")
    spec = ClipSpec("face", video, audio, "", DubOptions(voice="off"))
    plan = PrepareStage()(spec, ClipSettings.tracking_only(256), staging="")
    audio_stage = AudioStage(FusedAudioEncoder(whisper, phoneme))
    shards = [audio_stage(s) for s in ShardStage()(plan)]
    crops = np.concatenate([s.crops for s in shards])[first:first + f]
    tokens = np.concatenate([s.tokens for s in shards])[first:first + f]  # (f, 10 L, C + 128)
    assert np.array_equal(stored["crops_256"], crops)
    assert np.array_equal(stored["whisper"], tokens[..., :64].astype(np.float16))
    assert np.array_equal(stored["phoneme"], tokens[:, ::2, 64:].astype(np.float16))
    # what training reads back for a fused UNet is the pipeline's token layout
    seq = next(clip_sequences(stored, seq_len=16, stride=16, image_size=256, fused=True))
    assert np.allclose(seq["audio"], tokens[:16].astype(np.float16).astype(np.float32))

    # The scorer tracks RGB frames held in memory, prepare the file's I420 planes: the same faces to
    # within tracking noise (points within 0.26 px here; each crop >= 36 dB of the shard's).
    scorer_crops, indices = aligned_face_crops([fr.rgb for fr in iter_frames(video)], 25.0, 256)
    assert np.array_equal(indices[np.searchsorted(indices, first):][:f], np.arange(first, first + f))
    diff = scorer_crops[np.searchsorted(indices, first):][:f].astype(np.float64) - crops  # (f, 256, 256, 3)
    psnr = 10 * np.log10(255.0**2 / np.maximum((diff**2).mean(axis=(1, 2, 3)), 1e-12))
    assert psnr.min() > 33.0 and np.abs(diff).mean() < 1.5, (psnr.min(), np.abs(diff).mean())
