"""A precomputed face track (JSON sidecar) used instead of detection.

Schema: {"frames": [{"index": i, "box": [x0, y0, x1, y1]} | {"index": i, "landmarks": [[x, y], ...]}]}
Landmarks may be 3 points ([image-left brow centre, image-right brow centre, nose centre],
LatentSync's alignment points), insightface's 106 (upstream's layout) or mediapipe's 468/478.
Box entries get their landmarks from the face mesh run inside the box (the detector never
runs); landmark entries need no model at all. Frames not listed have no face and pass through.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lsray.errors import LsrayError

from .detect import FaceBox, FaceLandmarker
from .landmarks import (
    SUPPORTED_LANDMARK_COUNTS,
    align_points,
    align_points_from_subset,
    mouth_open,
    mouth_open_from_subset,
    subset_from_mesh,
)
from .track import FaceTrack, TrackingResult


class SidecarError(LsrayError):
    """A face-track sidecar that is missing or does not follow the schema."""


class SidecarFrame(BaseModel):
    """One frame's face: a box or landmarks (exactly one)."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    box: tuple[float, float, float, float] | None = None
    landmarks: list[tuple[float, float]] | None = None

    @field_validator("box")
    @classmethod
    def _box_ordered(cls, v):
        if v is not None and not (v[2] > v[0] and v[3] > v[1]):
            raise ValueError("box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        return v

    @field_validator("landmarks")
    @classmethod
    def _layout(cls, v):
        if v is not None and len(v) not in SUPPORTED_LANDMARK_COUNTS:
            raise ValueError(f"landmarks must have one of {SUPPORTED_LANDMARK_COUNTS} points, got {len(v)}")
        return v

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.box is None) == (self.landmarks is None):
            raise ValueError("each frame needs exactly one of 'box' or 'landmarks'")
        return self


class FaceSidecar(BaseModel):
    """The whole sidecar: per-frame entries with unique indices."""

    model_config = ConfigDict(extra="forbid")

    frames: list[SidecarFrame]

    @field_validator("frames")
    @classmethod
    def _unique(cls, v):
        seen = [f.index for f in v]
        if len(seen) != len(set(seen)):
            raise ValueError("frame indices must be unique")
        return sorted(v, key=lambda f: f.index)


def load_sidecar(path: str | Path) -> FaceSidecar:
    path = Path(path)
    if not path.is_file():
        raise SidecarError(f"{path}: face-track sidecar not found")
    try:
        return FaceSidecar.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as e:
        raise SidecarError(f"{path}: not a valid face-track sidecar: {e}") from e


def _box_from_points(pts: np.ndarray, frame_shape: tuple[int, ...]) -> FaceBox:
    """A face box for landmark-only entries: 3 points span about 40% of a face's width."""
    if len(pts) > 3:
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
    else:
        c = pts.mean(0)
        half = 1.25 * float(np.linalg.norm(pts[1] - pts[0]))
        x0, y0, x1, y1 = c[0] - half, c[1] - half * 0.8, c[0] + half, c[1] + half * 1.2
    h, w = frame_shape[:2]
    return FaceBox(max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))


def track_from_sidecar(
    frames: Iterable[np.ndarray], sidecar: FaceSidecar, landmarker: FaceLandmarker | None = None
) -> TrackingResult:
    """A one-track `TrackingResult` from the sidecar (track id 0), streaming over the frames.

    Frames are still read so box entries can be meshed and the frame count is known; a box whose
    mesh fails counts as a no-face frame.
    """
    entries = {f.index: f for f in sidecar.frames}
    track = FaceTrack(track_id=0)
    no_face: list[int] = []
    shape = None
    n = 0
    for i, frame in enumerate(frames):
        n = i + 1
        shape = frame.shape[:2]
        entry = entries.get(i)
        if entry is None:
            no_face.append(i)
            continue
        if entry.landmarks is not None:
            pts = np.asarray(entry.landmarks, dtype=np.float64)
            track.append(i, _box_from_points(pts, frame.shape), align_points(pts), mouth_open(pts))
            continue
        if landmarker is None:
            landmarker = FaceLandmarker()
        box = FaceBox.from_array(entry.box)
        mesh = landmarker.landmarks(frame, box)
        if mesh is None:
            no_face.append(i)
            continue
        sub = subset_from_mesh(mesh)
        track.append(i, box, align_points_from_subset(sub), mouth_open_from_subset(sub))
    return TrackingResult(
        tracks=[track] if len(track) else [], num_frames=n, no_face_frames=no_face, detector_calls=0, frame_shape=shape
    )
