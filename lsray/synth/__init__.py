"""Synthetic inputs for tests, benchmarks and demos: a talking-head world with known ground truth.

- :mod:`lsray.synth.speech`: multilingual speech with phoneme timings from libespeak-ng (bundled
  by the ``espeakng-loader`` wheel, works offline).
- :mod:`lsray.synth.visemes`: phonemes -> mouth parameters over time, with coarticulation.
- :mod:`lsray.synth.face` / :mod:`lsray.synth.photo`: procedural cartoon identities and the
  astronaut photo, drawn with any mouth; exact per-frame geometry.
- :mod:`lsray.synth.render`: the oracle video of an (identity, speech) pair, and MP4 clips.
- :mod:`lsray.synth.world`: held-out splits of identities, sentences and voices.
"""

from __future__ import annotations

from lsray.synth.face import FrameGeometry, Identity, draw_face, frame_geometry
from lsray.synth.render import (
    num_frames,
    render_frames,
    render_talking_head,
    talking_head_geometry,
    write_clip,
    write_speech_wav,
)
from lsray.synth.speech import PhonemeEvent, Speech, WordEvent, list_voices, synthesize
from lsray.synth.visemes import VISEME_PARAMS, mouth_opening, phoneme_viseme, viseme_curve, viseme_track
from lsray.synth.world import Pair, sample_pairs, sentences, split_of, voices

__all__ = [
    "FrameGeometry",
    "Identity",
    "Pair",
    "PhonemeEvent",
    "Speech",
    "VISEME_PARAMS",
    "WordEvent",
    "draw_face",
    "frame_geometry",
    "list_voices",
    "mouth_opening",
    "num_frames",
    "phoneme_viseme",
    "render_frames",
    "render_talking_head",
    "sample_pairs",
    "sentences",
    "split_of",
    "synthesize",
    "talking_head_geometry",
    "viseme_curve",
    "viseme_track",
    "voices",
    "write_clip",
    "write_speech_wav",
]
