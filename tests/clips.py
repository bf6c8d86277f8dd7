"""Small synthetic media files for the media tests, generated with the bundled ffmpeg.

Kept tiny (64x48, about a second) so the whole media suite stays well under a minute on two
shared CPU cores.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def make_clip(
    path: str | Path,
    *,
    fps: str = "25",
    duration: float = 1.0,
    size: tuple[int, int] = (64, 48),
    audio_rate: int | None = 44100,
    audio_channels: int = 1,
    pix_fmt: str = "yuv420p",
) -> Path:
    """An H.264 MP4 test pattern at ``fps`` (e.g. "30000/1001"), with a sine track unless audio_rate is None."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    args = ["-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={fps}:duration={duration}"]
    if audio_rate is not None:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={audio_rate}:duration={duration}"]
        args += ["-ac", str(audio_channels), "-c:a", "aac"]
    _ffmpeg(*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt, str(path))
    return path


def make_audio(
    path: str | Path, *, duration: float = 1.0, sample_rate: int = 48000, channels: int = 2, frequency: int = 440
) -> Path:
    """A sine tone in any container ffmpeg picks from the extension (.wav, .m4a, .mp3, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate={sample_rate}:duration={duration}",
        "-ac", str(channels), str(path),
    )
    return path


def make_empty_wav(path: str | Path, *, sample_rate: int = 16000) -> Path:
    """A valid WAV header with zero samples (zero-length audio)."""
    import wave

    path = Path(path)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(b"")
    return path


def make_vfr_clip(path: str | Path) -> Path:
    """A variable-frame-rate MP4: 20 frames at 30 fps, then frames 1/12 s apart (avg ~16 fps)."""
    path = Path(path)
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=64x48:rate=30:duration=2",
        "-vf", "setpts='if(lt(N,20),N/(30*TB),(20/30+(N-20)/12)/TB)'",
        "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    )
    return path


def make_tiny_clip(path: str | Path) -> Path:
    """A 1x1-pixel video (yuv444p H.264: yuv420p cannot hold a 1x1 frame)."""
    return make_clip(path, size=(1, 1), audio_rate=None, pix_fmt="yuv444p")


def truncate_copy(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (a cut-short download)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def level_frames(n: int, size: tuple[int, int] = (64, 48), step: int = 8) -> list[np.ndarray]:
    """``n`` flat frames whose grey level encodes the index (``i * step``), to check order after a round trip."""
    w, h = size
    return [np.full((h, w, 3), (i * step) % 256, dtype=np.uint8) for i in range(n)]


def frame_level(rgb: np.ndarray, step: int = 8) -> int:
    """The index :func:`level_frames` encoded in a (lossily) decoded frame."""
    return int(round(float(rgb.mean()) / step))


def rate(text: str) -> Fraction:
    return Fraction(text)


def make_rotated_clip(path: str | Path, *, degrees: int = 90) -> Path:
    """A 64x48 clip tagged with a display rotation (as phones record portrait video)."""
    path = Path(path)
    plain = make_clip(path.with_name(f"unrotated-{path.name}"), fps="25", duration=0.4, audio_rate=None)
    _ffmpeg("-display_rotation", str(degrees), "-i", str(plain), "-c", "copy", str(path))
    return path
