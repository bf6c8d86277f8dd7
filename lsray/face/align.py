"""Affine alignment of one face to LatentSync's template, with temporal smoothing.

Upstream facts (latentsync/utils/affine_transform.py, image_processor.py):
- template points [[17, 20], [58, 20], [37.5, 40]] (image-left brow centre, image-right brow
  centre, nose centre) in a 75 x 100 box, scaled by ratio = resolution / 256 * 2.8; the warped
  crop is int(75 * ratio) wide and int(100 * ratio) tall (210 x 280 at 256, 420 x 560 at
  512), then resized to resolution x resolution (LANCZOS).
- the transform is a similarity fitted with Procrustes (scale = ratio of point spreads, rotation
  from an SVD, reflection guarded), border fill 127.
- upstream's "smooth" only adds an exponentially averaged bias in *normalised* units to the
  translation (well under a pixel), so in practice it does not smooth.

lsray composes the similarity with upstream's resize into ONE 2x3 affine (frame -> S x S crop)
and warps once, so each frame has a single exact forward/inverse pair for paste-back. Smoothing
is done on the three alignment points with a centred Gaussian window over the track (the track
is already in memory after the tracking pass), restarted at every gap, so a still head is not
shaken by landmark noise and a moving head is not lagged (a causal EMA would lag).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import cv2
import numpy as np

from lsray.resolution import RESOLUTIONS

from .track import FaceTrack

TEMPLATE_UNITS = np.array([[17.0, 20.0], [58.0, 20.0], [37.5, 40.0]])
SUPPORTED_RESOLUTIONS = RESOLUTIONS
BORDER_VALUE = 127


@dataclass
class AlignedFace:
    """The chosen face of one frame, warped to the template."""

    frame_index: int
    crop: np.ndarray  # (S, S, 3) uint8 RGB
    affine: np.ndarray  # (2, 3) frame -> crop
    inverse_affine: np.ndarray  # (2, 3) crop -> frame
    track_id: int = -1


@dataclass
class FrameFace:
    """One frame of the stream with its aligned face, or None when it passes through untouched."""

    index: int
    frame: np.ndarray
    face: AlignedFace | None


def upstream_face_size(resolution: int) -> tuple[int, int]:
    """(width, height) of upstream's warped crop before its resize (int() truncation kept)."""
    ratio = resolution / 256 * 2.8
    return int(75 * ratio), int(100 * ratio)


def template_points(resolution: int) -> np.ndarray:
    """(3, 2) template points in upstream's warped-crop coordinates for this resolution."""
    return TEMPLATE_UNITS * (resolution / 256 * 2.8)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) similarity mapping src points onto dst (Procrustes, as upstream fits it)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    c1, c2 = src.mean(0), dst.mean(0)
    a, b = src - c1, dst - c2
    s1, s2 = a.std(), b.std()
    if s1 < 1e-9:
        raise ValueError("degenerate alignment points (all coincide)")
    u, _, vt = np.linalg.svd((a / s1).T @ (b / s2))
    r = (u @ vt).T
    if np.linalg.det(r) < 0:  # no mirroring
        u[:, -1] *= -1
        r = (u @ vt).T
    sr = (s2 / s1) * r
    t = c2 - sr @ c1
    return np.concatenate([sr, t[:, None]], axis=1)


def _resize_affine(src_wh: tuple[int, int], dst: int) -> np.ndarray:
    """cv2.resize's pixel-centre mapping from a (w, h) image to dst x dst, as a 3x3 matrix."""
    sx, sy = dst / src_wh[0], dst / src_wh[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def alignment_affine(points: np.ndarray, resolution: int) -> np.ndarray:
    """(2, 3) affine taking the frame to the S x S aligned crop for these 3 alignment points."""
    if resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(f"resolution must be one of {SUPPORTED_RESOLUTIONS}, got {resolution}")
    m = np.vstack([similarity_transform(points, template_points(resolution)), [0, 0, 1]])
    return (_resize_affine(upstream_face_size(resolution), resolution) @ m)[:2]


def read_box(points: np.ndarray, resolution: int, frame_wh: tuple[int, int],
             margin: int = 8) -> tuple[int, int, int, int] | None:
    """The even ``(x, y, width, height)`` box of a ``frame_wh`` frame that aligning faces with
    these ``(N, 3, 2)`` points reads, ``margin`` px wider (bilinear taps, chroma upsampling); None
    when no box of even size fits (an odd frame size: decode whole frames) or there are no points.

    A decoder that cuts this box before converting to RGB does a fraction of a full frame's
    work, and the crops warped from it are the full frame's bit for bit."""
    w, h = frame_wh
    points = np.asarray(points, np.float64).reshape(-1, 3, 2)
    if len(points) == 0 or w % 2 or h % 2:
        return None
    s = resolution
    corners = np.array([[0.0, 0.0], [s, 0.0], [0.0, s], [s, s]])
    lo, hi = np.array([np.inf, np.inf]), np.array([-np.inf, -np.inf])
    for p in np.unique(points, axis=0):
        inv = cv2.invertAffineTransform(alignment_affine(p, s))
        quad = corners @ inv[:, :2].T + inv[:, 2]  # (4, 2) the crop's corners in frame pixels
        lo, hi = np.minimum(lo, quad.min(0)), np.maximum(hi, quad.max(0))
    # a face wholly outside the frame still gets a 2 x 2 box (its warp reads only the border value)
    x0, y0 = (min(size - 2, max(0, int(np.floor(v)) - margin)) // 2 * 2 for v, size in zip(lo, (w, h)))
    x1, y1 = (max(start + 2, min(size, int(np.ceil(v)) + margin + 1)) for v, size, start in zip(hi, (w, h), (x0, y0)))
    x1, y1 = x1 + x1 % 2, y1 + y1 % 2  # <= the (even) frame size
    return x0, y0, x1 - x0, y1 - y0


def smooth_points(points: np.ndarray, frame_indices: list[int] | np.ndarray, radius: int = 2) -> np.ndarray:
    """Centred Gaussian average of (N, 3, 2) points over +-radius frames, within contiguous runs.

    A run restarts at any gap in `frame_indices`, so smoothing never blends across a cut or an
    absence of the face. radius=0 returns the points unchanged.
    """
    pts = np.asarray(points, dtype=np.float64)
    if radius <= 0 or len(pts) < 2:
        return pts.copy()
    idx = np.asarray(frame_indices)
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    sigma = max(radius / 2.0, 1e-6)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    out = np.empty_like(pts)
    for run in np.split(np.arange(len(pts)), breaks):
        seg = pts[run]
        n = len(seg)
        for j in range(n):
            lo, hi = max(0, j - radius), min(n, j + radius + 1)
            w = kernel[lo - j + radius : hi - j + radius]
            out[run[j]] = np.tensordot(w / w.sum(), seg[lo:hi], axes=1)
    return out


class FaceAligner:
    """Warps the chosen track's face out of each frame at 256 or 512."""

    def __init__(self, resolution: int = 256, smoothing_radius: int = 2) -> None:
        if resolution not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"resolution must be one of {SUPPORTED_RESOLUTIONS}, got {resolution}")
        self.resolution = resolution
        self.smoothing_radius = smoothing_radius
        self.passthrough_frames = 0  # frames yielded without a face

    def align_frame(self, frame: np.ndarray, points: np.ndarray, frame_index: int = 0, track_id: int = -1) -> AlignedFace:
        """Aligned crop of one frame given its (3, 2) alignment points."""
        affine = alignment_affine(points, self.resolution)
        s = self.resolution
        crop = cv2.warpAffine(
            frame, affine, (s, s), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(BORDER_VALUE,) * 3,
        )
        return AlignedFace(frame_index, crop, affine, cv2.invertAffineTransform(affine), track_id)

    def align_track(self, frames: Iterable[np.ndarray], track: FaceTrack | None) -> Iterator[FrameFace]:
        """Second pass over the stream: each frame with the chosen face aligned, or None.

        Frames where the track is absent (or there is no track at all) are yielded unchanged
        with face=None and counted in `passthrough_frames`; nothing here raises for them.
        """
        smoothed: dict[int, np.ndarray] = {}
        if track is not None and len(track):
            sm = smooth_points(track.points_array(), track.frame_indices, self.smoothing_radius)
            smoothed = dict(zip(track.frame_indices, sm))
        for i, frame in enumerate(frames):
            pts = smoothed.get(i)
            face = None
            if pts is not None:
                try:
                    face = self.align_frame(frame, pts, i, track.track_id)
                except (ValueError, cv2.error, np.linalg.LinAlgError):
                    face = None
            if face is None:
                self.passthrough_frames += 1
            yield FrameFace(i, frame, face)
