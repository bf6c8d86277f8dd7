"""Oracle talking-head videos: the right mouth for a (face identity, speech) pair, frame by frame.

Frame ``k`` shows time ``k / fps``; its mouth is :func:`lsray.synth.visemes.viseme_track` of
the speech at that time, drawn on the identity (cartoon or photo) with the identity's head
motion and blinks. Everything is deterministic: the same inputs give the same pixels, and the
geometry of every frame (:class:`FrameGeometry`: face box, mouth box, face-unit transform) can
be had without drawing (:func:`talking_head_geometry`), which is what the metrics use.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from lsray.synth.face import FrameGeometry, Identity, background, draw_face, frame_geometry, frame_layout
from lsray.synth.speech import Speech
from lsray.synth.visemes import viseme_track

Size = int | tuple[int, int]


def num_frames(duration_s: float, fps: float) -> int:
    """Frames covering ``duration_s`` at ``fps``: ceil(duration * fps)."""
    return max(1, int(np.ceil(duration_s * float(fps) - 1e-9)))


def render_frames(identity: Identity, params: np.ndarray, fps: float = 25.0, size: Size = 256) -> Iterator[np.ndarray]:
    """RGB uint8 frames of ``identity`` with one mouth per row of ``params`` (frames, P).

    ``size`` is the side of a square face crop (256, 512) or ``(width, height)`` of a full frame
    with the face inside. Use this to draw *any* mouth track (e.g. the wrong speech's, for a
    "keep the source mouth" baseline).
    """
    fps = float(fps)
    if identity.kind == "photo":
        from lsray.synth.photo import draw_photo

        for k, p in enumerate(np.asarray(params, np.float32)):
            yield draw_photo(identity, p, k / fps, size)[0]
        return
    w, h, *_ = frame_layout(size, identity)
    bg = background(identity, w, h)
    for k, p in enumerate(np.asarray(params, np.float32)):
        yield draw_face(identity, p, k / fps, size, bg=bg)[0]


def render_talking_head(identity: Identity, speech: Speech, fps: float = 25.0, size: Size = 256) -> Iterator[np.ndarray]:
    """The oracle video of ``identity`` saying ``speech``: ceil(duration * fps) RGB uint8 frames."""
    return render_frames(identity, viseme_track(speech.phonemes, speech.duration_s, fps), fps, size)


def talking_head_geometry(identity: Identity, frames: int, fps: float = 25.0, size: Size = 256) -> list[FrameGeometry]:
    """The exact geometry of the first ``frames`` frames (mouth boxes for the metrics), no drawing."""
    return [frame_geometry(identity, k / float(fps), size) for k in range(frames)]


def write_speech_wav(path: str | Path, speech: Speech) -> Path:
    """``speech`` as a 16-bit mono WAV at its own rate (22,050 Hz for espeak)."""
    import soundfile as sf

    sf.write(str(path), np.asarray(speech.samples, np.float32), int(speech.sr), subtype="PCM_16")
    return Path(path)


def write_clip(
    path: str | Path, identity: Identity, speech: Speech, fps: int | Fraction = 25, size: Size = 256, *,
    params: np.ndarray | None = None, crf: int = 14, preset: str = "veryfast",
) -> Path:
    """Write the oracle MP4 (H.264 + AAC of ``speech``) of ``identity`` saying ``speech``.

    ``params`` overrides the mouth track (frames, P) - e.g. another utterance's, to make a clip
    whose mouth does *not* match its audio. The file appears atomically (VideoWriter).
    """
    from lsray.media import VideoWriter

    path = Path(path)
    if params is None:
        params = viseme_track(speech.phonemes, speech.duration_s, float(fps))
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        wav = write_speech_wav(Path(tmp) / "speech.wav", speech)
        with VideoWriter(path, fps, crf=crf, preset=preset, audio=wav, audio_duration=None) as writer:
            for frame in render_frames(identity, params, float(fps), size):
                writer.write(frame)
    return path
