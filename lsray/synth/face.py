"""Procedural cartoon faces (OpenCV drawing) whose mouth follows viseme parameters.

An :class:`Identity` is a seed plus everything drawn from it: head shape, skin tone, hair,
eyes, brows, nose, lips, background, head-motion amplitudes and blink times. The face is laid
out in *face units* (the head's half-width = 1, origin at the head centre, y down) and mapped to
pixels by a similarity transform that carries the head motion, so the geometry of every frame
(face box, mouth box, the transform itself) is known exactly: :class:`FrameGeometry`.

mediapipe's detector and face mesh (the pipeline's path) find these faces: a shaded head with
ears, neck and shoulders, eyes with irises, brows, a nose with nostrils and two-tone lips on a
background with enough contrast. ``tests/test_synth.py`` checks detection over many seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from lsray.synth.visemes import CLOSURE, OPEN, ROUND, SPREAD, TEETH

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel, anti-aliased polygons
_SCALE = float(1 << _SHIFT)

SKIN_TONES = [  # RGB, light to dark
    (255, 224, 196), (241, 194, 167), (224, 172, 140), (198, 144, 106),
    (170, 118, 84), (141, 94, 64), (112, 72, 48), (234, 190, 150),
]
HAIR_COLOURS = [(30, 24, 20), (70, 45, 30), (120, 80, 45), (200, 160, 90), (150, 60, 30), (160, 160, 160)]
EYE_COLOURS = [(70, 45, 25), (40, 90, 150), (60, 110, 60), (110, 80, 40), (30, 30, 30)]
HAIR_STYLES = ("short", "long", "bald", "fringe")
BACKGROUNDS = ("flat", "gradient", "stripes", "noise")

#: Mouth centre in face units, and the box (half-width, half-height) that holds any mouth shape.
MOUTH_CENTRE_Y = 0.62
MOUTH_BOX_HALF = (0.52, 0.34)


def _luma(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


@dataclass(frozen=True)
class Identity:
    """One synthetic person, fully determined by ``seed`` (use :meth:`from_seed`).

    ``kind`` is ``"cartoon"`` (drawn here) or ``"photo"`` (skimage's astronaut with an animated
    mouth, :mod:`lsray.synth.photo`). Appearance fields are in face units (head half-width = 1)
    or RGB tuples; motion amplitudes are in face units / degrees; ``blinks_s`` are blink start
    times within the first minute (repeated after that).
    """

    seed: int
    kind: str = "cartoon"
    aspect: float = 1.3  # head half-height / half-width
    skin: tuple[int, int, int] = SKIN_TONES[1]
    hair: tuple[int, int, int] = HAIR_COLOURS[0]
    hair_style: str = "short"
    eye_colour: tuple[int, int, int] = EYE_COLOURS[0]
    eye_spacing: float = 0.38
    eye_size: float = 0.16
    brow_thickness: float = 0.05
    brow_tilt: float = 0.0
    nose_length: float = 0.33
    mouth_width: float = 0.3
    lip_colour: tuple[int, int, int] = (180, 80, 80)
    background: tuple[int, int, int] = (90, 120, 160)
    background_style: str = "flat"
    background_colour2: tuple[int, int, int] = (60, 80, 110)
    shirt: tuple[int, int, int] = (60, 60, 140)
    motion_shift: float = 0.04
    motion_angle: float = 3.0
    motion_phase: float = 0.0
    motion_period_s: float = 3.0
    placement: float = 0.5  # horizontal position of the head in full frames (0..1)
    blinks_s: tuple[float, ...] = field(default_factory=tuple)

    @classmethod
    def from_seed(cls, seed: int) -> "Identity":
        rng = np.random.default_rng([7919, int(seed)])
        skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
        skin = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in skin)
        # A background that contrasts with the skin (detection needs an outline).
        for _ in range(50):
            bg = tuple(int(c) for c in rng.integers(0, 256, 3))
            if abs(_luma(bg) - _luma(skin)) > 70:
                break
        bg2 = tuple(int(np.clip(c * rng.uniform(0.6, 1.3), 0, 255)) for c in bg)
        lip = tuple(int(np.clip(s * f, 0, 255)) for s, f in zip(skin, (0.78, 0.45, 0.45)))
        period = float(rng.uniform(2.5, 5.0))
        blinks, t = [], float(rng.uniform(0.3, 2.0))
        while t < 60.0:
            blinks.append(round(t, 3))
            t += float(rng.uniform(2.0, 5.0))
        return cls(
            seed=int(seed), kind="cartoon",
            aspect=float(rng.uniform(1.18, 1.42)), skin=skin,
            hair=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
            hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
            eye_colour=EYE_COLOURS[int(rng.integers(len(EYE_COLOURS)))],
            eye_spacing=float(rng.uniform(0.34, 0.42)), eye_size=float(rng.uniform(0.13, 0.18)),
            brow_thickness=float(rng.uniform(0.035, 0.07)), brow_tilt=float(rng.uniform(-0.06, 0.06)),
            nose_length=float(rng.uniform(0.28, 0.38)), mouth_width=float(rng.uniform(0.26, 0.34)),
            lip_colour=lip, background=bg, background_style=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
            background_colour2=bg2, shirt=tuple(int(c) for c in rng.integers(20, 230, 3)),
            motion_shift=float(rng.uniform(0.01, 0.05)), motion_angle=float(rng.uniform(0.5, 3.5)),
            motion_phase=float(rng.uniform(0, 2 * np.pi)), motion_period_s=period,
            placement=float(rng.uniform(0.35, 0.65)), blinks_s=tuple(blinks),
        )

    @classmethod
    def photo(cls, seed: int = 0) -> "Identity":
        """The astronaut photo identity (head motion still varies with ``seed``)."""
        base = cls.from_seed(seed)
        return cls(seed=int(seed), kind="photo", motion_shift=base.motion_shift * 0.5,
                   motion_angle=base.motion_angle * 0.5, motion_phase=base.motion_phase,
                   motion_period_s=base.motion_period_s, blinks_s=())

    def blink(self, t: float, duration_s: float = 0.15) -> float:
        """Eyelid closure in [0, 1] at time ``t`` (a triangle over each blink)."""
        t = t % 60.0
        for b in self.blinks_s:
            if b <= t < b + duration_s:
                return float(1.0 - abs(2.0 * (t - b) / duration_s - 1.0))
        return 0.0

    def head_motion(self, t: float) -> tuple[float, float, float]:
        """(dx, dy in face units, rotation in degrees) at time ``t``: slow, smooth sways."""
        w = 2 * np.pi * t / self.motion_period_s + self.motion_phase
        return (self.motion_shift * np.sin(w), 0.5 * self.motion_shift * np.sin(1.7 * w + 1.0),
                self.motion_angle * np.sin(0.8 * w + 0.5))


@dataclass(frozen=True)
class FrameGeometry:
    """Where things are in one rendered frame (pixels): exact, since the renderer put them there.

    ``affine`` (2x3) maps face units to pixels; ``face_box`` and ``mouth_box`` are (x0, y0, x1,
    y1) integer boxes clipped to the frame (``mouth_box`` holds any mouth shape the renderer can
    draw, so metrics over it compare like with like).
    """

    affine: np.ndarray
    face_box: tuple[int, int, int, int]
    mouth_box: tuple[int, int, int, int]
    frame_size: tuple[int, int]  # (width, height)

    def to_pixels(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        return pts @ self.affine[:, :2].T + self.affine[:, 2]


def frame_layout(size: int | tuple[int, int], identity: Identity) -> tuple[int, int, float, float, float]:
    """(width, height, head centre x, y, head half-width in px) for a square crop or a full frame."""
    if isinstance(size, (int, np.integer)):
        w = h = int(size)
        return w, h, w / 2.0, h * 0.46, 0.25 * w
    w, h = (int(v) for v in size)
    r = 0.17 * h
    cx = r * 1.6 + identity.placement * max(0.0, w - 3.2 * r)
    return w, h, cx, 0.45 * h, r


def frame_geometry(identity: Identity, t: float, size: int | tuple[int, int]) -> FrameGeometry:
    """The geometry of the frame at time ``t`` (no drawing): what the metrics need."""
    w, h, cx, cy, r = frame_layout(size, identity)
    dx, dy, angle = identity.head_motion(t)
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * r
    affine = np.concatenate([rot, [[cx + dx * r], [cy + dy * r]]], axis=1)
    geom = FrameGeometry(affine, (0, 0, 0, 0), (0, 0, 0, 0), (w, h))

    def box(cxu, cyu, hw, hh):
        pts = geom.to_pixels(np.array([[cxu - hw, cyu - hh], [cxu + hw, cyu - hh], [cxu + hw, cyu + hh], [cxu - hw, cyu + hh]]))
        x0, y0 = np.floor(pts.min(0)).astype(int)
        x1, y1 = np.ceil(pts.max(0)).astype(int)
        return (max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1)))

    aspect = identity.aspect if identity.kind == "cartoon" else 1.3
    return FrameGeometry(affine, box(0.0, 0.0, 1.0, aspect), box(0.0, MOUTH_CENTRE_Y, *MOUTH_BOX_HALF), (w, h))


# -- drawing -----------------------------------------------------------------------------------

def _ellipse(cx: float, cy: float, ax: float, ay: float, a0: float = 0.0, a1: float = 360.0, n: int = 48) -> np.ndarray:
    th = np.deg2rad(np.linspace(a0, a1, n))
    return np.stack([cx + ax * np.cos(th), cy + ay * np.sin(th)], axis=1)


class _Canvas:
    def __init__(self, img: np.ndarray, geom: FrameGeometry) -> None:
        self.img, self.geom = img, geom

    def _px(self, pts: np.ndarray) -> np.ndarray:
        return np.round(self.geom.to_pixels(pts) * _SCALE).astype(np.int32)

    def poly(self, pts: np.ndarray, colour) -> None:
        cv2.fillPoly(self.img, [self._px(pts)], tuple(int(c) for c in colour), cv2.LINE_AA, _SHIFT)

    def line(self, pts: np.ndarray, colour, thickness_units: float) -> None:
        t = max(1, int(round(thickness_units * np.hypot(*self.geom.affine[:, 0]))))
        cv2.polylines(self.img, [self._px(pts)], False, tuple(int(c) for c in colour), t, cv2.LINE_AA, _SHIFT)


def _shade(rgb, f: float):
    return tuple(int(np.clip(c * f, 0, 255)) for c in rgb)


def background(identity: Identity, w: int, h: int) -> np.ndarray:
    """The static background of an identity (RGB uint8 (h, w, 3))."""
    c1, c2 = np.array(identity.background, np.float32), np.array(identity.background_colour2, np.float32)
    style = identity.background_style
    if style == "gradient":
        f = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = c1 * (1 - f) + c2 * f
        img = np.broadcast_to(img, (h, w, 3))
    elif style == "stripes":
        period = max(8, w // 10)
        f = ((np.arange(w) // period) % 2).astype(np.float32)[None, :, None]
        img = np.broadcast_to(c1 * (1 - f) + c2 * f, (h, w, 3))
    elif style == "noise":
        rng = np.random.default_rng(identity.seed)
        n = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), max(2.0, w / 60))
        n = (n - n.mean()) / (n.std() + 1e-6)
        f = np.clip(0.5 + 0.3 * n, 0, 1)[..., None]
        img = c1 * (1 - f) + c2 * f
    else:
        img = np.broadcast_to(c1, (h, w, 3))
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


def mouth_shapes(params: np.ndarray, width: float) -> dict[str, np.ndarray]:
    """Lip contours in face units for one (P,) parameter vector, centred at (0, MOUTH_CENTRE_Y).

    Returns ``outer`` (closed lip outline), ``inner`` (the opening, may be degenerate),
    ``upper_teeth``, ``lower_teeth`` polygons and ``gap`` (the opening height).
    """
    open_, spread, round_, closure, teeth = (float(params[i]) for i in (OPEN, SPREAD, ROUND, CLOSURE, TEETH))
    gap = 0.34 * open_ * (1.0 - closure)
    hw = width * (1.0 + 0.22 * spread - 0.33 * round_) * (1.0 + 0.1 * open_)
    x = np.linspace(-hw, hw, 25)
    s = np.clip(1.0 - (x / hw) ** 2, 0.0, 1.0)
    prof = s ** (0.55 - 0.25 * round_)
    my = MOUTH_CENTRE_Y
    up_in = my - 0.4 * gap * prof
    lo_in = my + 0.6 * gap * prof
    thick_u, thick_l = 0.065 + 0.03 * round_, 0.085 + 0.035 * round_
    bow = 0.018 * np.exp(-((x / (0.25 * hw)) ** 2))  # cupid's bow dip at the centre
    up_out = up_in - thick_u * (0.35 + 0.65 * s ** 0.5) + bow
    lo_out = lo_in + thick_l * (0.3 + 0.7 * s ** 0.5)
    outer = np.concatenate([np.stack([x, up_out], 1), np.stack([x[::-1], lo_out[::-1]], 1)])
    inner = np.concatenate([np.stack([x, up_in], 1), np.stack([x[::-1], lo_in[::-1]], 1)])
    tw = np.abs(x) < 0.75 * hw
    th_u = min(0.5 * gap, 0.06) if gap > 0.02 else 0.0
    upper_teeth = np.concatenate([np.stack([x[tw], up_in[tw] - 0.005], 1), np.stack([x[tw][::-1], up_in[tw][::-1] + th_u * prof[tw][::-1]], 1)])
    th_l = min(0.25 * gap, 0.035) if gap > 0.08 else 0.0
    lower_teeth = np.concatenate([np.stack([x[tw], lo_in[tw] - th_l * prof[tw]], 1), np.stack([x[tw][::-1], lo_in[tw][::-1] + 0.005], 1)])
    # f/v: the upper teeth rest on the lower lip, visible below the upper lip.
    bite_h = 0.045 * teeth
    fv = np.abs(x) < 0.55 * hw
    bite = np.concatenate([np.stack([x[fv], up_in[fv] - 0.005], 1), np.stack([x[fv][::-1], up_in[fv][::-1] + bite_h], 1)])
    return {"outer": outer, "inner": inner, "upper_teeth": upper_teeth, "lower_teeth": lower_teeth,
            "bite": bite, "gap": np.array(gap), "bite_h": np.array(bite_h), "up_in": np.stack([x, up_in], 1)}


def draw_mouth(canvas: _Canvas, params: np.ndarray, width: float, lip_colour) -> None:
    m = mouth_shapes(params, width)
    canvas.poly(m["outer"], lip_colour)
    gap = float(m["gap"])
    if gap > 0.008:
        canvas.poly(m["inner"], (40, 12, 16))
        if len(m["upper_teeth"]) > 2 and gap > 0.02:
            canvas.poly(m["upper_teeth"], (236, 232, 222))
        if len(m["lower_teeth"]) > 2 and gap > 0.08:
            canvas.poly(m["lower_teeth"], (220, 216, 206))
    else:
        canvas.line(m["up_in"], _shade(lip_colour, 0.45), 0.018)
    if float(m["bite_h"]) > 0.005:
        canvas.poly(m["bite"], (236, 232, 222))
    # upper lip slightly darker than the lower one (two-tone lips read better as a mouth)
    n = len(m["outer"]) // 2
    upper = np.concatenate([m["outer"][:n], m["inner"][:n][::-1]])
    canvas.poly(upper, _shade(lip_colour, 0.85))


def draw_face(identity: Identity, params: np.ndarray, t: float, size: int | tuple[int, int],
              bg: np.ndarray | None = None) -> tuple[np.ndarray, FrameGeometry]:
    """One RGB frame of ``identity`` at time ``t`` with the mouth of ``params`` (P,)."""
    geom = frame_geometry(identity, t, size)
    w, h = geom.frame_size
    img = (bg if bg is not None else background(identity, w, h)).copy()
    c = _Canvas(img, geom)
    a = identity.aspect
    skin = identity.skin
    # shoulders and neck (drawn first, the head covers their top)
    c.poly(_ellipse(0.0, a + 1.25, 2.2, 0.9), identity.shirt)
    c.poly(np.array([[-0.42, 0.5], [0.42, 0.5], [0.46, a + 0.55], [-0.46, a + 0.55]]), _shade(skin, 0.82))
    if identity.hair_style == "long":
        c.poly(_ellipse(0.0, 0.25, 1.18, a + 0.3), identity.hair)
    # ears
    for sx in (-1, 1):
        c.poly(_ellipse(sx * 0.97, 0.05, 0.16, 0.26), _shade(skin, 0.9))
    # head, with a soft darker rim for shading
    c.poly(_ellipse(0.0, 0.0, 1.0, a), _shade(skin, 0.88))
    c.poly(_ellipse(0.0, -0.04, 0.93, a * 0.95), skin)
    # hair on top
    if identity.hair_style in ("short", "long", "fringe"):
        c.poly(_ellipse(0.0, -a * 0.55, 1.04, a * 0.55, 180, 360), identity.hair)
        if identity.hair_style == "fringe":
            c.poly(np.array([[-0.9, -a * 0.55], [0.9, -a * 0.55], [0.6, -a * 0.38], [-0.7, -a * 0.42]]), identity.hair)
    # eyes
    blink = identity.blink(t)
    ey, es = -0.08, identity.eye_size
    for sx in (-1, 1):
        ex = sx * identity.eye_spacing
        c.poly(_ellipse(ex, ey, es * 1.05, es * 0.62), (250, 250, 248))
        c.poly(_ellipse(ex, ey, es * 0.45, es * 0.45), identity.eye_colour)
        c.poly(_ellipse(ex, ey, es * 0.22, es * 0.22), (10, 10, 12))
        c.poly(_ellipse(ex + es * 0.15, ey - es * 0.15, es * 0.08, es * 0.08), (255, 255, 255))
        if blink > 0.02:  # eyelid coming down: its edge goes from the top arc (open) to the bottom
            c.poly(np.concatenate([_ellipse(ex, ey, es * 1.12, es * 0.72, 180, 360),
                                   _ellipse(ex, ey, es * 1.12, es * 0.72 * (2 * blink - 1), 0, 180)]),
                   _shade(skin, 0.93))
        c.line(_ellipse(ex, ey, es * 1.05, es * 0.62, 190, 350, 16), (40, 30, 30), 0.025)
        # brows
        bx = np.linspace(ex - sx * 0.15, ex + sx * 0.17, 9)
        by = ey - 0.2 - 0.05 * np.sin(np.linspace(0, np.pi, 9)) + sx * identity.brow_tilt * np.linspace(-1, 1, 9) * 0.5
        c.line(np.stack([bx, by], 1), _shade(identity.hair, 0.9) if identity.hair_style != "bald" else (60, 45, 35),
               identity.brow_thickness)
    # nose: bridge shadow, tip and nostrils
    nl = identity.nose_length
    c.line(np.array([[0.05, 0.0], [0.09, nl * 0.75], [0.06, nl]]), _shade(skin, 0.72), 0.03)
    c.poly(_ellipse(0.0, nl + 0.01, 0.12, 0.06), _shade(skin, 0.92))
    for sx in (-1, 1):
        c.poly(_ellipse(sx * 0.07, nl + 0.03, 0.035, 0.02), _shade(skin, 0.45))
    draw_mouth(c, params, identity.mouth_width, identity.lip_colour)
    return img, geom
