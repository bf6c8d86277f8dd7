"""One way to build any voice converter by name (what catalog options and configs refer to)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsray.voice.base import VoiceConversionError, VoiceConverter
from lsray.voice_backends import CONVERTERS


def make_converter(kind: str = "builtin", model_dir: str | Path | None = None, device: Any = None,
                   **kw: Any) -> VoiceConverter:
    """Build a converter. ``builtin`` needs no weights; the Coqui kinds load ``model_dir``
    (see :mod:`lsray.voice.coqui` for each folder's files) and import ``TTS`` only now.

    Extra keywords go to the backend (e.g. ``frame_period`` for builtin, ``random_weights=True``
    / ``wavlm_config`` for tests of the Coqui ones, ``language`` for xtts).
    """
    kind_l = str(kind).lower()
    if kind_l == "builtin":
        from lsray.voice.builtin import WorldConverter

        return WorldConverter(**kw)
    if kind_l not in CONVERTERS:
        raise VoiceConversionError(f"unknown voice converter {kind!r}; choose one of {', '.join(CONVERTERS)}")
    from lsray.voice import coqui  # lazy: pulls in torch + TTS only when asked for

    cls = {"openvoice": coqui.OpenVoiceConverter, "freevc": coqui.FreeVCConverter,
           "knnvc": coqui.KnnVCConverter, "xtts": coqui.XttsConverter}[kind_l]
    return cls(model_dir, device, **kw)
