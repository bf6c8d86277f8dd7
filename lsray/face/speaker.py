"""Which face track is the one to re-voice: `largest`, `auto`, or `X,Y@T`.

- `largest` (default): among "stable" tracks (at least half as long as the longest track),
  the one with the largest median box area. Length first keeps a face that flashes by large
  from beating the person who is on screen all along.
- `auto`: the active speaker. For each track long enough (>= 8 frames) the per-frame mouth
  opening is correlated (Pearson) with the source audio's energy envelope sampled at the same
  frames; the highest correlation wins. With no usable envelope or no long-enough track it
  falls back to `largest`.
- `X,Y@T`: the track whose box contains pixel (X, Y) in the frame at T seconds (frame
  round(T * fps)); if no track is present on exactly that frame, the nearest frame within half
  a second counts. Several candidates -> the smallest box (the most specific one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lsray.errors import LsrayError

from .track import FaceTrack


class SpeakerSpecError(LsrayError, ValueError):
    """A speaker selection string that cannot be parsed."""


class SpeakerNotFoundError(LsrayError):
    """A point-in-time speaker spec that no face track matches."""


@dataclass(frozen=True)
class SpeakerSpec:
    """A parsed speaker selection."""

    kind: Literal["largest", "auto", "point"]
    x: float = 0.0
    y: float = 0.0
    t: float = 0.0

    def __str__(self) -> str:
        return f"{self.x:g},{self.y:g}@{self.t:g}" if self.kind == "point" else self.kind


_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_POINT = re.compile(rf"^\s*({_NUM})\s*,\s*({_NUM})\s*@\s*({_NUM})\s*s?\s*$")


def parse_speaker_spec(spec: str | SpeakerSpec | None) -> SpeakerSpec:
    """'largest' | 'auto' | 'X,Y@T' (pixels, seconds) -> SpeakerSpec; None means 'largest'."""
    if isinstance(spec, SpeakerSpec):
        return spec
    if spec is None:
        return SpeakerSpec("largest")
    if not isinstance(spec, str):
        raise SpeakerSpecError(f"speaker spec must be a string, got {type(spec).__name__}")
    s = spec.strip().lower()
    if s in ("largest", "auto"):
        return SpeakerSpec(s)  # type: ignore[arg-type]
    m = _POINT.match(s)
    if m is None:
        raise SpeakerSpecError(
            f"bad speaker spec {spec!r}: expected 'largest', 'auto' or 'X,Y@T' "
            "(pixel X, Y in the frame at T seconds, e.g. '640,360@2.5')"
        )
    x, y, t = (float(v) for v in m.groups())
    if x < 0 or y < 0 or t < 0:
        raise SpeakerSpecError(f"bad speaker spec {spec!r}: X, Y and T must be >= 0")
    return SpeakerSpec("point", x, y, t)


def select_largest(tracks: list[FaceTrack]) -> FaceTrack | None:
    if not tracks:
        return None
    longest = max(len(t) for t in tracks)
    stable = [t for t in tracks if len(t) * 2 >= longest]
    return max(stable, key=lambda t: (t.median_area(), len(t)))


def speaking_score(track: FaceTrack, envelope: np.ndarray) -> float:
    """Pearson correlation of mouth opening with the audio envelope over the track's frames."""
    idx = np.asarray(track.frame_indices)
    ok = idx < len(envelope)
    mouth = np.asarray(track.mouth_open)[ok]
    env = np.asarray(envelope, dtype=np.float64)[idx[ok]]
    finite = np.isfinite(mouth) & np.isfinite(env)
    mouth, env = mouth[finite], env[finite]
    if len(mouth) < 8 or mouth.std() < 1e-9 or env.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(mouth, env)[0, 1])


def select_auto(tracks: list[FaceTrack], envelope: np.ndarray | None) -> FaceTrack | None:
    if envelope is None or not tracks:
        return select_largest(tracks)
    scored = [(speaking_score(t, envelope), t) for t in tracks]
    scored = [(s, t) for s, t in scored if np.isfinite(s)]
    if not scored:
        return select_largest(tracks)
    return max(scored, key=lambda st: (st[0], len(st[1])))[1]


def select_at_point(tracks: list[FaceTrack], x: float, y: float, t: float, fps: float,
                    scale: tuple[float, float] = (1.0, 1.0)) -> FaceTrack:
    """The track whose box holds source pixel (x, y) nearest time t; ``scale``: the tracks'
    pixels per source pixel (tracking ran on downscaled frames)."""
    frame = int(round(t * fps))
    tx, ty = x * scale[0], y * scale[1]
    window = max(1, int(round(fps / 2)))
    best: tuple[int, float, FaceTrack] | None = None
    for track in tracks:
        for d in range(window + 1):
            hits = [b for b in (track.box_at(frame - d), track.box_at(frame + d)) if b is not None and b.contains(tx, ty)]
            if hits:
                key = (d, hits[0].area, track)
                if best is None or key[:2] < best[:2]:
                    best = key
                break
    if best is None:
        raise SpeakerNotFoundError(
            f"no face contains pixel ({x:g}, {y:g}) at {t:g} s (frame {frame}, +-{window} frames); "
            f"{len(tracks)} face track(s) in the clip"
        )
    return best[2]


def select_speaker(
    tracks: list[FaceTrack],
    spec: str | SpeakerSpec | None = "largest",
    fps: float = 25.0,
    audio_envelope: np.ndarray | None = None,
    scale: tuple[float, float] = (1.0, 1.0),
) -> FaceTrack | None:
    """The track to lip-sync, or None when the clip has no face (every frame then passes through).

    audio_envelope: the source audio's energy sampled at the frame times (one value per frame),
    only used by `auto`. scale: the tracks' pixels per source pixel (a point spec names source pixels).
    """
    s = parse_speaker_spec(spec)
    if s.kind == "largest":
        return select_largest(tracks)
    if s.kind == "auto":
        return select_auto(tracks, audio_envelope)
    return select_at_point(tracks, s.x, s.y, s.t, fps, scale)
