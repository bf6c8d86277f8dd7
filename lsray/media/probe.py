"""What a media file holds: streams, duration, frame rate, frame size, audio format.

There is no ffprobe in this environment, so :func:`probe` parses the stream summary that
``ffmpeg -i FILE`` prints on stderr. That summary is stable across ffmpeg versions for the
fields used here (``Duration:``, ``Stream #0:N: Video:``/``Audio:``, ``fps``/``tbr``, ``Hz``).

Frame rate policy (the pipeline works on a constant frame rate, so every video gets one):

* ffmpeg prints the average rate rounded to 2 decimals (``29.97 fps``). A printed rate within
  0.05 % of a standard rate becomes that rate *exactly* (``29.97`` -> ``30000/1001``,
  ``23.98`` -> ``24000/1001``, ``59.94`` -> ``60000/1001``); 0.05 % separates 24 from 23.976.
* Variable frame rate (the average ``fps`` differs from ffmpeg's base rate ``tbr`` by more
  than 0.5 %, as for phone recordings) becomes the standard rate nearest to the *average*
  rate, so the constant-rate stream keeps roughly the same number of frames (few duplicated
  or dropped) and exactly the same duration.
* Any other constant rate (e.g. 15 or 12.5) is kept as the rational ffmpeg printed.

VFR files whose container declares a constant rate (some WebM) cannot be told apart without
reading every timestamp; they are treated as constant rate.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from lsray.errors import MediaError
from lsray.media.color import VideoColor
from lsray.media.ffmpeg_process import ffmpeg_exe, media_path, run

STANDARD_FRAME_RATES: tuple[Fraction, ...] = (
    Fraction(24000, 1001),
    Fraction(24),
    Fraction(25),
    Fraction(30000, 1001),
    Fraction(30),
    Fraction(48),
    Fraction(50),
    Fraction(60000, 1001),
    Fraction(60),
)
"""Rates a printed or variable rate snaps to (23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60)."""

MIN_FRAME_SIDE = 2
"""Smallest width/height accepted: yuv420p (what libx264 writes) needs at least 2x2 pixels."""

_EXACT_TOLERANCE = 5e-4  # relative; 24 vs 23.976 differ by 1e-3
_VFR_TOLERANCE = 5e-3  # relative gap between average fps and tbr that signals VFR

_CHANNEL_LAYOUTS = {
    "mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "3.0(back)": 3, "quad": 4, "quad(side)": 4,
    "4.0": 4, "4.1": 5, "5.0": 5, "5.0(side)": 5, "5.1": 6, "5.1(side)": 6, "6.0": 6,
    "6.1": 7, "7.0": 7, "7.1": 8, "7.1(wide)": 8, "downmix": 2,
}


@dataclass(frozen=True)
class MediaInfo:
    """The facts about one media file that the pipeline needs.

    ``fps`` is the constant rate frames are decoded at (see the module docstring for how it is
    chosen); ``n_frames`` is an estimate (``round(duration * fps)``), the exact count is what
    :func:`lsray.media.iter_frames` yields. ``width``/``height`` are the displayed size (after
    the rotation that ffmpeg applies on decode).
    """

    path: str
    container: str
    duration: float | None
    start_time: float
    has_video: bool
    has_audio: bool
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: Fraction | None = None
    fps_text: str | None = None
    variable_frame_rate: bool = False
    rotation: int = 0
    n_frames: int | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    color: VideoColor = VideoColor()  # the video's colour tags (what ffmpeg decodes it to RGB with)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of decoded frames, or None without a video stream."""
        return None if self.width is None or self.height is None else (self.width, self.height)


def _number(text: str) -> float:
    """Parse ffmpeg's compact numbers (``29.97``, ``90k``)."""
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def exact_frame_rate(text: str) -> Fraction:
    """The exact rate behind ffmpeg's printed one: a standard rate if within 0.05 %, else as printed."""
    value = _number(text)
    for rate in STANDARD_FRAME_RATES:
        if abs(value - float(rate)) <= _EXACT_TOLERANCE * float(rate):
            return rate
    if text.endswith("k"):
        return Fraction(text[:-1]) * 1000
    return Fraction(text).limit_denominator(1001)


def nearest_standard_frame_rate(value: float) -> Fraction:
    """The standard rate closest to ``value`` (used for variable frame rate video)."""
    return min(STANDARD_FRAME_RATES, key=lambda rate: abs(float(rate) - value))


def _looks_like_text(path: str | Path) -> bool:
    """True if the file's first KiB is printable UTF-8 text (a media file never is)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in decoded)


def _problem_from_stderr(path: str | Path, text: str) -> str:
    """Turn ffmpeg's failure to open a file into a user-facing problem statement."""
    lowered = text.lower()
    if _looks_like_text(path):
        return "not a video (a text file)"
    if "moov atom not found" in lowered:
        return "corrupt or truncated MP4 (moov atom not found: the file was cut short or never finished)"
    if "invalid data found" in lowered:
        return "not a media file ffmpeg can read (invalid data; is it a video?)"
    if "permission denied" in lowered:
        return "permission denied"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"unreadable media ({lines[-1] if lines else 'ffmpeg failed'})"


def probe(path: str | Path) -> MediaInfo:
    """Read the stream summary of any media file (video, audio-only, ...).

    Raises :class:`MediaError` if the file is missing, empty, or not something ffmpeg can open.
    Does not require a video stream; see :func:`probe_video` for that.
    """
    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.isdir(path):
        raise MediaError(path, "is a directory, not a media file")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "file is empty (0 bytes)")

    _, _, err = run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", media_path(path)])
    header = re.search(r"^Input #0, (.+?), from ", err, re.MULTILINE)
    if header is None:
        raise MediaError(path, _problem_from_stderr(path, err))
    container = header.group(1)
    if container in ("tty",):
        raise MediaError(path, "not a video (a text file)")

    duration = None
    start_time = 0.0
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", err)
    if m:
        duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    m = re.search(r"start: (-?\d+(?:\.\d+)?)", err)
    if m:
        start_time = float(m.group(1))

    video: dict = {}
    audio: dict = {}
    lines = err.splitlines()
    for i, line in enumerate(lines):
        sm = re.match(r"\s*Stream #0:\d+.*?: (Video|Audio): (.*)$", line)
        if not sm:
            continue
        kind, desc = sm.groups()
        if kind == "Video" and not video and "(attached pic)" not in desc:
            video["codec"] = desc.split(",")[0].split(" ")[0]
            video["color"] = VideoColor.parse(desc)
            size = re.search(r", (\d+)x(\d+)[ ,\[]|, (\d+)x(\d+)$", desc)
            if size:
                groups = [g for g in size.groups() if g is not None]
                video["width"], video["height"] = int(groups[0]), int(groups[1])
            fps = re.search(r"([\d.]+k?) fps", desc)
            tbr = re.search(r"([\d.]+k?) tbr", desc)
            video["fps"] = fps.group(1) if fps else None
            video["tbr"] = tbr.group(1) if tbr else None
            # Side data (rotation) follows the stream line, indented deeper.
            for extra in lines[i + 1 : i + 12]:
                if re.match(r"\s*Stream #", extra):
                    break
                rot = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", extra)
                if rot:
                    video["rotation"] = int(round(float(rot.group(1)))) % 360
        elif kind == "Audio" and not audio:
            audio["codec"] = desc.split(",")[0].split(" ")[0]
            rate = re.search(r"(\d+) Hz", desc)
            audio["sample_rate"] = int(rate.group(1)) if rate else None
            parts = [p.strip() for p in desc.split(",")]
            channels = None
            for part in parts:
                if part in _CHANNEL_LAYOUTS:
                    channels = _CHANNEL_LAYOUTS[part]
                    break
                cm = re.match(r"(\d+) channels", part)
                if cm:
                    channels = int(cm.group(1))
                    break
            audio["channels"] = channels

    fps_value: Fraction | None = None
    vfr = False
    width, height = video.get("width"), video.get("height")
    rotation = video.get("rotation", 0)
    if video:
        fps_text, tbr_text = video.get("fps"), video.get("tbr")
        if fps_text and tbr_text:
            avg, base = _number(fps_text), _number(tbr_text)
            vfr = abs(avg - base) > _VFR_TOLERANCE * max(avg, base)
        chosen = fps_text or tbr_text
        if chosen:
            fps_value = nearest_standard_frame_rate(_number(chosen)) if vfr else exact_frame_rate(chosen)
        if rotation in (90, 270) and width is not None and height is not None:
            width, height = height, width  # ffmpeg autorotates on decode

    n_frames = None
    if fps_value is not None and duration is not None:
        n_frames = int(round(duration * fps_value))

    return MediaInfo(
        path=str(path),
        container=container,
        duration=duration,
        start_time=start_time,
        has_video=bool(video),
        has_audio=bool(audio),
        video_codec=video.get("codec"),
        width=width,
        height=height,
        fps=fps_value,
        fps_text=video.get("fps") or video.get("tbr"),
        variable_frame_rate=vfr,
        rotation=rotation,
        n_frames=n_frames,
        audio_codec=audio.get("codec"),
        audio_sample_rate=audio.get("sample_rate"),
        audio_channels=audio.get("channels"),
        color=video.get("color", VideoColor()),
    )


_STILL_IMAGE_CONTAINERS = re.compile(r"^(image2|.*_pipe)$")


def probe_video(path: str | Path) -> MediaInfo:
    """:func:`probe`, then require a decodable video: a video stream, a frame rate, >= 2x2 frames.

    Raises :class:`MediaError` naming the file for audio-only files, still images and frames
    too small to encode.
    """
    info = probe(path)
    if not info.has_video:
        raise MediaError(path, "no video stream (audio only)" if info.has_audio else "no video stream")
    if _STILL_IMAGE_CONTAINERS.match(info.container):
        raise MediaError(path, f"not a video (a still image, {info.container})")
    if info.width is None or info.height is None:
        raise MediaError(path, "video stream has no frame size")
    if info.width < MIN_FRAME_SIDE or info.height < MIN_FRAME_SIDE:
        raise MediaError(path, f"frame too small ({info.width}x{info.height}; at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE} needed)")
    if info.fps is None or info.fps <= 0:
        raise MediaError(path, "video stream has no frame rate")
    if info.duration is not None and info.duration <= 0:
        raise MediaError(path, "video has zero duration")
    return info


def probe_audio(path: str | Path) -> MediaInfo:
    """:func:`probe`, then require a non-empty audio stream (for the dubbed track)."""
    info = probe(path)
    if not info.has_audio:
        raise MediaError(path, "no audio stream")
    if info.duration is None or info.duration <= 0:
        # No usable duration in the header (e.g. a WAV with zero samples, some raw streams):
        # decode the first 50 ms to tell "empty" from "length not declared".
        _, out, _ = run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", media_path(path),
             "-map", "0:a:0", "-t", "0.05", "-f", "s16le", "-"]
        )
        if not out:
            raise MediaError(path, "audio is empty (zero length)")
    return info
