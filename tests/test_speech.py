"""espeak speech synthesis (lsray.synth.speech): audio, timings, voices, thread safety."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from lsray.errors import LsrayError
from lsray.synth import PhonemeEvent, Speech, list_voices, synthesize
from lsray.synth.speech import SpeechSynthesisError

TEXT = "The quick brown fox jumps over the lazy dog."


def _median_f0(speech: Speech) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld
    x = speech.samples.astype(np.float64)
    f0, t = pyworld.dio(x, speech.sr, f0_floor=60, f0_ceil=500)
    f0 = pyworld.stonemask(x, f0, t, speech.sr)
    return float(np.median(f0[f0 > 0]))


def test_synthesize_returns_audio_and_timings() -> None:
    s = synthesize(TEXT, "en-us")
    assert s.sr == 22050 and s.samples.dtype == np.float32 and s.samples.ndim == 1
    assert 1.5 < s.duration_s < 6.0
    assert 0.05 < float(np.abs(s.samples).max()) <= 1.0
    # Phonemes: IPA names, starts increasing, all inside the audio.
    assert len(s.phonemes) > 20 and all(isinstance(p, PhonemeEvent) and p.name for p in s.phonemes)
    starts = [p.start_s for p in s.phonemes]
    assert starts == sorted(starts) and 0.0 <= starts[0] and starts[-1] < s.duration_s
    assert any(ch in "".join(p.name for p in s.phonemes) for ch in "ðʌɪəɒɔː")  # IPA, not ASCII codes
    words = [w.text for w in s.words]
    assert words[:3] == ["The", "quick", "brown"] and "dog" in words


def test_voices_languages_and_parameters() -> None:
    male, female = synthesize(TEXT, "en+m3"), synthesize(TEXT, "en+f3")
    assert _median_f0(female) > 1.4 * _median_f0(male)
    german = synthesize("Guten Tag, wie geht es Ihnen heute?", "de+f3")
    french = synthesize("Bonjour, comment allez-vous aujourd'hui?", "fr+f2")
    assert german.duration_s > 1.0 and french.duration_s > 1.0
    slow, fast = synthesize(TEXT, "en-us", rate=120), synthesize(TEXT, "en-us", rate=300)
    assert fast.duration_s < 0.7 * slow.duration_s
    low, high = synthesize(TEXT, "en-us", pitch=10), synthesize(TEXT, "en-us", pitch=90)
    assert _median_f0(high) > _median_f0(low)
    # Parameters do not leak into the next call (espeak state is global); espeak itself varies
    # by a few samples between identical calls, so compare within 10 ms.
    assert abs(synthesize(TEXT, "en-us").duration_s - synthesize(TEXT, "en-us").duration_s) < 0.01
    assert {"de", "fr", "en-us"} <= set(list_voices())


def test_unknown_voice_and_empty_text_are_clear_errors() -> None:
    with pytest.raises(SpeechSynthesisError, match="xx-nope"):
        synthesize("hello", "xx-nope")
    with pytest.raises(LsrayError):
        synthesize("   ")


def test_concurrent_calls_are_serialised() -> None:
    voices = ["en+m3", "en+f3", "de+f3", "fr+f2"] * 2
    expected = {v: synthesize(TEXT, v).samples for v in set(voices)}
    results: dict[int, np.ndarray] = {}

    def run(i: int, v: str) -> None:
        results[i] = synthesize(TEXT, v).samples

    threads = [threading.Thread(target=run, args=(i, v)) for i, v in enumerate(voices)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Interleaved callbacks would mix two utterances' chunks: lengths and levels would jump.
    # (espeak varies by a few samples between identical calls, hence the tolerances.)
    for i, v in enumerate(voices):
        assert abs(len(results[i]) - len(expected[v])) < 0.01 * len(expected[v]), v
        rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))  # noqa: E731
        assert abs(rms(results[i]) - rms(expected[v])) < 0.05 * rms(expected[v]), v
