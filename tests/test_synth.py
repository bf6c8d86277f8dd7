"""The synthetic talking-head world: visemes, procedural faces through mediapipe, the photo, oracle clips."""

from __future__ import annotations

import numpy as np
import pytest

from lsray.synth import (
    Identity,
    PhonemeEvent,
    mouth_opening,
    render_talking_head,
    sample_pairs,
    synthesize,
    talking_head_geometry,
    viseme_track,
    write_clip,
)
from lsray.synth.face import draw_face
from lsray.synth.photo import draw_photo
from lsray.synth.visemes import CLOSURE, OPEN, phoneme_viseme


def _events(*pairs):
    return [PhonemeEvent(t, n) for t, n in pairs]


def test_bilabials_close_and_open_vowels_open():
    for name in ("p", "b", "m"):
        assert phoneme_viseme(name)[CLOSURE] == 1.0
    assert phoneme_viseme("ˈaː")[OPEN] > 0.8  # stress and length marks are stripped
    assert phoneme_viseme("ɔ̃")[OPEN] > 0.5  # combining nasal mark stripped
    assert np.allclose(phoneme_viseme("☃"), phoneme_viseme("?"))  # unknown -> neutral
    # /a p a b a m a/: the lips close at every bilabial, open on every /a/
    ev, t = [], 0.05
    for name in ["a", "p", "a", "b", "a", "m", "a"]:
        ev.append((t, name))
        t += 0.12
    track = viseme_track(_events(*ev), t + 0.1, fps=100)
    gap = mouth_opening(track)
    at = lambda s: gap[int(round((s + 0.06 - 0.04) * 100))]  # phoneme centre minus the 40 ms lead
    for k, (s, name) in enumerate(ev[:-1]):  # the last vowel runs into the final rest
        if name == "a":
            assert at(s) > 0.5, (k, at(s))
        else:
            assert at(s) < 0.15, (name, at(s))


def test_coarticulation_is_smooth_and_fps_independent():
    speech = synthesize("Peter bought a map of five big islands.", "en-us")
    track = viseme_track(speech.phonemes, speech.duration_s, fps=100)
    assert track.shape[1] == 5 and np.all((track >= 0) & (track <= 1))
    second = np.abs(np.diff(track, 2, axis=0))
    assert second.max() < 0.12  # a hard step would give 1; lip closure (sigma 15 ms) is the sharpest
    assert np.delete(second, 3, axis=1).max() < 0.05
    t25 = viseme_track(speech.phonemes, speech.duration_s, fps=25)
    assert len(t25) == int(np.ceil(speech.duration_s * 25))
    assert np.allclose(t25, track[::4][: len(t25)], atol=1e-5)


def test_identities_are_seeded_and_varied():
    assert Identity.from_seed(3) == Identity.from_seed(3)
    looks = {(i.skin, i.hair_style, i.background) for i in map(Identity.from_seed, range(20))}
    assert len(looks) == 20


@pytest.fixture(scope="module")
def mediapipe_models():
    from lsray.face import FaceDetector, FaceLandmarker

    with FaceDetector() as det, FaceLandmarker() as lm:
        yield det, lm


def test_mediapipe_detects_procedural_faces(mediapipe_models):
    det, lm = mediapipe_models
    params = np.array([0.5, 0.3, 0.0, 0.0, 0.0], np.float32)
    found = 0
    for seed in range(10):
        size = (256, 512, (480, 360))[seed % 3]
        img, geom = draw_face(Identity.from_seed(seed), params, 0.7 * seed, size)
        boxes = det.detect(img)
        if boxes and lm.landmarks(img, boxes[0]) is not None:
            x0, y0, x1, y1 = geom.face_box
            cx, cy = boxes[0].centre
            assert x0 < cx < x1 and y0 < cy < y1  # it found *our* face
            found += 1
    assert found == 10


def test_mediapipe_sees_the_astronaut_mouth_open(mediapipe_models):
    from lsray.face import mouth_open

    det, lm = mediapipe_models
    ident = Identity.photo(1)
    openness = []
    for o in (0.0, 0.5, 0.95):
        img, _ = draw_photo(ident, np.array([o, 0.3, 0, 0, 0], np.float32), 0.4, 256)
        boxes = det.detect(img)
        assert boxes and boxes[0].score > 0.7
        mesh = lm.landmarks(img, boxes[0])
        assert mesh is not None
        openness.append(mouth_open(mesh))
    assert openness[0] < openness[1] < openness[2]


def _mouth_dark_fraction(frames, geoms):
    out = []
    for f, g in zip(frames, geoms):
        x0, y0, x1, y1 = g.mouth_box
        crop = f[y0:y1, x0:x1].astype(np.float32).mean(-1)
        out.append(float((crop < 60).mean()))
    return np.array(out)


@pytest.mark.parametrize("kind", ["cartoon", "photo"])
def test_oracle_mouth_follows_the_audio_envelope(kind):
    speech = synthesize("Mama bought a big map of Panama.", "en-us")
    ident = Identity.from_seed(5) if kind == "cartoon" else Identity.photo(5)
    frames = list(render_talking_head(ident, speech, fps=25, size=256))
    geoms = talking_head_geometry(ident, len(frames), 25, 256)
    assert len(frames) == int(np.ceil(speech.duration_s * 25)) and frames[0].shape == (256, 256, 3)
    opening = _mouth_dark_fraction(frames, geoms)
    hop = speech.sr // 25
    env = np.array([np.sqrt(np.mean(speech.samples[k * hop:(k + 1) * hop] ** 2)) if k * hop < len(speech.samples) else 0
                    for k in range(len(frames))])
    env = np.convolve(env, np.ones(3) / 3, mode="same")
    r = np.corrcoef(opening, env)[0, 1]
    assert r > 0.3, r


def test_rendering_is_deterministic_and_write_clip(tmp_path):
    from lsray.media import probe

    speech = synthesize("Hello there.", "en-us")
    ident = Identity.from_seed(11)
    a = list(render_talking_head(ident, speech, 25, (320, 240)))
    b = list(render_talking_head(ident, speech, 25, (320, 240)))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    path = write_clip(tmp_path / "clip.mp4", ident, speech, 25, (320, 240))
    info = probe(path)
    assert info.has_audio and (info.width, info.height) == (320, 240) and info.n_frames == len(a)


def test_splits_are_disjoint():
    train = sample_pairs(0, 40, "train")
    test = sample_pairs(0, 40, "test", photo_fraction=0.2)
    assert sample_pairs(0, 40, "train") == train
    assert not {p.identity.seed for p in train if p.identity.kind == "cartoon"} & {p.identity.seed for p in test if p.identity.kind == "cartoon"}
    assert not {p.text for p in train} & {p.text for p in test}
    assert not {p.voice for p in train} & {p.voice for p in test}
    assert all(p.identity.kind == "cartoon" for p in train)
    assert len({p.language for p in train}) > 3
