"""Face tracks over a frame stream: detect on keyframes, follow with optical flow in between.

Choice (documented here because the spec leaves it open): between keyframes each live track's
36 landmark points (`landmarks.MESH_SUBSET`) are followed with pyramidal Lucas-Kanade optical
flow, and the box moves by the similarity transform fitted to the point motion. This is causal
(no look-ahead buffer, unlike interpolating between keyframes), so memory stays bounded by one
previous grey frame plus a few points per face, and it follows the lips, which the `auto`
speaker selection needs. Every K-th frame the detector and the face mesh run again; fresh
detections are linked to the flow-propagated tracks by IoU (greedy, highest IoU first), which
re-anchors drift. Unmatched detections start new tracks; tracks that find no detection on a
keyframe, or lose too many flow points, end.

Frames are never kept: a `FaceTrack` holds per-frame boxes, the 3 alignment points and a
mouth-opening value, about 100 bytes per face per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import cv2
import numpy as np

from .detect import FaceBox, FaceDetector, FaceLandmarker
from .landmarks import align_points_from_subset, mouth_open_from_subset, subset_from_mesh


@dataclass
class FaceTrack:
    """One face followed over consecutive frames (gaps end a track)."""

    track_id: int
    frame_indices: list[int] = field(default_factory=list)
    boxes: list[FaceBox] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)  # each (3, 2): alignment points
    mouth_open: list[float] = field(default_factory=list)

    def append(self, index: int, box: FaceBox, points: np.ndarray, mouth: float) -> None:
        self.frame_indices.append(index)
        self.boxes.append(box)
        self.points.append(np.asarray(points, dtype=np.float64))
        self.mouth_open.append(float(mouth))

    def __len__(self) -> int:
        return len(self.frame_indices)

    @property
    def first(self) -> int:
        return self.frame_indices[0]

    @property
    def last(self) -> int:
        return self.frame_indices[-1]

    def position(self, frame_index: int) -> int | None:
        """Row of `frame_index` in this track's per-frame lists, or None if absent."""
        if not self.frame_indices or not self.first <= frame_index <= self.last:
            return None
        # Tracks built here are contiguous; sidecar tracks may have gaps, so search.
        pos = frame_index - self.first
        if pos < len(self) and self.frame_indices[pos] == frame_index:
            return pos
        i = int(np.searchsorted(self.frame_indices, frame_index))
        return i if i < len(self) and self.frame_indices[i] == frame_index else None

    def box_at(self, frame_index: int) -> FaceBox | None:
        pos = self.position(frame_index)
        return None if pos is None else self.boxes[pos]

    def points_at(self, frame_index: int) -> np.ndarray | None:
        pos = self.position(frame_index)
        return None if pos is None else self.points[pos]

    def median_area(self) -> float:
        return float(np.median([b.area for b in self.boxes])) if self.boxes else 0.0

    def points_array(self) -> np.ndarray:
        """(N, 3, 2) alignment points over the track."""
        return np.stack(self.points) if self.points else np.zeros((0, 3, 2))


@dataclass
class TrackingResult:
    """What a pass over a clip found: every face track, plus frame bookkeeping."""

    tracks: list[FaceTrack]
    num_frames: int
    no_face_frames: list[int]
    detector_calls: int
    frame_shape: tuple[int, int] | None = None

    @property
    def num_no_face(self) -> int:
        return len(self.no_face_frames)


@dataclass
class _Live:
    """A track being followed: its record plus the flow state for the next frame."""

    track: FaceTrack
    box: FaceBox
    subset: np.ndarray  # (36, 2) float32 points followed by optical flow


_LK_PARAMS = dict(
    winSize=(21, 21),
    maxLevel=3,
    criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
)

#: The flow reads only the points' bounding box plus this margin (whole frame pixels), cut at a
#: multiple of ``_PYRAMID_STEP`` so every pyramid level samples the same pixels as the whole
#: frame's. The margin covers the search window's reach at the coarsest level (10 px x 8) twice
#: over, so the result is the whole frame's (tested) at a fraction of its pyramid-building cost.
_PYRAMID_STEP = 2 ** _LK_PARAMS["maxLevel"]
_FLOW_MARGIN = 2 * (_LK_PARAMS["winSize"][0] // 2) * _PYRAMID_STEP


def _flow_region(points: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the frame the flow of ``points`` (N, 2) needs to read."""
    h, w = shape
    lo = np.floor(points.min(axis=0)) - _FLOW_MARGIN
    hi = np.ceil(points.max(axis=0)) + _FLOW_MARGIN
    x0, y0 = (max(0, int(v) // _PYRAMID_STEP * _PYRAMID_STEP) for v in lo)
    return x0, y0, min(w, max(x0 + 1, int(hi[0]))), min(h, max(y0 + 1, int(hi[1])))


def _move_box(box: FaceBox, m: np.ndarray, shape: tuple[int, int]) -> FaceBox:
    """Moves the box centre by `m` and scales it by m's scale; rotation is ignored on purpose
    (the axis-aligned hull of a rotated box would inflate a little on every frame)."""
    cx, cy = m @ np.array([*box.centre, 1.0])
    s = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    hw, hh = box.width * s / 2.0, box.height * s / 2.0
    h, w = shape
    return FaceBox(max(0.0, cx - hw), max(0.0, cy - hh), min(float(w), cx + hw), min(float(h), cy + hh), box.score)


def _same_place(a: FaceBox, b: FaceBox) -> bool:
    """Boxes of one person before and after a gap: overlapping, or centres within half a face."""
    (ax, ay), (bx, by) = a.centre, b.centre
    return a.iou(b) > 0.3 or np.hypot(ax - bx, ay - by) < 0.5 * max(a.width, b.width)


def link_across_gaps(tracks: list[FaceTrack]) -> list[FaceTrack]:
    """Join tracks of the same face separated by frames without it (a cut away, a hand, a turn).

    A track that starts after another has ended, at the place that one was last seen, continues
    it; so the speaker chosen for a clip keeps its face after every gap. Track ids are renumbered.
    """
    chains: list[FaceTrack] = []
    for t in sorted(tracks, key=lambda t: t.first):
        host = next(
            (c for c in chains if c.last < t.first and _same_place(c.boxes[-1], t.boxes[0])), None
        )
        if host is None:
            chains.append(t)
            continue
        for k, idx in enumerate(t.frame_indices):
            host.append(idx, t.boxes[k], t.points[k], t.mouth_open[k])
    for k, c in enumerate(chains):
        c.track_id = k
    return chains


class FaceTracker:
    """Builds `FaceTrack`s from a stream of RGB frames.

    keyframe_interval: run the detector + mesh every K frames (K=1: every frame).
    iou_threshold: minimum IoU to link a keyframe detection to a live track.
    min_flow_points: a track whose optical flow keeps fewer points than this ends.
    """

    def __init__(
        self,
        detector: FaceDetector | None = None,
        landmarker: FaceLandmarker | None = None,
        keyframe_interval: int = 5,
        iou_threshold: float = 0.3,
        min_flow_points: int = 12,
        max_faces: int = 8,
    ) -> None:
        if keyframe_interval < 1:
            raise ValueError("keyframe_interval must be >= 1")
        self.detector = detector or FaceDetector()
        self.landmarker = landmarker or FaceLandmarker()
        self.keyframe_interval = keyframe_interval
        self.iou_threshold = iou_threshold
        self.min_flow_points = min_flow_points
        self.max_faces = max_faces

    def _observe(self, frame: np.ndarray) -> list[tuple[FaceBox, np.ndarray]]:
        """Keyframe: detector boxes, each with its mesh subset; faces without a mesh are dropped."""
        found = []
        for box in self.detector.detect(frame)[: self.max_faces]:
            mesh = self.landmarker.landmarks(frame, box)
            if mesh is not None:
                found.append((box, subset_from_mesh(mesh).astype(np.float32)))
        return found

    def _flow(self, live: _Live, prev_gray: np.ndarray, gray: np.ndarray) -> bool:
        """Moves one live track to the current frame; False if the flow lost it."""
        x0, y0, x1, y1 = _flow_region(live.subset, gray.shape[:2])
        a, b = prev_gray[y0:y1, x0:x1], gray[y0:y1, x0:x1]
        origin = np.array([x0, y0], np.float32)
        q0 = (live.subset - origin).reshape(-1, 1, 2)  # region pixels
        q1, status, _ = cv2.calcOpticalFlowPyrLK(a, b, q0, None, **_LK_PARAMS)
        if q1 is None:
            return False
        # Forward-backward check: a point that does not come back to where it started is noise.
        q0r, status_b, _ = cv2.calcOpticalFlowPyrLK(b, a, q1, None, **_LK_PARAMS)
        fb = np.linalg.norm((q0r - q0).reshape(-1, 2), axis=1)
        p0, p1 = live.subset.reshape(-1, 1, 2), q1 + origin  # frame pixels
        good = (status.ravel() == 1) & (status_b.ravel() == 1) & (fb < 1.0)
        if good.sum() < self.min_flow_points:
            return False
        m, _ = cv2.estimateAffinePartial2D(p0[good], p1[good], method=cv2.LMEDS)
        if m is None:
            return False
        new = p1.reshape(-1, 2).copy()
        bad = ~good
        if bad.any():  # points the flow lost move with the face's overall motion
            new[bad] = (np.c_[live.subset[bad], np.ones(bad.sum())] @ m.T).astype(np.float32)
        live.subset = new.astype(np.float32)
        live.box = _move_box(live.box, m, gray.shape[:2])
        return live.box.area > 0

    def track(
        self, frames: Iterable[np.ndarray], to_rgb: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> TrackingResult:
        """One pass over the stream; frames are dropped as soon as the next one arrives.

        ``frames`` are (H, W, 3) RGB; or, with ``to_rgb``, (3H/2, W) I420 planes: the flow follows
        their Y plane and ``to_rgb`` makes RGB only of the frames the detector and mesh see (every
        K-th, or each one while no face is followed). Decoding to planes skips ffmpeg's RGB
        conversion of every frame, about half of a 1080p clip's tracking cost.
        """
        tracks: list[FaceTrack] = []
        live: list[_Live] = []
        no_face: list[int] = []
        prev_gray = None
        shape = None
        calls_before = self.detector.calls
        n = 0
        for i, frame in enumerate(frames):
            n = i + 1
            if to_rgb is None:
                gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            else:
                gray = frame[: frame.shape[0] * 2 // 3]  # the Y plane, (H, W)
            shape = gray.shape
            if prev_gray is not None and prev_gray.shape == gray.shape:
                live = [lv for lv in live if self._flow(lv, prev_gray, gray)]
            else:
                live = []
            if i % self.keyframe_interval == 0 or not live:  # search every frame while nothing is followed
                live = self._link(live, self._observe(frame if to_rgb is None else to_rgb(frame)), tracks)
            for lv in live:
                pts = align_points_from_subset(lv.subset.astype(np.float64))
                lv.track.append(i, lv.box, pts, mouth_open_from_subset(lv.subset.astype(np.float64)))
            if not live:
                no_face.append(i)
            prev_gray = gray
        return TrackingResult(
            tracks=link_across_gaps([t for t in tracks if len(t)]),
            num_frames=n,
            no_face_frames=no_face,
            detector_calls=self.detector.calls - calls_before,
            frame_shape=shape,
        )

    def _link(
        self, live: list[_Live], found: list[tuple[FaceBox, np.ndarray]], tracks: list[FaceTrack]
    ) -> list[_Live]:
        """IoU-links keyframe detections to live tracks (greedy by IoU); others start tracks."""
        pairs = sorted(
            ((lv.box.iou(box), li, di) for li, lv in enumerate(live) for di, (box, _) in enumerate(found)),
            reverse=True,
        )
        used_l: set[int] = set()
        used_d: set[int] = set()
        kept: list[_Live] = []
        for iou, li, di in pairs:
            if iou < self.iou_threshold or li in used_l or di in used_d:
                continue
            used_l.add(li)
            used_d.add(di)
            lv = live[li]
            lv.box, lv.subset = found[di]
            kept.append(lv)
        for di, (box, subset) in enumerate(found):
            if di not in used_d:
                t = FaceTrack(track_id=len(tracks))
                tracks.append(t)
                kept.append(_Live(t, box, subset))
        return kept
