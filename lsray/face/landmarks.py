"""Landmark layouts and the few quantities lsray derives from them.

LatentSync aligns a face with three points: the centre of each eyebrow and the centre of the
nose (upstream takes them from insightface's 106-point layout). lsray detects with mediapipe's
face mesh (468/478 points) and keeps only a small subset of it per face: the points needed for
alignment and mouth opening plus a few rigid ones, which are also the points the optical-flow
tracker follows between keyframes. Keeping a subset (36 points, not 468) is what keeps the
per-track memory of a long video small.
"""

from __future__ import annotations

import numpy as np

# Mediapipe face-mesh indices. "Image-left" is the subject's right side (non-mirrored frame);
# LatentSync's template point 0 (x = 17 of 75) is on the image left, so order matters.
MESH_BROW_IMAGE_LEFT = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107)
MESH_BROW_IMAGE_RIGHT = (276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
# Mid-to-lower nose: on real faces their mean sits ~0.5 brow-distances below the brows, the
# ratio of LatentSync's template (20 units below for 41 units between the brows).
MESH_NOSE_CENTRE = (197, 195, 5, 4)
MESH_LIP_INNER_UPPER = 13
MESH_LIP_INNER_LOWER = 14
# Rigid-ish extra points that help the optical-flow box estimate: eye corners, cheeks, chin, brow top.
MESH_RIGID_EXTRA = (33, 133, 362, 263, 234, 454, 152, 10, 78, 308)

MESH_SUBSET: tuple[int, ...] = (
    MESH_BROW_IMAGE_LEFT
    + MESH_BROW_IMAGE_RIGHT
    + MESH_NOSE_CENTRE
    + (MESH_LIP_INNER_UPPER, MESH_LIP_INNER_LOWER)
    + MESH_RIGID_EXTRA
)
_BL = slice(0, 10)
_BR = slice(10, 20)
_NOSE = slice(20, 24)
_LIP_UP, _LIP_LO = 24, 25

# insightface 2d106 indices upstream LatentSync uses (image_processor.affine_transform).
INSIGHTFACE106_BROW_LEFT = (43, 48, 49, 51, 50)
INSIGHTFACE106_BROW_RIGHT = (101, 102, 103, 104, 105)
INSIGHTFACE106_NOSE = (74, 77, 83, 86)

SUPPORTED_LANDMARK_COUNTS = (3, 106, 468, 478)


def subset_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(468|478, 2) mediapipe mesh in pixels -> the (36, 2) tracked subset."""
    return np.asarray(mesh, dtype=np.float64)[list(MESH_SUBSET), :2]


def align_points_from_subset(subset: np.ndarray) -> np.ndarray:
    """(36, 2) subset -> (3, 2) [image-left brow, image-right brow, nose] centres."""
    return np.stack([subset[_BL].mean(0), subset[_BR].mean(0), subset[_NOSE].mean(0)])


def mouth_open_from_subset(subset: np.ndarray) -> float:
    """Inner-lip gap divided by the brow distance: a scale-free mouth opening."""
    brows = align_points_from_subset(subset)
    scale = float(np.linalg.norm(brows[1] - brows[0])) or 1.0
    return float(np.linalg.norm(subset[_LIP_LO] - subset[_LIP_UP])) / scale


def align_points(landmarks: np.ndarray) -> np.ndarray:
    """Any supported layout (3, 106, 468 or 478 points) -> the (3, 2) alignment points.

    3 points are taken as already being [image-left brow, image-right brow, nose centre];
    106 points follow upstream (insightface, rounded as upstream rounds them); 468/478 are a
    mediapipe mesh.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    n = len(pts)
    if n == 3:
        return pts.copy()
    if n == 106:
        return np.round(
            np.stack(
                [
                    pts[list(INSIGHTFACE106_BROW_LEFT)].mean(0),
                    pts[list(INSIGHTFACE106_BROW_RIGHT)].mean(0),
                    pts[list(INSIGHTFACE106_NOSE)].mean(0),
                ]
            )
        )
    if n in (468, 478):
        return align_points_from_subset(subset_from_mesh(pts))
    raise ValueError(f"unsupported landmark layout with {n} points (expected one of {SUPPORTED_LANDMARK_COUNTS})")


def mouth_open(landmarks: np.ndarray) -> float:
    """Mouth opening for layouts that have inner-lip points (mediapipe mesh); NaN otherwise."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if len(pts) in (468, 478):
        return mouth_open_from_subset(subset_from_mesh(pts))
    return float("nan")
