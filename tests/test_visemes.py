"""Viseme-level scores (issue 21, item 4): the mouth measurement follows the drawn lip gap, the
oracle scores ~1 on itself (sharp, blurred or tinted), a mouth that stays open misses the
bilabial closures, and evaluate_clip / the demo report carry the scores."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lsray.eval import ClipMetrics, aggregate, evaluate_clip
from lsray.eval.visemes import (
    VisemeFrames,
    MouthPalette,
    measure_mouths,
    pooled,
    viseme_scores,
)
from lsray.synth import Identity, render_frames, synthesize, talking_head_geometry, viseme_track
from lsray.synth.face import mouth_shapes
from lsray.synth.visemes import CLOSURE, OPEN


@pytest.fixture(scope="module")
def speech():
    return synthesize("Mama bought a big map, five vivid fish.", "en-us")


@pytest.fixture(scope="module", params=["cartoon", "photo"])
def clip(request, speech):
    """(identity, track (N, P), oracle frames (N, 256, 256, 3), mouth boxes (N, 4))."""
    ident = Identity.from_seed(4) if request.param == "cartoon" else Identity.photo(3)
    track = viseme_track(speech.phonemes, speech.duration_s, 25)
    frames = np.stack(list(render_frames(ident, track, 25, 256)))
    boxes = np.array([g.mouth_box for g in talking_head_geometry(ident, len(frames), 25, 256)])
    return ident, track, frames, boxes


def test_frame_classes_from_the_track(speech):
    v = VisemeFrames.from_phonemes(speech.phonemes, speech.duration_s, 25)
    track = viseme_track(speech.phonemes, speech.duration_s, 25)
    assert len(v) == len(track)
    assert v.bilabial.sum() >= 3 and v.labiodental.sum() >= 3 and v.open_vowel.sum() >= 5  # m m b b m p / f v v f / a ɔ aɪ
    assert not (v.bilabial & v.labiodental).any() and not (v.open_vowel & (v.bilabial | v.labiodental)).any()
    assert (v.closed[v.bilabial]).all()  # a bilabial frame is one where the oracle's lips are shut
    assert (track[v.open_vowel, OPEN] >= 0.5).all() and (track[v.bilabial, CLOSURE] >= 0.5).all()


def test_measured_opening_follows_the_drawn_gap(clip):
    ident, track, frames, boxes = clip
    palette = MouthPalette.from_oracle(frames, boxes, track)
    m = measure_mouths(frames, boxes, palette)
    gap = np.array([float(mouth_shapes(p, ident.mouth_width)["gap"]) for p in track])
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert np.corrcoef(rank(gap), rank(m.opening))[0, 1] > 0.95  # monotone in the gap
    closed, open_ = m.opening[gap < 0.01], m.opening[gap > 0.05]
    assert closed.max() < open_.min()  # shut and open mouths never overlap
    # in box heights (0.68 face units): a sharp cartoon opens 1 / 0.68 per unit of gap
    assert 0.7 < np.polyfit(gap, m.opening, 1)[0] < 2.0


def test_the_oracle_scores_one_on_itself_sharp_blurred_or_tinted(clip):
    ident, track, frames, boxes = clip
    s = viseme_scores(frames, frames, boxes, track)
    assert s.bilabial_hit == 1.0 and s.open_vowel == pytest.approx(1.0)
    assert s.bilabial_frames >= 3 and s.open_vowel_frames >= 5
    if ident.kind == "cartoon":  # the photo draws no bite (her teeth always show): not scored there
        assert s.labiodental_hit == 1.0 and s.labiodental_frames >= 3
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in frames])  # a small VAE's softness
    b = viseme_scores(blurred, frames, boxes, track)
    assert b.bilabial_hit == 1.0 and 0.85 < b.open_vowel < 1.15
    if ident.kind == "cartoon":
        assert b.labiodental_hit >= 0.8
    tinted = np.clip(frames.astype(int) + np.array([12, -8, 5]), 0, 255).astype(np.uint8)  # a colour shift
    t = viseme_scores(tinted, frames, boxes, track)
    assert t.bilabial_hit == 1.0 and t.open_vowel == pytest.approx(1.0, abs=0.05)


def test_a_mouth_that_stays_open_misses_the_closures(clip, speech):
    ident, track, frames, boxes = clip
    held = track.copy()
    held[:, OPEN], held[:, CLOSURE] = np.maximum(held[:, OPEN], 0.3), 0.0  # never shuts
    s = viseme_scores(np.stack(list(render_frames(ident, held, 25, 256))), frames, boxes, track)
    assert s.bilabial_hit <= 0.25 and not s.labiodental_hit
    # "keep the source mouth": another sentence's mouth on the same face
    other = synthesize("Otto has a large red car.", "en-us")
    src = viseme_track(other.phonemes, max(other.duration_s, len(track) / 25), 25)[: len(track)]
    k = viseme_scores(np.stack(list(render_frames(ident, src, 25, 256))), frames, boxes, track)
    assert k.bilabial_hit <= 0.5 and k.open_vowel < 0.9


def test_evaluate_clip_gives_the_scores_and_none_without_a_track(clip):
    ident, track, frames, boxes = clip
    m = evaluate_clip(frames, frames, name="o", mouth_boxes=list(map(tuple, boxes)), visemes=track)
    assert m.bilabial_hit == 1.0 and m.open_vowel == pytest.approx(1.0) and m.bilabial_frames >= 3
    bare = evaluate_clip(frames, frames, mouth_boxes=list(map(tuple, boxes)))
    assert bare.bilabial_hit is None and bare.labiodental_hit is None and bare.open_vowel is None
    # over several clips, hit rates pool their frames (1 of 1 and 0 of 3 is 1 of 4, not 0.5)
    a = ClipMetrics(frames=10, bilabial_hit=1.0, bilabial_frames=1)
    b = ClipMetrics(frames=10, bilabial_hit=0.0, bilabial_frames=3)
    assert aggregate([a, b, ClipMetrics(frames=5)])["bilabial_hit"] == pytest.approx(0.25)
    assert aggregate([a, b])["bilabial_frames"] == 4
    assert pooled([{"open_vowel": None, "open_vowel_frames": 0}], "open_vowel") is None


def test_demo_clips_carry_their_track_and_the_report_shows_the_scores(tmp_path):
    from lsray.demo.catalog import build_demo_catalog
    from lsray.demo.report import score_clips, summarise, write_report

    _, clips = build_demo_catalog(tmp_path / "inputs", clips=1, seed=2, photo=False)
    c = clips[0]
    assert c.visemes is not None and c.visemes.shape == (c.frames, 5)
    # the oracle itself as the "dubbed" output: every class it has is hit
    rows = score_clips(clips, {c.clip_id: ("done", c.oracle, None, 0.1)})
    summary = summarise(rows)
    assert summary["open_vowel"] == pytest.approx(1.0, abs=0.05) and summary["open_vowel_oracle"] == pytest.approx(1.0)
    assert summary["open_vowel_frames"] > 0 and summary["open_vowel_keep_source"] is not None
    assert summary["bilabial_hit"] in (None, 1.0)
    page = write_report(tmp_path, rows, summary, "bundle").read_text()
    assert "bilabial hit (keep source)" in page and "open vowels" in page
