"""The names of the voice converters (upgrade 5), in one place that imports nothing heavy: the
bundle config, clip options and CLI name a backend; only :mod:`lsray.voice` builds one."""

from __future__ import annotations

from typing import Literal, get_args

#: ``off`` keeps the dub's voice; the others re-voice it as the on-screen speaker.
VoiceBackend = Literal["off", "builtin", "openvoice", "freevc", "knnvc", "xtts"]
VOICE_BACKENDS: tuple[str, ...] = get_args(VoiceBackend)
#: The converters :func:`lsray.voice.make_converter` builds (``builtin`` needs no weights).
CONVERTERS: tuple[str, ...] = tuple(b for b in VOICE_BACKENDS if b != "off")
#: Converters that load weights from a model folder (Coqui TTS, the ``voice`` extra).
COQUI_BACKENDS = frozenset(b for b in CONVERTERS if b != "builtin")
