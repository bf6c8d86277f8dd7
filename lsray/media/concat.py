"""Joining rendered segments of one clip into the final video, then muxing the dubbed track.

Segments of a clip are rendered independently (possibly on different machines) with the same
encoder settings, each starting on a keyframe, so ffmpeg's concat demuxer can join them by
stream copy: no re-encode, no generation loss, and the frame count is exactly the sum.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ffmpeg

from lsray.errors import MediaError
from lsray.media.atomic import atomic_output
from lsray.media.encode import mux_audio
from lsray.media.ffmpeg_process import compile_args, last_line, media_path, run


def _concat_list_line(path: str | Path) -> str:
    """One ``file '...'`` line of a concat list; single quotes escaped as the demuxer expects."""
    return "file '" + media_path(path).replace("'", "'\\''") + "'\n"


def concat_segments(segments: list[str | Path], output: str | Path) -> Path:
    """Join video-only segments, in order, into ``output`` by stream copy (atomically)."""
    if not segments:
        raise ValueError("no segments to join")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=out.parent, delete=False, encoding="utf-8") as listing:
        listing.writelines(_concat_list_line(s) for s in segments)
    try:
        with atomic_output(out) as tmp:
            stream = ffmpeg.input(media_path(listing.name), f="concat", safe=0).output(
                media_path(tmp), c="copy", movflags="+faststart", f="mp4"
            )
            code, _, err = run(compile_args(stream))
            if code != 0:
                raise MediaError(segments[0], f"could not join segments: {last_line(err)}")
    finally:
        Path(listing.name).unlink(missing_ok=True)
    return out


def assemble_video(segments: list[str | Path], audio: str | Path, output: str | Path, duration: float) -> Path:
    """The deliverable: segments joined, then the dubbed track muxed at its own rate, cut or
    padded to ``duration`` seconds. Nothing appears under ``output`` unless all of it worked."""
    out = Path(output)
    joined = out.with_name(f".{out.stem}.joined.mp4")
    try:
        concat_segments(segments, joined)
        return mux_audio(joined, audio, out, duration=duration)
    finally:
        joined.unlink(missing_ok=True)
