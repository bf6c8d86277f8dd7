"""Face detection (mediapipe BlazeFace) and face-mesh landmarks, one frame at a time.

Both models ship inside mediapipe 0.10.14 (`mp.solutions`), so nothing is downloaded. The
detector is only run on keyframes (see `track.py`); it counts its calls so callers and tests can
check that. Frames are RGB uint8 (H, W, 3), as mediapipe expects. A graph's construction and
first run print TF-Lite / absl notes on file descriptor 2; they run inside
:func:`lsray.console.quiet_native_stderr`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsray.console import quiet_native_stderr


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face box in frame pixels (x0, y0 inclusive; x1, y1 exclusive)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        return max(0.0, self.y1 - self.y0)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)

    def as_array(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)

    @classmethod
    def from_array(cls, xyxy: np.ndarray | list[float], score: float = 1.0) -> "FaceBox":
        x0, y0, x1, y1 = (float(v) for v in xyxy)
        return cls(x0, y0, x1, y1, score)

    def iou(self, other: "FaceBox") -> float:
        """Intersection over union: how trackers decide two boxes are the same face."""
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1

    def square_crop(self, scale: float, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Integer square window `scale` times the box's larger side, clipped to the frame."""
        cx, cy = self.centre
        half = max(self.width, self.height) * scale / 2.0
        h, w = frame_shape[:2]
        x0, y0 = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
        x1, y1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
        return x0, y0, x1, y1


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
    return np.ascontiguousarray(frame)


def _process(owner: "FaceDetector | FaceLandmarker", image: np.ndarray):
    """``owner``'s mediapipe graph run on ``image``; its construction and first run (where the
    native start-up notes are printed) happen with fd 2 silenced."""
    if owner._model is not None and owner._warm:
        return owner._model.process(image)
    with quiet_native_stderr():
        result = owner._get().process(image)
    owner._warm = True
    return result


class FaceDetector:
    """mediapipe face detection returning every face in a frame as a `FaceBox`.

    `model_selection=1` (full range, 192x192 input) is the default because dubbing footage often
    has faces well under a fifth of the frame, which the short-range model (0) misses: on a
    two-face test frame the short-range model found only the larger face.
    """

    def __init__(self, model_selection: int = 1, min_confidence: float = 0.5) -> None:
        self.model_selection = model_selection
        self.min_confidence = min_confidence
        self.calls = 0  # how many frames were run through the detector
        self._model = None
        self._warm = False  # the graph has run once (its start-up notes are printed)

    def _get(self):
        if self._model is None:
            import mediapipe as mp

            self._model = mp.solutions.face_detection.FaceDetection(
                model_selection=self.model_selection, min_detection_confidence=self.min_confidence
            )
        return self._model

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        """All faces in the frame, largest first; an empty list when there is none."""
        frame = _check_frame(frame)
        self.calls += 1
        h, w = frame.shape[:2]
        result = _process(self, frame)
        boxes = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            x0, y0 = max(0.0, rb.xmin * w), max(0.0, rb.ymin * h)
            x1, y1 = min(float(w), (rb.xmin + rb.width) * w), min(float(h), (rb.ymin + rb.height) * h)
            box = FaceBox(x0, y0, x1, y1, float(det.score[0]))
            if box.area > 0:
                boxes.append(box)
        return sorted(boxes, key=lambda b: -b.area)

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
            self._warm = False

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FaceLandmarker:
    """mediapipe face mesh run on a square window around one face box.

    Running the mesh per box (not on the whole frame) ties the landmarks to a given detection,
    which is what makes several faces in one frame unambiguous.
    """

    def __init__(self, crop_scale: float = 1.8, min_confidence: float = 0.5) -> None:
        self.crop_scale = crop_scale
        self.min_confidence = min_confidence
        self.calls = 0
        self._model = None
        self._warm = False

    def _get(self):
        if self._model is None:
            import mediapipe as mp

            self._model = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=False,
                min_detection_confidence=self.min_confidence,
            )
        return self._model

    def landmarks(self, frame: np.ndarray, box: FaceBox) -> np.ndarray | None:
        """(468, 2) mesh points in frame pixels for the face in `box`, or None if not found."""
        frame = _check_frame(frame)
        self.calls += 1
        x0, y0, x1, y1 = box.square_crop(self.crop_scale, frame.shape)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
        result = _process(self, crop)
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        pts = np.array([[p.x, p.y] for p in lm], dtype=np.float64)
        pts[:, 0] = pts[:, 0] * (x1 - x0) + x0
        pts[:, 1] = pts[:, 1] * (y1 - y0) + y0
        return pts

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
            self._warm = False

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
