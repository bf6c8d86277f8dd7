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

import numpy as np

#: The matrix names ffmpeg prints for a stream -> the name its ``scale`` filter takes for that
#: matrix (``out_color_matrix``); matrices missing here (YCgCo, RGB) are left to ffmpeg's default.
_SCALE_MATRIX = {"bt709": "bt709", "bt470bg": "bt470", "smpte170m": "smpte170m", "smpte240m": "smpte240m",
                 "bt2020nc": "bt2020", "bt2020c": "bt2020", "fcc": "fcc"}
_RANGES = {"tv", "pc"}
#: (Kr, Kb) of each matrix, by its ``scale`` name; ffmpeg's default (no or another tag) is BT.601.
_LUMA_WEIGHTS = {"bt709": (0.2126, 0.0722), "bt470": (0.299, 0.114), "smpte170m": (0.299, 0.114),
                 "smpte240m": (0.212, 0.087), "bt2020": (0.2627, 0.0593), "fcc": (0.30, 0.11), None: (0.299, 0.114)}


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

    def _yuv_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(3, 3) matrix and (3,) offset taking RGB 0-255 to this video's Y, Cb, Cr samples."""
        kr, kb = _LUMA_WEIGHTS[self.scale_matrix]
        kg = 1.0 - kr - kb
        # Y' = Kr R + Kg G + Kb B; Cb = (B - Y') / 2(1 - Kb); Cr = (R - Y') / 2(1 - Kr); all in [0, 1]
        unit = np.array([[kr, kg, kb],
                         [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                         [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])
        luma, chroma, offset = (255.0, 255.0, 0.0) if self.range == "pc" else (219.0, 224.0, 16.0)
        return np.diag([luma, chroma, chroma]) @ unit / 255.0, np.array([offset, 128.0, 128.0])

    def rgb_to_yuv(self, rgb: np.ndarray) -> np.ndarray:
        """(..., 3) RGB 0-255 -> (..., 3) float32 Y, Cb, Cr samples in this video's matrix and range:
        the inverse of the conversion ffmpeg decodes it to RGB with (a pixel pasted in YUV then
        decodes to the RGB it was given, up to rounding)."""
        m, offset = self._yuv_affine()
        return np.asarray(rgb, np.float32) @ m.T.astype(np.float32) + offset.astype(np.float32)

    def yuv_to_rgb(self, frame: np.ndarray) -> np.ndarray:
        """(3H/2, W) I420 planes in this video's matrix and range -> (H, W, 3) uint8 RGB, the
        inverse of :meth:`rgb_to_yuv`, each chroma sample covering its 2 x 2 pixels as in ffmpeg's
        own conversion (within 3 levels of it, tested). A tracker that follows the Y plane converts
        only the few frames its detector sees, instead of having ffmpeg convert every frame."""
        import cv2  # here, not at module import: records, probes and job managers need no OpenCV

        y, u, v = yuv_planes(frame)
        h, w = y.shape
        ycc = cv2.merge([y, cv2.resize(u, (w, h), interpolation=cv2.INTER_NEAREST),
                         cv2.resize(v, (w, h), interpolation=cv2.INTER_NEAREST)])  # (H, W, 3) uint8
        m, offset = self._yuv_affine()
        inv = np.linalg.inv(m)
        return cv2.transform(ycc, np.hstack([inv, -(inv @ offset)[:, None]]))  # saturates to 0-255

    def frame_params(self) -> dict[str, str]:
        """``setparams`` options that tag frames with these colours (only the stated ones); the
        encoder writes the frames' tags into the stream."""
        tags = {"range": self.range, "colorspace": self.space if self.scale_matrix else None,
                "color_primaries": self.primaries, "color_trc": self.transfer}
        return {k: v for k, v in tags.items() if v}


def yuv_planes(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (H, W), U and V (H/2, W/2) planes of a (3H/2, W) I420 frame
    (``iter_frames(..., pix_fmt="yuv420p")``); writing to them writes the frame."""
    rows, width = frame.shape
    height = rows * 2 // 3
    flat = frame.reshape(-1)
    n = height * width
    return (flat[:n].reshape(height, width), flat[n:n + n // 4].reshape(height // 2, width // 2),
            flat[n + n // 4:].reshape(height // 2, width // 2))
