"""Viseme-level lip sync: do the output's lips shut on /p b m/, bite on /f v/, open on open vowels?

PSNR and LSE say how close a mouth is overall; a dub that blurs every mouth towards half-open
scores well on both and still never closes its lips on "mama". Here the synthetic world's known
answer is used frame by frame:

1. **Which frames matter** (:class:`VisemeFrames`, the one definition): from the dub's viseme
   track (:func:`lsray.synth.visemes.viseme_track`, what the oracle draws), *bilabial* frames
   are those where a closure holds the oracle's lips shut, *labiodental* those where the upper
   teeth rest on the lower lip, *open vowel* those with the jaw well open; *closed* frames (the
   bilabial ones plus pauses) calibrate the measurement.
2. **How open a mouth is** (:func:`measure_mouths`): in the central columns of the known mouth
   box (:attr:`lsray.synth.face.FrameGeometry.mouth_box`), every pixel is read as a mix of two
   of four reference colours, skin, lip, interior and teeth (:class:`MouthPalette`, taken from
   the *oracle's own* frames, so a dark-skinned cartoon, a pale one and the photo are each
   judged against their own colours), after removing the frame's colour shift against the
   oracle (the VAE's tint). ``opening`` = the interior + teeth shares summed down each column,
   ``teeth`` = the teeth share, both averaged over the columns, as fractions of the box height.
   Shares of mixes add up under blur, so a blurred mouth measures as open as a sharp one.
3. **Per-class scores** (:func:`viseme_scores`), thresholds calibrated per clip on the oracle
   (:class:`MouthCalibration`): between the oracle's own closed mouth and its open vowels.

Shapes: frames (N, H, W, 3) RGB uint8, boxes (N, 4) or one (x0, y0, x1, y1), track (N, P).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lsray.synth.visemes import CLOSURE, OPEN, TEETH, mouth_opening

#: The oracle's lips touch when ``mouth_opening`` (open * (1 - closure)) is below this: a lip
#: gap of 0.34 * 0.025 = 0.0085 face units, where the renderer stops drawing an interior.
CLOSED_OPENING = 0.025
#: The f/v bite shows on a nearly shut mouth (the f/v viseme's own opening is 0.1).
NEAR_CLOSED_OPENING = 0.2
#: A viseme parameter "holds" (closure for /p b m/, teeth for /f v/, open for open vowels) from here.
HOLDS = 0.5
#: The central columns measured: this fraction of the mouth box's width around its centre
#: (the box is 1.04 face units wide; 0.2 of it is +-0.1 units, inside the narrowest mouth).
STRIP_WIDTH = 0.2
#: A mouth counts as closed below this fraction of the way from the oracle's closed level to its
#: open-vowel level (:class:`MouthCalibration`). The oracle's open vowels open ~0.2 face units,
#: so 0.15 of that is ~0.03 units (~2 px in a 256 crop): the lip gap of an /f/, the narrowest
#: the renderer draws short of shut. Oracles blurred with sigma 1-2 px still close on all their
#: bilabial frames; a mouth at the opening of /u/ or /i/ (0.07-0.085 units) is open.
CLOSED_FRACTION = 0.15
#: Teeth count as a bite above this fraction of the way from the oracle's closed-mouth teeth
#: level to its teeth level on labiodental frames.
BITE_FRACTION = 0.5


@dataclass(frozen=True)
class VisemeFrames:
    """Boolean (N,) masks of the frames each score looks at, from the oracle's viseme track."""

    bilabial: np.ndarray  # closure holds and the oracle's lips are shut
    labiodental: np.ndarray  # teeth on the lower lip (f, v) of a nearly shut mouth, no closure
    open_vowel: np.ndarray  # the jaw well open (a, ɛ, ɔ, aɪ ...), no closure or bite
    closed: np.ndarray  # the oracle's lips shut for any reason (bilabials, pauses): calibration

    @classmethod
    def from_track(cls, track: np.ndarray) -> "VisemeFrames":
        """``track``: (N, P) viseme parameters, e.g. ``viseme_track(speech.phonemes, duration, fps)``."""
        t = np.asarray(track, np.float32)
        shut = mouth_opening(t) < CLOSED_OPENING
        no_closure = t[:, CLOSURE] < HOLDS
        bite = (t[:, TEETH] >= HOLDS) & no_closure & (mouth_opening(t) <= NEAR_CLOSED_OPENING)
        return cls(bilabial=(t[:, CLOSURE] >= HOLDS) & shut, labiodental=bite,
                   open_vowel=(t[:, OPEN] >= HOLDS) & no_closure & ~bite, closed=shut)

    @classmethod
    def from_phonemes(cls, phonemes: Sequence, duration_s: float, fps: float = 25.0) -> "VisemeFrames":
        """From :class:`lsray.synth.PhonemeEvent` timings (as the oracle is rendered)."""
        from lsray.synth.visemes import viseme_track

        return cls.from_track(viseme_track(phonemes, duration_s, fps))

    def __len__(self) -> int:
        return len(self.closed)

    def head(self, n: int) -> "VisemeFrames":
        """The first ``n`` frames (an output shorter than its oracle)."""
        return VisemeFrames(self.bilabial[:n], self.labiodental[:n], self.open_vowel[:n], self.closed[:n])


# -- measurement ---------------------------------------------------------------------------------

def _boxes(boxes, n: int) -> np.ndarray:
    b = np.asarray(boxes, np.int64)
    return np.broadcast_to(b, (n, 4)) if b.ndim == 1 else b[:n]


#: The rows measured, as fractions of the mouth box's height (0.68 face units) from its top: the
#: inside of the mouth spans at most 0.123 units above the mouth centre to 0.184 below it (0.32
#: to 0.77 of the box); above and below are lips and skin, and at the top the nostrils.
STRIP_ROWS = (0.3, 0.8)


def _strip(frame: np.ndarray, box) -> np.ndarray:
    """(h, w, 3) float32: the mouth box's central columns, in the rows an opening can reach."""
    x0, y0, x1, y1 = (int(v) for v in box)
    half = max(1, int(round(STRIP_WIDTH * (x1 - x0) / 2)))
    cx = (x0 + x1) // 2
    top, bottom = (int(round(y0 + f * (y1 - y0))) for f in STRIP_ROWS)
    return frame[max(0, top):bottom, max(0, cx - half):cx + half + 1].astype(np.float32)


def _ring(frame: np.ndarray, box, width: int = 2) -> np.ndarray:
    """(k, 3) float32: the pixels along the mouth box's edge (skin around any mouth shape)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    c = frame[max(0, y0):y1, max(0, x0):x1].astype(np.float32)
    return np.concatenate([c[:width].reshape(-1, 3), c[-width:].reshape(-1, 3),
                           c[:, :width].reshape(-1, 3), c[:, -width:].reshape(-1, 3)])


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    return (rgb.max(-1) - rgb.min(-1)) / (rgb.max(-1) + 1.0)


def _to_segment(px: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of (..., 3) colours to the segment a-b and where along it (0 at a, 1 at b) they fall."""
    ab = b - a
    t = np.clip(((px - a) @ ab) / max(float(ab @ ab), 1e-6), 0.0, 1.0)
    return np.linalg.norm(px - (a + t[..., None] * ab), axis=-1), t


@dataclass(frozen=True)
class MouthPalette:
    """One clip's mouth colours, (4, 3) float32 RGB rows: skin, lip, interior, teeth.

    Taken from the oracle, so each face is judged against its own colours: skin on the mouth
    box's edge; interior as the darkest and teeth as the least saturated bright pixels of its
    most open frames; lip as the pixels of its closed frames least like either skin or the
    inside of a mouth.
    """

    colours: np.ndarray

    @classmethod
    def from_oracle(cls, frames: np.ndarray, boxes, track: np.ndarray) -> "MouthPalette":
        n = min(len(frames), len(track))
        bs = _boxes(boxes, n)
        skin = np.median(np.concatenate([_ring(frames[k], bs[k]) for k in range(0, n, max(1, n // 50))]), axis=0)
        opening = mouth_opening(np.asarray(track, np.float32)[:n])
        wide = np.argsort(-opening)[:3]  # the three most open frames: interior and teeth both show
        px = np.concatenate([_strip(frames[k], bs[k]).reshape(-1, 3) for k in wide])  # (k, 3)
        lum = _luma(px)
        interior = np.median(px[lum <= np.quantile(lum, 0.05)], axis=0)
        bright = px[lum >= np.median(lum)]
        sat = _saturation(bright)
        teeth = np.median(bright[sat <= np.quantile(sat, 0.1)], axis=0)
        shut = np.flatnonzero(opening < CLOSED_OPENING)
        shut = shut if len(shut) else np.argsort(opening)[: max(1, n // 10)]
        mid = np.concatenate([_strip(frames[k], bs[k]).reshape(-1, 3) for k in shut[:: max(1, len(shut) // 50)]])
        unlike = np.minimum(np.linalg.norm(mid - skin, axis=1), _to_segment(mid, interior, teeth)[0])
        lip = np.median(mid[unlike >= np.quantile(unlike, 0.7)], axis=0)
        return cls(np.stack([skin, lip, interior, teeth]).astype(np.float32))

    def shares(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) RGB -> (inside the mouth, teeth) shares in [0, 1], each (...,).

        Every pixel is read as a mix of two of the four colours (the nearest such mix: a point on
        one of the six segments between them); its inside share is the interior's plus the teeth's
        part of that mix, its teeth share the teeth's part. A blurred edge between two of them is
        a run of such mixes whose shares add up to what the sharp edge held, so blur moves no
        opening; a generated mouth whose inside is grey rather than black and white is still
        inside (grey lies between interior and teeth).
        """
        best = np.full(pixels.shape[:-1], np.inf, np.float32)
        inside = np.zeros(pixels.shape[:-1], np.float32)
        teeth = np.zeros(pixels.shape[:-1], np.float32)
        for a, b in _EDGES:
            d, t = _to_segment(pixels, self.colours[a], self.colours[b])
            nearer = d < best
            best = np.where(nearer, d, best)
            inside = np.where(nearer, (1 - t) * _INSIDE[a] + t * _INSIDE[b], inside)
            teeth = np.where(nearer, (1 - t) * (a == TEETH_ROW) + t * (b == TEETH_ROW), teeth)
        return inside, teeth


SKIN_ROW, LIP_ROW, INTERIOR_ROW, TEETH_ROW = range(4)
_INSIDE = (0.0, 0.0, 1.0, 1.0)  # the rows that are inside the mouth
_EDGES = [(a, b) for a in range(4) for b in range(a + 1, 4)]


@dataclass(frozen=True)
class MouthMeasure:
    """Per frame (N,): ``opening`` (interior + teeth) and ``teeth`` heights at the mouth's centre
    columns, as fractions of the mouth box height."""

    opening: np.ndarray
    teeth: np.ndarray


def measure_mouths(frames: np.ndarray, boxes, palette: MouthPalette, reference: np.ndarray | None = None) -> MouthMeasure:
    """How open each frame's mouth is. ``reference``: the oracle frames; each frame's colour shift
    against its oracle frame (median over the mouth box's edge) is removed before classifying."""
    n = len(frames) if reference is None else min(len(frames), len(reference))
    bs = _boxes(boxes, n)
    opening, teeth = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for k in range(n):
        s = _strip(frames[k], bs[k])  # (h, w, 3)
        if reference is not None:
            s = s - np.median(_ring(frames[k], bs[k]) - _ring(reference[k], bs[k]), axis=0)
        inside, white = palette.shares(s)  # (h, w) each
        h = max(1, int(bs[k][3] - bs[k][1]))
        opening[k] = inside.sum(0).mean() / h
        teeth[k] = white.sum(0).mean() / h
    return MouthMeasure(opening, teeth)


# -- scores --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MouthCalibration:
    """One clip's thresholds, from the oracle's own measurements.

    ``closed_level`` / ``open_level``: the oracle's median opening on its closed / open-vowel
    frames (a shut cartoon mouth still shows its dark lip line, the photo her teeth: that is the
    zero). A mouth is *closed* below ``closed_below``, :data:`CLOSED_FRACTION` of the way from
    one to the other; it *bites* when its teeth exceed ``bite_above``, :data:`BITE_FRACTION` of
    the way from the oracle's teeth on closed frames to its teeth on labiodental ones, while it
    is no more than half open. ``bite_above`` is None when the oracle itself fails that test on
    over a quarter of its labiodental frames (the photo draws no bite: her teeth always show).
    """

    closed_level: float
    open_level: float
    closed_below: float
    bite_above: float | None

    @classmethod
    def from_oracle(cls, m: MouthMeasure, visemes: VisemeFrames) -> "MouthCalibration":
        v = visemes.head(len(m.opening))
        rest = v.closed if v.closed.any() else m.opening <= np.quantile(m.opening, 0.1)
        wide = v.open_vowel if v.open_vowel.any() else m.opening >= np.quantile(m.opening, 0.9)
        closed, open_ = float(np.median(m.opening[rest])), float(np.median(m.opening[wide]))
        cal = cls(closed, open_, closed + CLOSED_FRACTION * max(open_ - closed, 0.0), None)
        if v.labiodental.any():
            t0, t1 = float(np.median(m.teeth[rest])), float(np.median(m.teeth[v.labiodental]))
            cal = cls(closed, open_, cal.closed_below, t0 + BITE_FRACTION * (t1 - t0))
            if t1 <= t0 or cal.bites(m)[v.labiodental].mean() < 0.75:
                cal = cls(closed, open_, cal.closed_below, None)
        return cal

    def closed(self, m: MouthMeasure) -> np.ndarray:
        """(N,) bool: the lips are shut."""
        return m.opening < self.closed_below

    def bites(self, m: MouthMeasure) -> np.ndarray:
        """(N,) bool: teeth on the lower lip of a mouth no more than half open."""
        if self.bite_above is None:
            return np.zeros(len(m.teeth), bool)
        return (m.teeth > self.bite_above) & (m.opening < 0.5 * (self.closed_level + self.open_level))


@dataclass(frozen=True)
class VisemeScores:
    """Per-class scores of one clip (None: no such frames, or the oracle shows no such feature)."""

    bilabial_hit: float | None  # fraction of bilabial frames with the lips shut
    labiodental_hit: float | None  # fraction of f/v frames with the bite
    open_vowel: float | None  # opening above closed on open vowels, mean, relative to the oracle's
    bilabial_frames: int = 0
    labiodental_frames: int = 0
    open_vowel_frames: int = 0


def score_measures(out: MouthMeasure, oracle: MouthMeasure, visemes: VisemeFrames) -> VisemeScores:
    """The per-class scores of ``out`` given the oracle's measurements of the same frames.

    ``open_vowel`` is a ratio of means, mean(out - closed) / mean(oracle - closed) over the
    open-vowel frames: 1 opens as wide as the oracle, < 1 under-articulates (the usual failure
    of a blurry mouth), > 1 over-opens. (A correlation over all frames would say more about
    timing, which oracle_lag and LSE already cover, and is undefined for a still mouth.)
    """
    n = min(len(out.opening), len(oracle.opening), len(visemes))
    out, oracle = MouthMeasure(out.opening[:n], out.teeth[:n]), MouthMeasure(oracle.opening[:n], oracle.teeth[:n])
    v = visemes.head(n)
    cal = MouthCalibration.from_oracle(oracle, v)
    bilabial = float(cal.closed(out)[v.bilabial].mean()) if v.bilabial.any() else None
    labio = float(cal.bites(out)[v.labiodental].mean()) if v.labiodental.any() and cal.bite_above is not None else None
    ov = None
    if v.open_vowel.any():
        ref = float(oracle.opening[v.open_vowel].mean()) - cal.closed_level
        ov = (float(out.opening[v.open_vowel].mean()) - cal.closed_level) / ref if ref > 0 else None
    return VisemeScores(bilabial, labio, ov, int(v.bilabial.sum()), int(v.labiodental.sum()), int(v.open_vowel.sum()))


def viseme_scores(output: np.ndarray, oracle: np.ndarray, boxes, track: np.ndarray) -> VisemeScores:
    """Per-class scores of ``output`` (N, H, W, 3) against ``oracle`` given the oracle's viseme
    ``track`` (N, P) and the mouth ``boxes`` (N, 4) or one box."""
    n = min(len(output), len(oracle), len(track))
    track = np.asarray(track, np.float32)[:n]
    palette = MouthPalette.from_oracle(oracle[:n], boxes, track)
    ref = measure_mouths(oracle[:n], boxes, palette)
    out = measure_mouths(output[:n], boxes, palette, reference=oracle[:n])
    return score_measures(out, ref, VisemeFrames.from_track(track))


#: Each score (a :class:`lsray.eval.ClipMetrics` field) and the field counting the frames it is over.
VISEME_METRICS: dict[str, str] = {"bilabial_hit": "bilabial_frames", "labiodental_hit": "labiodental_frames",
                                  "open_vowel": "open_vowel_frames"}


def pooled(clips: Iterable[Mapping[str, Any]], key: str) -> float | None:
    """``key`` over several clips' metrics (dicts of :data:`VISEME_METRICS` fields), each clip
    weighted by its frames of that class: the hit rate over all those frames together (the
    issue's goal is stated per frame), not a mean of per-clip rates over 1-5 frames each."""
    pairs = [(float(c[key]), int(c.get(VISEME_METRICS[key]) or 0)) for c in clips if c.get(key) is not None]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None
