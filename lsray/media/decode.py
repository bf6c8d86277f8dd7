"""Decoding: video as a stream of constant-rate RGB frames, audio as float32 arrays.

Video is never held whole in memory: :func:`iter_frames` reads one raw frame at a time from an
ffmpeg pipe, so memory is one frame (plus the pipe buffer) whatever the video's length.

Frame timing: frames come out at the constant rate chosen by :func:`lsray.media.probe`
(``info.fps``), produced by ffmpeg's ``fps`` filter - the same duplicate/drop rule as
``-fps_mode cfr -r RATE``, but expressible inside a filter graph so that a segment
(``start``/``limit``) is cut on the *same* grid as a full decode. Frame ``i`` has timestamp
``i / fps`` seconds from the start of the file; segment workers get global indices.

Corrupt input policy: a file ffmpeg cannot open fails at probe time; a file that opens but
breaks part-way (e.g. a faststart MP4 cut short) raises :class:`MediaError` ("corrupt or
truncated") when the broken part is reached - frames already yielded were real frames, but the
caller must treat the clip as failed rather than silently dubbing half a video.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import ffmpeg
import numpy as np

from lsray.errors import MediaError
from lsray.media import ffmpeg_process
from lsray.media.ffmpeg_process import QUIET_ARGS, compile_args, last_line, media_path, run, stop
from lsray.media.probe import MediaInfo, probe_audio, probe_video

ANALYSIS_SAMPLE_RATE = 16_000
"""Rate of the audio the models analyse (Whisper and Wav2Vec2 both take 16 kHz mono)."""

_SEEK_MARGIN_S = 1.0  # decode this much before a segment so the fps filter sees the frame on screen at its start

# ffmpeg error lines (with -loglevel error) that mean the *input* is damaged.
_CORRUPTION_MARKERS = (
    "partial file",
    "invalid data found",
    "error splitting the input",
    "invalid nal unit",
    "decode error rate",
    "corrupt",
    "truncat",
    "error while decoding",
    "decoding error",
)


class Frame(NamedTuple):
    """One decoded frame: its index on the constant-rate grid, time in seconds, RGB pixels."""

    index: int
    time: float
    rgb: np.ndarray  # (H, W, 3) uint8, writable, owned by the caller; (3H/2, W) I420 planes if asked for yuv420p


def _corruption(stderr: str) -> str | None:
    """The first stderr line that says the input is damaged, if any."""
    for line in stderr.splitlines():
        if any(marker in line.lower() for marker in _CORRUPTION_MARKERS):
            return line.strip()
    return None


def scaled_size(info: MediaInfo, height: int | None) -> tuple[int, int]:
    """(width, height) of ``info``'s frames decoded at most ``height`` tall (even width)."""
    assert info.width is not None and info.height is not None
    if height is None or height >= info.height:
        return info.width, info.height
    return max(2, 2 * round(info.width * height / info.height / 2)), height


def iter_frames(
    path: str | Path,
    *,
    start: int = 0,
    limit: int | None = None,
    fps: Fraction | int | str | None = None,
    info: MediaInfo | None = None,
    height: int | None = None,
    crop: tuple[int, int, int, int] | None = None,
    pix_fmt: str = "rgb24",
) -> Iterator[Frame]:
    """Yield frames ``start, start+1, ...`` (at most ``limit``) of ``path`` as RGB uint8 arrays.

    Args:
        path: any video ffmpeg can read.
        start: first frame index on the constant-rate grid (segment workers pass their offset).
        limit: maximum number of frames; None means to the end.
        fps: output rate; defaults to ``probe(path).fps`` (exact rational, VFR snapped to a
            standard rate). Pass it to decode at a different rate.
        info: an earlier :func:`probe_video` result, to skip probing again.
        height: scale frames down to this height (width keeps the aspect ratio, rounded to
            even; :func:`scaled_size`); None or a height >= the video's keeps the source size.
        crop: ``(x, y, width, height)`` in source pixels, all even: yield only that region. It is
            cut before the RGB conversion, which (with the pipe) is most of a 1080p decode's
            cost; its pixels equal the same region of the full frame. Not with ``height``.
        pix_fmt: ``"rgb24"`` or ``"yuv420p"``: the frame's Y, U and V planes one after the other
            in a (3H/2, W) array (:func:`lsray.media.yuv_planes` views them), no RGB conversion
            at all; the frame's width and height must be even.

    Each frame is a fresh array (not a reused buffer), so callers may keep or modify it; memory
    is bounded by what the caller keeps. Closing the generator early stops ffmpeg.

    Raises:
        MediaError: missing/unreadable/non-video input (before the first frame), or damage
            found while decoding (when reached).
    """
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    info = info or probe_video(path)
    rate = Fraction(fps) if fps is not None else info.fps
    assert rate is not None and info.width is not None and info.height is not None
    if limit == 0:
        return
    if crop is not None:
        if height is not None:
            raise ValueError("iter_frames: crop and height are exclusive")
        x, y, width, height = crop
        inside = min(x, y) >= 0 and width > 0 and height > 0 and x + width <= info.width and y + height <= info.height
        if not inside or any(v % 2 for v in crop):  # even: the 4:2:0 chroma grid stays aligned
            raise ValueError(f"crop {crop} is not an even region inside the {info.width}x{info.height} frame")
    else:
        width, height = scaled_size(info, height)
    if pix_fmt not in ("rgb24", "yuv420p"):
        raise ValueError(f"pix_fmt must be rgb24 or yuv420p, got {pix_fmt!r}")
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        raise ValueError(f"yuv420p frames need an even size, got {width}x{height}")
    shape = (height, width, 3) if pix_fmt == "rgb24" else (height * 3 // 2, width)
    frame_bytes = width * height * 3 // (1 if pix_fmt == "rgb24" else 2)

    # -copyts -start_at_zero keeps timestamps relative to the file's start even after a seek,
    # so fps=...:start_time=0 lays the output grid at i/rate for every segment alike, and trim
    # (in the fps filter's 1/rate time base) cuts exactly frames [start, start+limit).
    seek = max(0.0, float(start / rate) - max(_SEEK_MARGIN_S, float(2 / rate)))
    input_kwargs = {"ss": f"{seek:.6f}"} if seek > 0 else {}
    stream = ffmpeg.input(media_path(path), **input_kwargs).video.filter("fps", fps=str(rate), start_time=0)
    trim = {"start_pts": start} if start else {}
    if limit is not None:
        trim["end_pts"] = start + limit
    if trim:
        stream = stream.filter("trim", **trim)
    if crop is not None:
        stream = stream.filter("crop", width, height, crop[0], crop[1], exact=1)
    elif (width, height) != (info.width, info.height):
        stream = stream.filter("scale", width, height, flags="area")
    out_kwargs = {"format": "rawvideo", "pix_fmt": pix_fmt, "fps_mode": "passthrough"}
    if limit is not None:
        out_kwargs["frames:v"] = limit
    args = compile_args(stream.output("pipe:", **out_kwargs), (*QUIET_ARGS, "-copyts", "-start_at_zero"))

    proc, stderr = ffmpeg_process.start(args, stdout=True)
    try:
        index = start
        while True:
            buf = bytearray(frame_bytes)
            view = memoryview(buf)
            got = 0
            while got < frame_bytes:
                n = proc.stdout.readinto(view[got:])
                if not n:
                    break
                got += n
            if got == 0:
                break
            if got < frame_bytes:
                raise MediaError(path, f"corrupt or truncated video (incomplete frame {index})")
            pixels = np.frombuffer(buf, dtype=np.uint8).reshape(shape)
            yield Frame(index, float(index / rate), pixels)
            index += 1
        code = proc.wait()
        err = stderr.text()
        damage = _corruption(err)
        if damage is not None:
            raise MediaError(path, f"corrupt or truncated video (decoding stopped at frame {index}: {damage})")
        if code != 0:
            raise MediaError(path, f"video decoding failed ({last_line(err)})")
        if index == start and start == 0:
            raise MediaError(path, "video has no decodable frames")
    finally:
        stop(proc)


def read_audio(
    path: str | Path,
    *,
    sample_rate: int | None = None,
    mono: bool = False,
    info: MediaInfo | None = None,
) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any ffmpeg-readable file (wav, mp3, aac, m4a, a video).

    Returns ``(samples, rate)``: float32 in [-1, 1], shape ``(n,)`` if ``mono`` else
    ``(n, channels)``; ``rate`` is ``sample_rate`` or, if None, the file's own rate.
    Audio is small next to video (a minute at 48 kHz stereo float32 is 23 MB), so it is read whole.

    Raises:
        MediaError: missing/unreadable file, no audio stream, or zero-length audio.
    """
    info = info or probe_audio(path)
    rate = int(sample_rate or info.audio_sample_rate or ANALYSIS_SAMPLE_RATE)
    channels = 1 if mono else int(info.audio_channels or 1)
    stream = ffmpeg.input(media_path(path)).audio.output("pipe:", format="f32le", acodec="pcm_f32le", ac=channels, ar=rate)
    code, out, err = run(compile_args(stream))
    damage = _corruption(err)
    if code != 0 or damage is not None:
        raise MediaError(path, f"audio decoding failed ({damage or last_line(err)})")
    samples = np.frombuffer(out, dtype=np.float32)
    if samples.size == 0:
        raise MediaError(path, "audio is empty (zero length)")
    samples = samples.reshape(-1, channels).copy()
    return (samples[:, 0] if mono else samples), rate


def read_audio_16k(path: str | Path) -> np.ndarray:
    """Audio as 16 kHz mono float32 ``(n,)``, what Whisper/Wav2Vec2 analysis takes.

    For analysis only: the output video keeps the dubbed track at its own rate (see
    :func:`read_audio_native` / :class:`lsray.media.VideoWriter`).
    """
    samples, _ = read_audio(path, sample_rate=ANALYSIS_SAMPLE_RATE, mono=True)
    return samples


def read_audio_native(path: str | Path) -> tuple[np.ndarray, int]:
    """Audio at the file's own sample rate and channel count: ``((n, channels) float32, rate)``."""
    return read_audio(path)


def audio_sample_rate(path: str | Path) -> int:
    """The native sample rate of the file's first audio stream (what the output AAC keeps)."""
    info = probe_audio(path)
    if info.audio_sample_rate is None:
        raise MediaError(path, "audio stream has no sample rate")
    return info.audio_sample_rate


def count_frames(path: str | Path, info: MediaInfo | None = None) -> int:
    """Exact number of frames :func:`iter_frames` yields, without keeping any (decodes the file)."""
    return sum(1 for _ in iter_frames(path, info=info))

