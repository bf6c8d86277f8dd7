"""Voice conversion (upgrade 5): reference cutting, the built-in WORLD converter, similarity.

Speech comes from espeak (lsray.synth.speech): ``en+m3`` is a male voice, ``en+f3`` a clearly
different female one (resemblyzer cosine ~0.6-0.7), so "sounds more like the target" is
measurable without any recorded data.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import soundfile

from lsray.errors import LsrayError, MediaError
from lsray.synth import synthesize
from lsray.voice import (
    NotEnoughSpeechError,
    VoiceConversionError,
    VoiceConverter,
    cut_reference,
    load_reference,
    make_converter,
    resample,
    speaker_similarity,
)

SOURCE_TEXT = "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."
TARGET_TEXT = ("Peter Piper picked a peck of pickled peppers. How much wood would a woodchuck chuck "
               "if a woodchuck could chuck wood?")
FRAME_S = 0.04  # one 25 fps video frame


def _median_f0(x: np.ndarray, sr: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld
    x64 = x.astype(np.float64)
    f0, t = pyworld.dio(x64, sr, f0_floor=60, f0_ceil=500)
    f0 = pyworld.stonemask(x64, f0, t, sr)
    return float(np.median(f0[f0 > 0]))


@pytest.fixture(scope="module")
def male():
    return synthesize(SOURCE_TEXT, "en+m3")


@pytest.fixture(scope="module")
def female():
    return synthesize(TARGET_TEXT, "en+f3")


def test_builtin_moves_a_male_voice_toward_a_female_reference(male, female) -> None:
    conv = make_converter("builtin")
    assert isinstance(conv, VoiceConverter) and conv.name == "builtin"
    out = conv.convert(male.samples, male.sr, female.samples, female.sr)
    before = speaker_similarity(male.samples, male.sr, female.samples, female.sr)
    after = speaker_similarity(out, male.sr, female.samples, female.sr)
    assert after > before + 0.08, (before, after)
    # Pitch lands near the target's; formants were warped up (female vocal tract is shorter).
    assert abs(np.log(_median_f0(out, male.sr) / _median_f0(female.samples, female.sr))) < 0.15
    assert conv.last_alpha > 1.05


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_builtin_keeps_rate_and_duration(male, female, sr: int) -> None:
    x = resample(male.samples, male.sr, sr)[: int(2.5 * sr) + 123]  # an awkward length
    ref = resample(female.samples, female.sr, 16000)  # reference at another rate
    conv = make_converter("builtin")
    conv.convert(x[:sr], sr, ref, 16000)  # warm-up (and the reference's stats get cached)
    t0 = time.perf_counter()
    y = conv.convert(x, sr, ref, 16000)
    rtf = (time.perf_counter() - t0) / (len(x) / sr)
    assert y.dtype == np.float32 and y.shape == x.shape  # exact, so well within one frame
    assert np.isfinite(y).all() and 0.05 < np.abs(y).max() <= 1.0
    # Content/timing kept: the energy envelopes (10 ms) of input and output correlate.
    hop = sr // 100
    env = lambda a: np.log(np.square(a[: len(a) // hop * hop]).reshape(-1, hop).mean(1) + 1e-8)  # noqa: E731
    assert np.corrcoef(env(x), env(y))[0, 1] > 0.8
    # Real-time factor is < 0.1 when the CPU is idle (see benchmarks/voice_bench.py);
    # the bound here is loose because test machines are shared.
    assert rtf < 0.4, rtf


def test_builtin_passes_through_silence_and_tiny_clips(female) -> None:
    conv = make_converter("builtin")
    silence = np.zeros(16000, np.float32)
    np.testing.assert_array_equal(conv.convert(silence, 16000, female.samples, female.sr), silence)
    tiny = np.full(100, 0.1, np.float32)
    assert conv.convert(tiny, 16000, female.samples, female.sr).shape == tiny.shape


def test_bad_inputs_are_clear_errors(female) -> None:
    conv = make_converter("builtin")
    with pytest.raises(VoiceConversionError):
        conv.convert(np.zeros((2, 2, 2), np.float32), 16000, female.samples, female.sr)
    with pytest.raises(VoiceConversionError, match="no voiced speech"):
        conv.convert(female.samples, female.sr, np.zeros(16000, np.float32), 16000)
    with pytest.raises(VoiceConversionError, match="unknown voice converter"):
        make_converter("nope")  # type: ignore[arg-type]


# ---- reference cutting ------------------------------------------------------------------------

def _track(sr: int) -> tuple[np.ndarray, list[tuple[float, float]], list[tuple[float, float]]]:
    """Speech, silence, a music-like melody, white noise, speech again: (audio, speech, other)."""
    rng = np.random.default_rng(0)
    a = resample(synthesize("The quick brown fox jumps over the lazy dog.", "en+m3").samples, 22050, sr)
    b = resample(synthesize("She sells sea shells by the sea shore, every single day.", "en+m3").samples, 22050, sr)
    t = np.arange(sr // 2) / sr
    melody = np.concatenate([sum(0.15 / (k + 1) * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(6))
                             for f in (261.6, 329.6, 392.0, 523.3)]).astype(np.float32)
    noise = (0.1 * rng.standard_normal(int(1.5 * sr))).astype(np.float32)
    parts = [np.zeros(sr, np.float32), a, np.zeros(sr, np.float32), melody, np.zeros(sr // 2, np.float32),
             noise, np.zeros(int(0.7 * sr), np.float32), b, np.zeros(sr, np.float32)]
    edges = np.cumsum([0] + [len(p) for p in parts]) / sr
    speech = [(edges[1], edges[2]), (edges[7], edges[8])]
    other = [(edges[3], edges[4]), (edges[5], edges[6])]
    return np.concatenate(parts), speech, other


@pytest.mark.parametrize("sr", [16000, 48000])
def test_reference_picks_speech_and_skips_silence_music_noise(sr: int) -> None:
    audio, speech, other = _track(sr)
    ref = cut_reference(audio, sr)
    assert ref.sr == sr and 4.0 < ref.duration_s <= 10.0
    for start, end in ref.segments:  # every piece used lies inside a speech region
        assert any(s - 0.1 <= start and end <= e + 0.1 for s, e in speech), (start, end)
    for s, e in speech:  # and both speech regions were found
        assert any(start < e and end > s for start, end in ref.segments)
    rejected = [c for c in ref.checks if not c.is_speech]
    assert len(rejected) >= 2  # the melody and the noise were candidates, and were refused
    for c in rejected:
        assert any(s - 0.1 <= c.start_s and c.end_s <= e + 0.1 for s, e in other)


def test_reference_is_capped_at_max_seconds() -> None:
    long = np.concatenate([synthesize(SOURCE_TEXT, "en+m3").samples] * 4)
    ref = cut_reference(long, 22050, max_s=6.0)
    assert 5.5 <= ref.duration_s <= 6.0 + 1e-6


def test_too_little_speech_is_a_clear_error() -> None:
    sr = 16000
    short = resample(synthesize("Hi there.", "en+m3").samples, 22050, sr)
    rng = np.random.default_rng(1)
    audio = np.concatenate([np.zeros(2 * sr, np.float32), short, (0.1 * rng.standard_normal(3 * sr)).astype(np.float32)])
    with pytest.raises(NotEnoughSpeechError) as info:
        cut_reference(audio, sr)
    assert isinstance(info.value, LsrayError) and info.value.found_s < 2.0
    assert "usable speech" in str(info.value)
    with pytest.raises(NotEnoughSpeechError):
        cut_reference(np.zeros(10 * sr, np.float32), sr)


def test_reference_file_from_a_catalog_row(tmp_path, female) -> None:
    path = tmp_path / "speaker.wav"
    soundfile.write(str(path), np.concatenate([np.zeros(8000, np.float32), female.samples]), female.sr)
    ref = load_reference(path)
    assert ref.sr == female.sr and 3.0 < ref.duration_s <= 10.0
    with pytest.raises(MediaError, match="not found"):
        load_reference(tmp_path / "missing.wav")


def test_similarity_is_high_for_same_voice_and_lower_for_another(male, female) -> None:
    same = speaker_similarity(male.samples, male.sr, synthesize(TARGET_TEXT, "en+m3").samples, 22050)
    other = speaker_similarity(male.samples, male.sr, female.samples, female.sr)
    assert same > 0.8 and other < same - 0.1
    # Any sample rate in, the same answer (resampled to 16 kHz inside).
    at16 = speaker_similarity(resample(male.samples, 22050, 16000), 16000, female.samples, female.sr)
    assert abs(at16 - other) < 0.03
