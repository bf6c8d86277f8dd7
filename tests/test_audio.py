"""lsray.audio: LatentSync parity, the 30 s glitch fix, streaming, phoneme and fused layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import WhisperConfig, WhisperModel

from lsray.audio.fused import FusedAudioEncoder
from lsray.audio.phoneme import PhonemeEncoder
from lsray.audio.whisper import WhisperEncoder, load_wave
from lsray.audio.windows import ROWS_PER_WINDOW, chunks, frame_times, stream_windows, upstream_frame_count, windows_at
from lsray.audio.mel import HOP_LENGTH, MAX_PASS_BLOCK_FRAMES, N_FFT, WINDOW_FRAMES, num_rows
from lsray.errors import MissingWeightError
from lsray.train.tiny import tiny_phoneme_encoder

TOL = 1e-4


@pytest.fixture(scope="module")
def whisper_dir(parity_dir):
    return parity_dir / "whisper_small"


@pytest.fixture(scope="module")
def ref(whisper_dir):
    return load_file(str(whisper_dir / "features.safetensors"))


@pytest.fixture(scope="module")
def encoder(whisper_dir):
    return WhisperEncoder.from_openai(whisper_dir / "tiny.pt", device=torch.device("cpu"))


@pytest.fixture(scope="module")
def short_wave(whisper_dir):
    return load_wave(whisper_dir / "speech_short.wav")


@pytest.fixture(scope="module")
def long_wave(whisper_dir):
    return load_wave(whisper_dir / "speech_long.wav")


@pytest.fixture(scope="module")
def long_features(encoder, long_wave):
    return encoder.features(long_wave)


def glitch_ratios(features: torch.Tensor, rows=(1500, 3000)) -> list[float]:
    """Step ||f[r] - f[r-1]|| on the last layer at each row, over the median step."""
    steps = (features[1:, -1] - features[:-1, -1]).norm(dim=-1)  # steps[r - 1] = step into row r
    median = steps.median()
    return [float(steps[r - 1] / median) for r in rows]


# ---- Whisper features: upstream parity ------------------------------------------------------
def test_features_match_upstream_short(encoder, short_wave, ref):
    feats = encoder.features(short_wave)
    assert feats.shape == (422, 3, 64) == ref["short.features"].shape
    err = float((feats - ref["short.features"]).abs().max())
    print(f"\nshort.features max abs error: {err:.3e}")
    assert err < TOL


def test_upstream_mode_matches_long(encoder, long_wave, ref):
    """hop = 30 s reproduces upstream's independent spans (and its glitch) on long audio."""
    feats = encoder.features(long_wave, hop_frames=WINDOW_FRAMES)
    assert feats.shape == ref["long.features"].shape == (3477, 3, 64)
    err = float((feats - ref["long.features"]).abs().max())
    print(f"\nlong.features (upstream mode) max abs error: {err:.3e}")
    assert err < TOL


def test_chunks_match_upstream(encoder, short_wave, ref):
    for name, frames in (("short", 213), ("long", 1740)):
        got = chunks(ref[f"{name}.features"], fps=25)
        assert got.shape == ref[f"{name}.chunks"].shape == (frames, 30, 64)
        err = float((got - ref[f"{name}.chunks"]).abs().max())
        print(f"\n{name}.chunks (from upstream features) max abs error: {err:.3e}")
        assert err == 0.0
    # end to end: our features -> our chunks
    err = float((chunks(encoder.features(short_wave)) - ref["short.chunks"]).abs().max())
    print(f"short.chunks end-to-end max abs error: {err:.3e}")
    assert err < TOL


def upstream_window(features: torch.Tensor, i: int, fps: float) -> torch.Tensor:
    """feature2chunks' per-frame slice, written out plainly as the reference."""
    centre = int(i * 50 / fps)
    idx = [min(max(j, 0), len(features) - 1) for j in range(centre - 4, centre + 6)]
    return torch.cat([features[j] for j in idx], dim=0)  # (10 L, C)


@pytest.mark.parametrize("fps", [25.0, 30.0, 29.97, 24.0, 50.0])
def test_windows_at_any_fps(ref, fps):
    feats = ref["short.features"]
    n = upstream_frame_count(len(feats), fps)
    got = windows_at(feats, frame_times(n, fps))
    want = torch.stack([upstream_window(feats, i, fps) for i in range(n)])
    assert torch.equal(got, want)
    assert torch.equal(chunks(feats, fps), got)
    assert got.shape[1] == ROWS_PER_WINDOW * feats.shape[1]


# ---- the 30 s glitch ------------------------------------------------------------------------
def test_no_glitch_at_30s_boundaries(long_features, ref):
    upstream = glitch_ratios(ref["long.features"])
    ours = glitch_ratios(long_features)
    print(f"\nstep / median step at rows 1500, 3000: upstream {upstream[0]:.2f}, {upstream[1]:.2f}; "
          f"lsray {ours[0]:.2f}, {ours[1]:.2f}")
    assert upstream[0] > 3.5 and upstream[1] > 3.5  # the fixture shows the glitch (~4x)
    assert ours[0] < 1.5 and ours[1] < 1.5
    assert long_features.shape == ref["long.features"].shape
    # no new jump anywhere else (e.g. at the cross-fade edges, rows 1000, 2000, 2500)
    worst = max(glitch_ratios(long_features, rows=range(1, len(long_features))))
    worst_up = max(glitch_ratios(ref["long.features"], rows=range(1, len(long_features))))
    print(f"largest step / median anywhere: upstream {worst_up:.2f}, lsray {worst:.2f}")
    assert worst < 2.5 < worst_up


# ---- streaming ------------------------------------------------------------------------------
class SpyWave:
    """A wave source that records the largest span read (proves reads are bounded)."""

    def __init__(self, wave: np.ndarray) -> None:
        self.wave = wave
        self.max_read = 0

    def __len__(self) -> int:
        return len(self.wave)

    def __getitem__(self, index: slice) -> np.ndarray:
        out = self.wave[index]
        self.max_read = max(self.max_read, len(out))
        return out


def test_stream_blocks_concatenate_to_features(encoder, long_wave, long_features, ref):
    blocks = list(encoder.stream(long_wave))
    starts = [b.start_row for b in blocks]
    assert starts == sorted(starts) and starts[0] == 0
    assert max(len(b.features) for b in blocks) <= 1500
    assert torch.equal(torch.cat([b.features for b in blocks]), long_features)
    # per-frame windows straight from the stream equal chunks() of the whole tensor
    total = num_rows(len(long_wave))
    n = upstream_frame_count(total)
    streamed = torch.cat(list(stream_windows((b.features for b in encoder.stream(long_wave)), total, frame_times(n, 25))))
    assert torch.equal(streamed, chunks(long_features))
    # ... and from upstream's own features in uneven blocks
    up = ref["long.features"]
    pieces = (up[i : i + 337] for i in range(0, len(up), 337))
    assert torch.equal(torch.cat(list(stream_windows(pieces, len(up), frame_times(1740, 25)))), ref["long.chunks"])


def test_stream_memory_is_bounded_by_the_window(encoder):
    """6.5 min of synthetic audio: reads, blocks and held rows stay window-sized."""
    rng = np.random.default_rng(0)
    seconds = 390
    t = np.arange(seconds * 16_000) / 16_000
    wave = (0.1 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t))) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    spy = SpyWave(wave)
    total = 0
    biggest = 0
    for block in encoder.stream(spy):
        assert block.start_row == total
        total += len(block.features)
        biggest = max(biggest, block.features.numel())
    assert total == num_rows(len(wave)) == seconds * 50
    window_samples = (WINDOW_FRAMES - 1) * HOP_LENGTH + N_FFT + 2 * (N_FFT // 2 + 1)
    max_pass_samples = (MAX_PASS_BLOCK_FRAMES - 1) * HOP_LENGTH + N_FFT + 2 * (N_FFT // 2 + 1)
    print(f"\nstream over {seconds} s: largest read {spy.max_read} samples of {len(wave)}, "
          f"largest block {biggest} values")
    assert spy.max_read <= max(window_samples, max_pass_samples) < len(wave)
    assert biggest <= 1500 * encoder.num_layers * encoder.dim


# ---- loading --------------------------------------------------------------------------------
def test_missing_files_name_the_path(tmp_path):
    for call, path in (
        (WhisperEncoder.from_openai, tmp_path / "whisper" / "tiny.pt"),
        (WhisperEncoder.from_pretrained, tmp_path / "hf_whisper"),
        (PhonemeEncoder.from_pretrained, tmp_path / "wav2vec2"),
    ):
        with pytest.raises(MissingWeightError) as info:
            call(path)
        assert str(path) in str(info.value)


def test_from_pretrained_hf_folder(encoder, short_wave, tmp_path):
    """A transformers WhisperModel folder holding the same encoder gives the same features."""
    cfg = WhisperConfig(
        num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=256,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=100,
        max_source_positions=1500, max_target_positions=16,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    hf = WhisperModel(cfg)
    hf.encoder.load_state_dict(encoder.encoder.state_dict())
    hf.save_pretrained(tmp_path)
    loaded = WhisperEncoder.from_pretrained(tmp_path, device=torch.device("cpu"))
    wave = short_wave[: 16_000 * 3]
    assert torch.allclose(loaded.features(wave), encoder.features(wave), atol=1e-6)


# ---- phoneme branch and fused tokens --------------------------------------------------------
def test_phoneme_encoder_on_the_50hz_grid(short_wave):
    enc = tiny_phoneme_encoder()
    one_second = short_wave[:16_000]
    assert enc.hidden_frames(one_second).shape == (49, 32)  # Wav2Vec2 is ~49 Hz
    feats = enc.features(one_second)
    assert feats.shape == (50, 128)  # resampled to exactly Whisper's row count
    full = enc.features(short_wave)
    assert full.shape == (num_rows(len(short_wave)), 128) == (422, 128)
    # chunked encoding keeps every frame exactly once, in order
    chunked = tiny_phoneme_encoder(chunk_s=3.0, context_s=1.0)
    chunked.load_state_dict(enc.state_dict())
    assert chunked.hidden_frames(short_wave).shape == enc.hidden_frames(short_wave).shape


def test_fused_layout_and_zero_branch(encoder, short_wave):
    phoneme = tiny_phoneme_encoder()
    fused = FusedAudioEncoder(encoder, phoneme)
    assert fused.dim == 64 + 128
    whisper_feats = encoder.features(short_wave)  # (T, L, C)
    phon = phoneme.features(short_wave)  # (T, 128)
    windows = fused.chunks(short_wave)  # (N, 10 L, C + 128)
    assert windows.shape == (213, 30, 192)
    # token (row r, layer l) = [Whisper(r, l), phoneme(r)]
    L = encoder.num_layers
    i = 50
    rows = [2 * i + k for k in range(-4, 6)]
    for r_idx, r in enumerate(rows):
        for layer in range(L):
            token = windows[i, r_idx * L + layer]
            assert torch.allclose(token[:64], whisper_feats[r, layer])
            assert torch.allclose(token[64:], phon[r])
    # zero phoneme branch: first C dims are exactly the Whisper-only windows
    torch.nn.init.zeros_(phoneme.proj.weight)
    torch.nn.init.zeros_(phoneme.proj.bias)
    windows = fused.chunks(short_wave)
    assert torch.equal(windows[..., :64], chunks(whisper_feats))
    assert torch.count_nonzero(windows[..., 64:]) == 0


def test_windows_for_a_frame_range_are_streamed(encoder, long_wave, long_features):
    """One shard's frames (here 900..1099 of the long file) come straight from the stream."""
    times = frame_times(200, 25.0, first_frame=900)
    got = torch.cat(list(encoder.stream_windows(long_wave, times, batch=32)))
    assert torch.equal(got, chunks(long_features)[900:1100])


def test_fused_stream_and_phoneme_rows(encoder, short_wave):
    phoneme = tiny_phoneme_encoder()
    fused = FusedAudioEncoder(encoder, phoneme)
    feats = fused.features(short_wave)  # (T, L, C + 128)
    assert feats.shape == (422, 3, 192)
    assert torch.allclose(feats[:, 0, 64:], phoneme.features(short_wave), atol=1e-5)
    part = phoneme.rows(short_wave, 100, 180)
    assert part.shape == (80, 128)
    times = frame_times(40, 25.0, first_frame=60)
    streamed = torch.cat(list(fused.stream_windows(short_wave, times)))
    assert torch.equal(streamed, windows_at(feats, times))


def test_shard_span_windows_equal_full_stream(parity_dir):
    """A shard carrying only its sample span (+ the file's mel max) gets the same windows."""
    from lsray.audio.mel import log_mel_max, num_rows
    from lsray.audio.wave import WaveSlice
    from lsray.audio.whisper import samples_for_rows
    from lsray.audio.windows import rows_for_times

    encoder = WhisperEncoder.from_openai(parity_dir / "whisper_small" / "tiny.pt")
    wave = load_wave(parity_dir / "whisper_small" / "speech_long.wav")
    times = frame_times(200, 25, first_frame=1300)  # 52-60 s: past two window boundaries
    full = torch.cat(list(encoder.stream_windows(wave, times)))
    total = num_rows(len(wave))
    lo, hi = samples_for_rows(rows_for_times(times, total), len(wave))
    assert hi - lo < len(wave)  # the shard really holds less than the file
    part = WaveSlice(wave[lo:hi], lo, len(wave))
    shard = torch.cat(list(encoder.stream_windows(part, times, file_max=log_mel_max(wave))))
    assert torch.equal(shard, full)


def test_random_whisper_features_follow_the_speech_not_the_frame_index():
    """The demo recipe's random Whisper must carry the speech: with transformers' init the position
    table was >99 % of the features' variance over time, so a UNet could not hear the audio."""
    import librosa

    from lsray.synth.speech import synthesize
    from lsray.train.tiny import tiny_whisper

    whisper = tiny_whisper()
    lines = [("Peter picked a pepper.", "en-us"), ("Wo ist mein Buch?", "de"), ("La mer est calme.", "fr+f3"),
             ("Baba maps a big moon.", "en+m3")]
    feats = []
    for text, voice in lines:
        speech = synthesize(text, voice)
        wave = librosa.resample(speech.samples, orig_sr=speech.sr, target_sr=16_000)
        feats.append(whisper.features(wave)[:40].numpy())  # (40 rows, L, C)
    a = np.stack(feats)  # (4, 40, L, C)
    a = a - a.mean(axis=(0, 1), keepdims=True)
    position_share = a.mean(axis=0).var() / a.var()  # what the frame index alone explains
    assert position_share < 0.35, position_share
    assert a.std() > 0.3  # O(1) features: the UNet's attention needs no huge weights to read them
