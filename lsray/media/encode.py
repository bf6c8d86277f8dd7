"""Encoding: RGB frames -> H.264 MP4, and muxing the dubbed track as AAC at its own rate.

Choices (where the brief left room):

* Video: libx264, yuv420p (plays everywhere), CRF 18 / preset "medium" by default, constant
  rate ``fps`` given as an exact rational (``Fraction(30000, 1001)``), ``+faststart`` so the
  MP4 can be streamed (Serve responses) before it is fully downloaded.
* Odd frame sizes: yuv420p needs even width and height. Only when a side is odd, frames are
  *scaled* to the even size just below (e.g. 641x361 -> 640x360) - no padding bars or cropped
  edges, at most one pixel of resampling. :attr:`VideoWriter.output_size` reports the size.
* Audio: the dubbed track is encoded as AAC at *its own* sample rate and channel count (never
  the 16 kHz analysis rate), padded with silence or trimmed to exactly the video's duration
  (``apad`` + ``atrim``) unless another duration is asked for.
* Two steps when there is audio: frames stream into a video-only temporary file, then
  :func:`mux_audio` copies that video stream (no re-encode) next to the AAC track. The video's
  exact duration (frames / fps) is then known when the audio is cut, which ``-shortest`` only
  approximates.
* Atomic: everything is written under temporary names in the output's directory and renamed
  on success; on any error (bad audio, encoder failure, an exception in the ``with`` block)
  the temporaries are removed and nothing appears under the final name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import ffmpeg
import numpy as np

from lsray.errors import MediaError
from lsray.media import ffmpeg_process
from lsray.media.atomic import atomic_output, partial_path, remove_quietly
from lsray.media.color import VideoColor
from lsray.media.ffmpeg_process import compile_args, last_line, media_path, run, stop
from lsray.media.probe import MIN_FRAME_SIDE, MediaInfo, exact_frame_rate, probe_audio, probe_video

DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
DEFAULT_AUDIO_BITRATE = "192k"


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size yuv420p output gets: each odd side rounded down to even."""
    return width - width % 2, height - height % 2


def _mux(
    video: str | Path,
    audio_info: MediaInfo,
    output: str | Path,
    duration: float,
    audio_bitrate: str,
) -> None:
    """Copy ``video``'s video stream and add ``audio_info``'s track as AAC, cut to ``duration`` s."""
    seconds = f"{duration:.6f}"
    v = ffmpeg.input(media_path(video)).video
    a = ffmpeg.input(media_path(audio_info.path)).audio.filter("apad", whole_dur=seconds).filter("atrim", end=seconds)
    out_kwargs: dict = {
        "vcodec": "copy",
        "acodec": "aac",
        "audio_bitrate": audio_bitrate,
        "movflags": "+faststart",
        "format": "mp4",
    }
    if audio_info.audio_sample_rate:
        out_kwargs["ar"] = audio_info.audio_sample_rate  # keep the dubbed track's own rate
    if audio_info.audio_channels:
        out_kwargs["ac"] = audio_info.audio_channels
    code, _, err = run(compile_args(ffmpeg.output(v, a, media_path(output), **out_kwargs)))
    if code != 0:
        raise MediaError(audio_info.path, f"muxing audio failed ({last_line(err)})")


def mux_audio(
    video: str | Path,
    audio: str | Path,
    output: str | Path,
    *,
    duration: float | None = None,
    audio_bitrate: str = DEFAULT_AUDIO_BITRATE,
) -> Path:
    """Write ``output``: ``video``'s picture (stream copy) with ``audio``'s track as AAC.

    The audio keeps its native sample rate and channels; it is padded with silence or trimmed
    to ``duration`` seconds (default: the video's duration). ``audio`` may be any
    ffmpeg-readable file (wav, mp3, aac, m4a, another video). Written atomically.

    Raises:
        MediaError: unreadable video or audio (naming which), or ffmpeg failing.
    """
    video_info = probe_video(video)
    audio_info = probe_audio(audio)
    if duration is None:
        duration = video_info.duration
    if duration is None or duration <= 0:
        raise MediaError(video, "cannot mux: video duration unknown")
    with atomic_output(output) as tmp:
        _mux(video, audio_info, tmp, duration, audio_bitrate)
    return Path(output)


class VideoWriter:
    """Stream RGB frames into an H.264 MP4, optionally with the dubbed audio muxed as AAC.

    Use as a context manager; the file appears under ``path`` only if the block succeeds::

        with VideoWriter("out.mp4", fps=Fraction(30000, 1001), audio="dub.wav") as writer:
            for frame in frames:          # (H, W, 3) uint8 RGB
                writer.write(frame)

    The frame size is taken from the first frame (or ``size=(width, height)``); every frame
    must match it. ``audio`` is probed up front, so a bad audio file fails before any encoding.
    ``color``: the colour tags of the video the frames were decoded from (``probe(...).color``):
    RGB goes back to YUV with the matrix and range ffmpeg decoded it with, and the output carries
    the same tags, so untouched pixels keep their colour in every player; None: BT.601, untagged.
    ``pix_fmt="yuv420p"``: frames are (3H/2, W) I420 planes in that video's colours (even sizes),
    encoded as they are: no conversion, so untouched pixels keep their exact samples.
    Memory: frames are piped to ffmpeg one at a time; nothing is buffered here.
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction | int | float | str,
        *,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        audio: str | Path | None = None,
        audio_duration: float | None = None,
        audio_bitrate: str = DEFAULT_AUDIO_BITRATE,
        size: tuple[int, int] | None = None,
        color: VideoColor | None = None,
        pix_fmt: str = "rgb24",
    ) -> None:
        self.path = Path(path)
        # A float such as 29.97 means the standard 30000/1001, not 2997/100.
        self.fps = exact_frame_rate(repr(fps)) if isinstance(fps, float) else Fraction(fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.crf = crf
        self.preset = preset
        self.audio_info = probe_audio(audio) if audio is not None else None
        self.audio_duration = audio_duration
        self.audio_bitrate = audio_bitrate
        self.size = size  # input (width, height)
        self.color = color or VideoColor()
        if pix_fmt not in ("rgb24", "yuv420p"):
            raise ValueError(f"pix_fmt must be rgb24 or yuv420p, got {pix_fmt!r}")
        self.pix_fmt = pix_fmt
        self.output_size: tuple[int, int] | None = None
        self.frames_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._target: Path | None = None  # the atomic temp for the final file
        self._video_tmp: Path | None = None
        self._proc = None
        self._stderr = None

    # -- context management -------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        self._stack = contextlib.ExitStack()
        self._target = self._stack.enter_context(atomic_output(self.path))
        self._video_tmp = partial_path(self.path) if self.audio_info is not None else self._target
        if self._video_tmp != self._target:
            self._stack.callback(remove_quietly, self._video_tmp)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort(exc_type, exc, tb)

    # -- writing ------------------------------------------------------------------------------
    def _start(self, width: int, height: int) -> None:
        out_w, out_h = even_size(width, height)
        if out_w < MIN_FRAME_SIDE or out_h < MIN_FRAME_SIDE:
            raise MediaError(self.path, f"frame too small ({width}x{height}) to encode")
        self.size, self.output_size = (width, height), (out_w, out_h)
        stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=self.pix_fmt, s=f"{width}x{height}", framerate=str(self.fps))
        matrix = {}  # RGB -> YUV as the source was decoded; yuv420p frames already are its samples
        if self.pix_fmt == "rgb24":
            matrix = {k: v for k, v in (("out_color_matrix", self.color.scale_matrix), ("out_range", self.color.range)) if v}
        if (out_w, out_h) != (width, height) or matrix:
            stream = stream.filter("scale", out_w, out_h, **matrix)
        if self.color.frame_params():
            stream = stream.filter("setparams", **self.color.frame_params())
        stream = stream.output(
            media_path(self._video_tmp),
            vcodec="libx264",
            pix_fmt="yuv420p",
            crf=self.crf,
            preset=self.preset,
            movflags="+faststart",
            format="mp4",
            **{"fps_mode": "cfr"},
        )
        self._proc, self._stderr = ffmpeg_process.start(compile_args(stream), stdin=True)

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame (a (3H/2, W) I420 one with ``pix_fmt="yuv420p"``)."""
        if self._stack is None:
            raise RuntimeError("VideoWriter.write() outside its `with` block")
        yuv = self.pix_fmt == "yuv420p"
        shaped = isinstance(rgb, np.ndarray) and (
            rgb.ndim == 2 and rgb.shape[0] % 3 == 0 and rgb.shape[0] * 2 // 3 % 2 == 0 and rgb.shape[1] % 2 == 0
            if yuv else rgb.ndim == 3 and rgb.shape[2] == 3)
        if not shaped or rgb.dtype != np.uint8:
            kind = "(3H/2, W) uint8 I420 arrays of even H and W" if yuv else "(H, W, 3) uint8 RGB arrays"
            raise ValueError(f"frames must be {kind}, got {getattr(rgb, 'shape', type(rgb))} {getattr(rgb, 'dtype', '')}")
        height, width = (rgb.shape[0] * 2 // 3, rgb.shape[1]) if yuv else rgb.shape[:2]
        if self._proc is None:
            if self.size is not None and self.size != (width, height):
                raise ValueError(f"frame size {width}x{height} differs from size={self.size}")
            self._start(width, height)
        elif (width, height) != self.size:
            raise ValueError(f"frame {self.frames_written} is {width}x{height}, earlier frames were {self.size}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(rgb).data)
        except (BrokenPipeError, OSError) as error:
            self._proc.wait()
            raise MediaError(self.path, f"video encoder failed ({last_line(self._stderr.text())})") from error
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        """Append every frame of an iterable (e.g. a generator of processed frames)."""
        for rgb in frames:
            self.write(rgb)

    @property
    def duration(self) -> float:
        """Seconds of video written so far (frames / fps, exact)."""
        return float(self.frames_written / self.fps)

    def close(self) -> Path:
        """Finish encoding, mux the audio if any, and move the result to ``path``."""
        if self._stack is None:
            return self.path
        try:
            if self._proc is None or self.frames_written == 0:
                raise MediaError(self.path, "no frames were written")
            self._proc.stdin.close()
            code = self._proc.wait()
            if code != 0:
                raise MediaError(self.path, f"video encoder failed ({last_line(self._stderr.text())})")
            if self.audio_info is not None:
                duration = self.audio_duration if self.audio_duration is not None else self.duration
                _mux(self._video_tmp, self.audio_info, self._target, duration, self.audio_bitrate)
        except BaseException as error:
            self._abort(type(error), error, error.__traceback__)
            raise
        stack, self._stack = self._stack, None
        stack.close()  # renames the temp to the final name, removes the video-only temp
        return self.path

    def _abort(self, exc_type, exc, tb) -> None:
        """Stop ffmpeg and delete every temporary; the final name is never created."""
        if self._proc is not None:
            stop(self._proc)
        stack, self._stack = self._stack, None
        if stack is not None:
            with contextlib.suppress(BaseException):
                stack.__exit__(exc_type, exc, tb)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: Fraction | int | float | str,
    **writer_options,
) -> Path:
    """Encode an iterable of RGB frames to ``path`` (see :class:`VideoWriter` for options)."""
    with VideoWriter(path, fps, **writer_options) as writer:
        writer.write_all(frames)
    return Path(path)


