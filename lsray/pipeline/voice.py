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


class VoiceStage:
    """ClipPlan -> ClipPlan, with ``plan.track`` replaced by the converted dub when enabled.

    ``kind`` / ``model_dir`` choose the converter (:func:`lsray.voice.make_converter`: the
    weight-free ``builtin`` WORLD converter by default); it is built on first use.
    """

    def __init__(self, kind: str = "builtin", model_dir: str | None = None, device: str | None = None) -> None:
        self.kind, self.model_dir, self.device = kind, model_dir, device
        self._converter = None

    @property
    def converter(self):
        if self._converter is None:
            from lsray.voice import make_converter

            self._converter = make_converter(self.kind, model_dir=self.model_dir, device=self.device)
        return self._converter

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

    def __call__(self, plan: ClipPlan) -> ClipPlan:
        if not plan.spec.options.voice_conversion:
            return plan
        import soundfile as sf

        from lsray.media import read_audio
        from lsray.voice import speaker_similarity

        t0 = time.perf_counter()
        ref = self.reference(plan)
        dub, sr = read_audio(plan.track, mono=True)  # (n,) at the dub's own rate
        converted = np.asarray(self.converter.convert(dub, sr, ref.samples, ref.sr), dtype=np.float32)  # (n,)
        os.makedirs(plan.work_dir, exist_ok=True)
        path = Path(plan.work_dir) / "voice.wav"
        sf.write(str(path), np.clip(converted, -1.0, 1.0), sr, subtype="PCM_16")
        plan.similarity_before = speaker_similarity(dub, sr, ref.samples, ref.sr)
        plan.speaker_similarity = speaker_similarity(converted, sr, ref.samples, ref.sr)
        plan.track = str(path)
        plan.timings["voice"] = time.perf_counter() - t0
        return plan
