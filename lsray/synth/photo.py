"""The same mouth animation driven onto a real photo: skimage's astronaut (Eileen Collins).

mediapipe finds her face (score ~0.9; mesh mouth corners at about (201, 139) and (246, 142)
in the 512 x 512 image). We define her face frame by hand from those landmarks (head centre
(224, 111), half-width 50 px, so the mouth sits at the same face-unit height as the cartoon's)
and, per frame:

1. warp the lower face in the source image with a smooth backward displacement field
   (``cv2.remap``): the upper lip moves up by 40 % and the lower lip and chin down by 60 % of
   the viseme's lip gap, corners move out for ``spread`` and in for ``round``, falling off
   smoothly away from the mouth (a jaw opening, not a cut-out);
2. draw the dark mouth cavity and the upper teeth between the moved lips (same contours as the
   cartoon's :func:`lsray.synth.face.mouth_shapes`), slightly feathered;
3. place the result in the output frame with the identity's head motion (one affine warp).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from lsray.synth.face import MOUTH_CENTRE_Y, FrameGeometry, Identity, frame_geometry, mouth_shapes
from lsray.synth.visemes import CLOSURE, OPEN, ROUND, SPREAD

CENTRE = (224.0, 111.0)  # head centre in the 512 x 512 astronaut (pixels)
UNIT = 50.0  # one face unit (head half-width) in source pixels
MOUTH_WIDTH = 0.40  # half-width of her mouth in face units
_PATCH = (150, 80, 300, 230)  # x0, y0, x1, y1: the source region the mouth warp may touch


@functools.lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    """skimage's astronaut, (512, 512, 3) RGB uint8 (read-only: copy before drawing)."""
    import skimage.data

    img = np.ascontiguousarray(skimage.data.astronaut())
    img.setflags(write=False)
    return img


def _to_src(pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) * UNIT + np.array(CENTRE)


def animate_mouth(params: np.ndarray) -> np.ndarray:
    """The astronaut with her mouth set to ``params`` (P,), in source coordinates (512, 512, 3)."""
    src = astronaut()
    out = src.copy()
    x0, y0, x1, y1 = _PATCH
    gap = 0.34 * float(params[OPEN]) * (1.0 - float(params[CLOSURE])) * UNIT
    k = 0.22 * float(params[SPREAD]) - 0.33 * float(params[ROUND])
    mx, my = CENTRE[0], CENTRE[1] + MOUTH_CENTRE_Y * UNIT
    hw = MOUTH_WIDTH * UNIT
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    u = (xs - mx) / (1.6 * hw)
    wx = np.exp(-(u ** 2) * 2.0)
    below = ys >= my
    # vertical: lower side moves down (jaw), upper side up, fading out 1.2 / 0.6 units away
    fall_lo = np.clip(1.0 - (ys - my) / (1.2 * UNIT), 0.0, 1.0) ** 1.5
    fall_up = np.clip(1.0 - (my - ys) / (0.6 * UNIT), 0.0, 1.0) ** 1.5
    dy = np.where(below, 0.6 * gap * fall_lo, -0.4 * gap * fall_up) * wx
    # horizontal: scale about the mouth centre near the mouth
    wy = np.exp(-(((ys - my) / (0.35 * UNIT)) ** 2))
    sx = 1.0 + k * wy * np.exp(-(((xs - mx) / (2.2 * hw)) ** 2))
    map_x = (mx + (xs - mx) / sx).astype(np.float32)
    map_y = (ys - dy).astype(np.float32)
    out[y0:y1, x0:x1] = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if gap > 0.5:
        m = mouth_shapes(params, MOUTH_WIDTH)
        layer = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
        alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
        off = np.array([x0, y0])

        def fill(poly: np.ndarray, colour) -> None:
            pts = np.round((_to_src(poly) - off) * 16).astype(np.int32)
            cv2.fillPoly(layer, [pts], tuple(float(c) for c in colour), cv2.LINE_AA, 4)
            cv2.fillPoly(alpha, [pts], 1.0, cv2.LINE_AA, 4)

        fill(m["inner"], (45, 14, 18))
        if gap > 0.02 * UNIT and len(m["upper_teeth"]) > 2:
            fill(m["upper_teeth"], (228, 222, 212))
        a = cv2.GaussianBlur(alpha, (0, 0), 0.8)[..., None]
        patch = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(patch * (1 - a) + layer * a, 0, 255).astype(np.uint8)
    return out


def draw_photo(identity: Identity, params: np.ndarray, t: float, size: int | tuple[int, int]) -> tuple[np.ndarray, FrameGeometry]:
    """One RGB frame of the astronaut at time ``t`` with her mouth at ``params``."""
    geom = frame_geometry(identity, t, size)
    w, h = geom.frame_size
    # source pixels -> face units -> output pixels
    to_units = np.array([[1 / UNIT, 0, -CENTRE[0] / UNIT], [0, 1 / UNIT, -CENTRE[1] / UNIT], [0, 0, 1]])
    m = geom.affine @ to_units
    img = cv2.warpAffine(animate_mouth(params), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return img, geom
