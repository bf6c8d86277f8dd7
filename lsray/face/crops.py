"""Aligned face crops of frames held in memory: the faces the demo's SyncNet scorer sees.

Tracking (mediapipe), the largest stable track, temporally smoothed template points and the
LatentSync alignment, as the pipeline's prepare and shard steps do them on a file (training
shards are made by those steps), so a sync score computed on these crops compares like with like
with what SyncNet trained on. Prepare follows a file's I420 planes where this follows RGB frames
in memory: the points agree to a fraction of a pixel and the crops to >= 33 dB
(``tests/test_train_data.py``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .align import FaceAligner, smooth_points
from .speaker import select_speaker
from .track import FaceTracker


def aligned_face_crops(
    frames: Sequence[np.ndarray], fps: float, resolution: int = 256, tracker: FaceTracker | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(crops (N, S, S, 3) uint8, frame indices (N,))`` of the largest face track; empty when
    no face is found. Points are smoothed over +-2 frames within contiguous runs."""
    result = (tracker or FaceTracker()).track(iter(frames))
    track = select_speaker(result.tracks, "largest", fps)
    if track is None or not len(track):
        return np.zeros((0, resolution, resolution, 3), np.uint8), np.zeros(0, int)
    indices = np.asarray(track.frame_indices, int)
    # float32 as the pipeline's plan keeps them: the same points align as the shard step aligns them
    points = smooth_points(track.points_array(), track.frame_indices, 2).astype(np.float32)
    aligner = FaceAligner(resolution, smoothing_radius=0)
    crops = np.stack([aligner.align_frame(frames[i], p.astype(np.float64), i).crop for i, p in zip(indices, points)])
    return crops, indices
