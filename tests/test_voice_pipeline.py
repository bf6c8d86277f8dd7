"""Voice conversion inside the DAG: the muxed track is the converted dub, in the on-screen
speaker's voice, with its timing intact."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from talking import write_face_clip
from lsray.media import probe, read_audio
from lsray.pipeline.local import run_clip
from lsray.pipeline.options import DubOptions
from lsray.pipeline.records import ClipSpec
from lsray.synth import synthesize

SPEAKER_LINES = "The weather was fine this morning. We walked along the river for an hour and talked about the trip."


@pytest.fixture(scope="module")
def flow(tiny_bundle):
    from lsray.bundle import load_bundle
    from lsray.pipeline.flow import ClipFlow

    return ClipFlow(load_bundle(tiny_bundle, device="cpu"), encode_preset="ultrafast")


def _wav(path, speech) -> str:
    sf.write(str(path), speech.samples, speech.sr)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A blank-faced video whose own track is a male English speaker; a female German dub."""
    root = tmp_path_factory.mktemp("voice")
    own = synthesize(SPEAKER_LINES, voice="en+m3")
    frames = int(own.duration_s * 25)
    video = write_face_clip(root / "source.mp4", frames=frames, blank_frames=set(range(frames)),
                            audio=_wav(root / "own.wav", own))
    dub = synthesize("Guten Morgen. Wir gehen heute in die Stadt und kaufen Brot.", voice="de+f3")
    return root, video, _wav(root / "dub.wav", dub), frames


def test_converted_dub_is_muxed_and_sounds_like_the_speaker(flow, clip):
    root, video, dub, frames = clip
    out = root / "dubbed.mp4"
    result = run_clip(flow, ClipSpec("v", str(video), dub, str(out), DubOptions(voice="builtin", steps=1)))
    assert result.status == "no_face", result.error  # the face is blank here: only the voice is tested
    print("speaker similarity before / after conversion:", result.similarity_before, result.speaker_similarity)
    assert result.speaker_similarity > result.similarity_before + 0.05
    info = probe(out)
    assert abs(info.duration - frames / 25) <= 1 / 25 + 0.03  # timing intact (AAC frame rounding)
    muxed, sr = read_audio(out, mono=True)
    original, sr0 = read_audio(dub, mono=True)
    assert sr == sr0  # the dub's own rate
    n = min(len(muxed), len(original))
    corr = abs(np.corrcoef(muxed[:n], original[:n])[0, 1])
    assert corr < 0.9  # the converted track, not the original dub


def test_reference_file_from_the_catalog_row_is_used(flow, clip):
    root, video, dub, _ = clip
    ref = _wav(root / "ref.wav", synthesize(SPEAKER_LINES, voice="en+m3"))
    spec = ClipSpec("r", str(video), dub, str(root / "r.mp4"), DubOptions(voice="builtin"), voice_reference=ref)
    plan = flow.prepare(spec)
    assert plan.track.endswith("voice.wav") and plan.speaker_similarity > plan.similarity_before


def test_too_little_speech_for_a_reference_is_a_clear_error(flow, tmp_path):
    from talking import write_dub

    silent_source = write_face_clip(tmp_path / "quiet.mp4", frames=20, blank_frames=set(range(20)),
                                    audio=write_dub(tmp_path / "hum.wav", 0.8))
    dub = write_dub(tmp_path / "dub.wav", 0.8)
    result = run_clip(flow, ClipSpec("q", str(silent_source), str(dub), str(tmp_path / "q.mp4"),
                                       DubOptions(voice="builtin")))
    assert result.status == "error" and "speech" in result.error and not (tmp_path / "q.mp4").exists()
