"""A video's colour description (how its YUV samples map to RGB), as its stream states it.

ffmpeg decodes a stream tagged BT.709 (nearly every HD source) to RGB with the BT.709 matrix,
while an encoder fed raw RGB converts with BT.601 and writes no tag: a dub re-encoded that way
shows saturated colours shifted by up to ~14 levels in any player that reads HD as BT.709. So
:class:`lsray.media.VideoWriter` takes the source's :class:`VideoColor`, converts RGB back with
the matrix and range ffmpeg decoded it with, and tags the output like the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The matrix names ffmpeg prints for a stream -> the name its ``scale`` filter takes for that
#: matrix (``out_color_matrix``); matrices missing here (YCgCo, RGB) are left to ffmpeg's default.
_SCALE_MATRIX = {"bt709": "bt709", "bt470bg": "bt470", "smpte170m": "smpte170m", "smpte240m": "smpte240m",
                 "bt2020nc": "bt2020", "bt2020c": "bt2020", "fcc": "fcc"}
_RANGES = {"tv", "pc"}


@dataclass(frozen=True)
class VideoColor:
    """Colour tags of a video stream, each None where the stream does not state it."""

    range: str | None = None  # "tv" (limited, 16-235) or "pc" (full)
    space: str | None = None  # the YUV <-> RGB matrix: "bt709", "bt470bg", "smpte170m", "bt2020nc", ...
    primaries: str | None = None
    transfer: str | None = None

    @classmethod
    def parse(cls, stream_description: str) -> VideoColor:
        """From ffmpeg's stream summary, e.g. ``h264 (High), yuv420p(tv, bt709, progressive), 1920x1080``
        (one name for matrix/primaries/transfer when all three agree, else ``bt709/bt709/unknown``)."""
        m = re.search(r", [0-9a-z_]+\(([^)]*)\)", stream_description)
        if m is None:
            return cls()
        rng = space = primaries = transfer = None
        for token in (t.strip() for t in m.group(1).split(",")):
            if token in _RANGES:
                rng = token
            elif "/" in token:  # matrix/primaries/transfer
                names = [None if n in ("unknown", "reserved", "") else n for n in token.split("/")]
                space, primaries, transfer = (names + [None, None])[:3]
            elif token in _SCALE_MATRIX or token in ("ycgco", "gbr"):
                space = primaries = transfer = token
        return cls(rng, space, primaries, transfer)

    @property
    def scale_matrix(self) -> str | None:
        """The matrix's name for ffmpeg's ``scale`` filter, or None (ffmpeg's default, BT.601)."""
        return _SCALE_MATRIX.get(self.space or "")

    def frame_params(self) -> dict[str, str]:
        """``setparams`` options that tag frames with these colours (only the stated ones); the
        encoder writes the frames' tags into the stream."""
        tags = {"range": self.range, "colorspace": self.space if self.scale_matrix else None,
                "color_primaries": self.primaries, "color_trc": self.transfer}
        return {k: v for k, v in tags.items() if v}
