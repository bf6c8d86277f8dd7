"""Stage 2, voice: re-voice the dub in the on-screen speaker's voice (upgrade 5).

Runs on the clip's plan, before any audio is encoded, so the converted track is both what the
model hears (the shard stage reads ``plan.track``) and what is muxed into the output. The
reference voice is the catalog row's ``voice_reference`` file, or 5-10 s of speech cut from the
source video's own track. Conversion keeps the dub's sample rate and exact length, so lip
timing cannot drift. Off unless a clip's options ask for it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from lsray.errors import MediaError
from lsray.pipeline.records import ClipPlan


def voice_seed(seed: int) -> int:
    """The clip's voice-conversion seed: stable across processes (unlike ``hash``) and, as the
    sampler's window seeds, independent of the name a runner gives the clip."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"voice:{seed}".encode()).digest()[:8], "little") >> 1


class VoiceStage:
    """ClipPlan -> ClipPlan, with ``plan.track`` replaced by the converted dub when the clip's
    settings name a backend (``plan.settings.voice``: off, builtin or a Coqui one).

    Converters are built on first use and kept per (backend, model folder), so a worker serving
    clips with different backends loads each once. A relative model folder is inside the bundle.
    """

    def __init__(self, bundle_dir: str | Path | None = None, device: str | None = None) -> None:
        self.bundle_dir, self.device = bundle_dir, device
        self._converters: dict[tuple[str, str | None], object] = {}

    def converter(self, kind: str, model_dir: str | None):
        key = (kind, model_dir)
        if key not in self._converters:
            from lsray.voice import make_converter

            folder = model_dir
            if folder is not None and self.bundle_dir is not None and not Path(folder).is_absolute():
                folder = str(Path(self.bundle_dir) / folder)
            self._converters[key] = make_converter(kind, model_dir=folder, device=self.device)
        return self._converters[key]

    def reference(self, plan: ClipPlan):
        from lsray.media import read_audio
        from lsray.voice import cut_reference, load_reference

        if plan.spec.voice_reference:
            return load_reference(plan.spec.voice_reference)
        try:
            audio, sr = read_audio(plan.spec.video, mono=True)
        except MediaError as exc:
            raise MediaError(plan.spec.video, "voice conversion needs the speaker's voice: the video has no "
                             "usable audio track and the row names no voice_reference") from exc
        return cut_reference(audio, sr, where=f"{plan.spec.video}'s own audio")

    def __call__(self, plan: ClipPlan, scratch: str | Path) -> ClipPlan:
        """Convert into ``scratch``/voice.wav (a local folder the caller owns and publishes from)."""
        settings = plan.settings
        if settings.voice == "off":
            return plan
        import soundfile as sf
        import torch

        from lsray.device import single_thread
        from lsray.media import read_audio
        from lsray.voice import speaker_similarity

        t0 = time.perf_counter()
        converter = self.converter(settings.voice, settings.voice_model)
        ref = self.reference(plan)
        dub, sr = read_audio(plan.track, mono=True)  # (n,) at the dub's own rate
        # Seeded per clip and single-threaded: the same clip converts to the same samples in
        # every runner (Coqui's decoders draw noise; float sums depend on the thread count).
        with torch.random.fork_rng(devices=[]), single_thread():
            torch.manual_seed(voice_seed(settings.seed))
            converted = np.asarray(converter.convert(dub, sr, ref.samples, ref.sr), dtype=np.float32)  # (n,)
        os.makedirs(scratch, exist_ok=True)
        path = Path(scratch) / "voice.wav"
        sf.write(str(path), np.clip(converted, -1.0, 1.0), sr, subtype="PCM_16")
        plan.similarity_before = speaker_similarity(dub, sr, ref.samples, ref.sr)
        plan.speaker_similarity = speaker_similarity(converted, sr, ref.samples, ref.sr)
        plan.track = str(path)
        plan.timings["voice"] = time.perf_counter() - t0
        return plan
