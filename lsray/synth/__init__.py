"""Synthetic inputs for tests, benchmarks and demos (speech now; talking heads later).

Only :mod:`lsray.synth.speech` lives here so far: multilingual speech with phoneme timings
from libespeak-ng, which is bundled by the ``espeakng-loader`` wheel (works offline).
"""

from __future__ import annotations

from lsray.synth.speech import PhonemeEvent, Speech, WordEvent, list_voices, synthesize

__all__ = ["PhonemeEvent", "Speech", "WordEvent", "list_voices", "synthesize"]
