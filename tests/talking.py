"""Talking-head test clips: skimage's astronaut (a real face mediapipe finds) with head motion,
and speech-like dubbed tracks. Small and fast, written with lsray's own media writer."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from faces import blank, portrait
from lsray.media import VideoWriter


def face_frame(i: int, size: tuple[int, int] = (320, 240), scale: float = 1.0) -> np.ndarray:
    """Frame ``i``: the astronaut's portrait drifting a few pixels on a grey background."""
    w, h = size
    canvas = np.full((h, w, 3), 96, np.uint8)
    p = portrait()  # 240 x 220
    ph, pw = int(min(h, 240) * scale), int(min(h, 240) * scale * 220 / 240)
    p = cv2.resize(p, (pw, ph), interpolation=cv2.INTER_AREA)
    dx = int(round(4 * np.sin(2 * np.pi * i / 40)))
    dy = int(round(2 * np.cos(2 * np.pi * i / 40)))
    x0 = max(0, min(w - pw, (w - pw) // 2 + dx))
    y0 = max(0, min(h - ph, (h - ph) // 2 + dy))
    canvas[y0 : y0 + ph, x0 : x0 + pw] = p
    return canvas


def write_face_clip(
    path: str | Path, *, fps: Fraction | int = 25, frames: int = 40, size: tuple[int, int] = (320, 240),
    blank_frames: set[int] | None = None, audio: str | Path | None = None, crf: int = 12,
) -> Path:
    """A talking-head clip (frames listed in ``blank_frames`` have no face)."""
    blank_frames = blank_frames or set()
    with VideoWriter(path, fps, crf=crf, preset="ultrafast", audio=audio) as writer:
        for i in range(frames):
            writer.write(blank(size[1], size[0]) if i in blank_frames else face_frame(i, size))
    return Path(path)


def write_blank_clip(path: str | Path, *, fps: Fraction | int = 25, frames: int = 20, size: tuple[int, int] = (320, 240)) -> Path:
    with VideoWriter(path, fps, crf=12, preset="ultrafast") as writer:
        for i in range(frames):
            frame = blank(size[1], size[0])
            frame[:, : (i * 7) % size[0]] = 120  # some motion so frames differ
            writer.write(frame)
    return Path(path)


def write_dub(path: str | Path, seconds: float, sample_rate: int = 44100, pause: tuple[float, float] | None = None) -> Path:
    """A speech-like track: voiced harmonics under a ~4 Hz syllable envelope, optional silence."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    x = 0.2 * voice * envelope
    if pause is not None:
        x[int(pause[0] * sample_rate) : int(pause[1] * sample_rate)] = 0.0
    sf.write(str(path), x.astype(np.float32), sample_rate)
    return Path(path)
