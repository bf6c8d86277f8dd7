"""Voice-adaptive conversion (upgrade 5): dubbed speech re-voiced as the on-screen speaker.

- :mod:`~lsray.voice.reference`: cut 5-10 s of the speaker's clean speech from the video's track.
- :mod:`~lsray.voice.base`: the :class:`VoiceConverter` protocol and shared signal helpers.
- :mod:`~lsray.voice.builtin`: the weight-free WORLD converter (always available, the default).
- :mod:`~lsray.voice.coqui`: OpenVoice / FreeVC / kNN-VC / XTTS from local weights (``voice`` extra).
- :mod:`~lsray.voice.similarity`: resemblyzer speaker similarity, the yardstick.
- :mod:`~lsray.voice.factory`: :func:`make_converter` by name.

Nothing here imports Ray; ``TTS`` and ``torch`` are imported only by the Coqui backends.
"""

from __future__ import annotations

from lsray.voice.base import VoiceConversionError, VoiceConverter, VoiceExtraMissingError, fit_length, resample
from lsray.voice.builtin import SpeakerStats, WorldConverter, speaker_stats
from lsray.voice.factory import make_converter
from lsray.voice.reference import NotEnoughSpeechError, ReferenceClip, cut_reference, load_reference
from lsray.voice.similarity import speaker_embedding, speaker_similarity

__all__ = [
    "NotEnoughSpeechError",
    "ReferenceClip",
    "SpeakerStats",
    "VoiceConversionError",
    "VoiceConverter",
    "VoiceExtraMissingError",
    "WorldConverter",
    "cut_reference",
    "fit_length",
    "load_reference",
    "make_converter",
    "resample",
    "speaker_embedding",
    "speaker_similarity",
    "speaker_stats",
]
