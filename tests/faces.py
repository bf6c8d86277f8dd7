"""Test images for the face package: skimage's astronaut, moved a little, two faces, a blank."""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB; mediapipe finds one face (score ~0.9) at about x 174-278, y 68-172."""
    return np.ascontiguousarray(skimage.data.astronaut())


def head_motion(num_frames: int = 20, max_shift: float = 6.0, max_angle: float = 3.0) -> tuple[list[np.ndarray], np.ndarray]:
    """The astronaut under a slow translate + rotate; returns frames and each frame's 2x3 motion.

    The motion is smooth (a sine over the clip), like a head drifting, so a tracker that only
    detects on keyframes has to follow real motion in between.
    """
    base = astronaut()
    h, w = base.shape[:2]
    frames, motions = [], []
    for i in range(num_frames):
        phase = np.sin(2 * np.pi * i / max(num_frames, 2))
        dx, dy = max_shift * phase, 0.5 * max_shift * np.cos(2 * np.pi * i / max(num_frames, 2))
        m = cv2.getRotationMatrix2D((226.0, 120.0), max_angle * phase, 1.0)
        m[:, 2] += (dx, dy)
        frames.append(cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        motions.append(m)
    return frames, np.stack(motions)


def portrait() -> np.ndarray:
    """The astronaut's head and shoulders cut out (240 x 220)."""
    return np.ascontiguousarray(astronaut()[20:260, 110:330])


def two_faces() -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(360, 640, 3) frame with a large face on the left and a small one on the right.

    Returns the frame and the (x0, y0, x1, y1) windows the two portraits were pasted into.
    """
    frame = np.full((360, 640, 3), 90, np.uint8)
    p = portrait()
    big = cv2.resize(p, (220, 240), interpolation=cv2.INTER_AREA)
    small = cv2.resize(p, (128, 140), interpolation=cv2.INTER_AREA)
    frame[60:300, 40:260] = big
    frame[120:260, 400:528] = small
    return frame, (40, 60, 260, 300), (400, 120, 528, 260)


def blank(h: int = 360, w: int = 640) -> np.ndarray:
    """A frame with no face in it."""
    return np.full((h, w, 3), 128, np.uint8)
