"""Faces for lip-sync: detect, track, pick the speaker, align to LatentSync's template, paste back.

Two passes over a clip's frame stream keep memory bounded by one frame:
1. `FaceTracker.track(frames)` (or `track_from_sidecar`) -> `TrackingResult` with `FaceTrack`s;
2. `select_speaker(result.tracks, spec, fps, envelope)` picks one track;
3. `FaceAligner.align_track(frames, track)` yields `FrameFace`s (an `AlignedFace` or None);
4. `FaceBlender.paste(frame, generated_crop, face.affine)` puts the generated crop back.
No Ray here.
"""

from .align import (
    AlignedFace,
    FaceAligner,
    FrameFace,
    alignment_affine,
    read_box,
    similarity_transform,
    smooth_points,
    template_points,
    upstream_face_size,
)
from .blend import FaceBlender, feathered_alpha
from .crops import aligned_face_crops
from .detect import FaceBox, FaceDetector, FaceLandmarker
from .landmarks import align_points, mouth_open
from .mask import load_inpaint_mask, regenerated_region
from .sidecar import FaceSidecar, SidecarError, SidecarFrame, load_sidecar, track_from_sidecar
from .speaker import (
    SpeakerNotFoundError,
    SpeakerSpec,
    SpeakerSpecError,
    parse_speaker_spec,
    select_speaker,
    speaking_score,
)
from .track import FaceTrack, FaceTracker, TrackingResult

__all__ = [
    "aligned_face_crops",
    "AlignedFace",
    "FaceAligner",
    "FaceBlender",
    "FaceBox",
    "FaceDetector",
    "FaceLandmarker",
    "FaceSidecar",
    "FaceTrack",
    "FaceTracker",
    "FrameFace",
    "SidecarError",
    "SidecarFrame",
    "SpeakerNotFoundError",
    "SpeakerSpec",
    "SpeakerSpecError",
    "TrackingResult",
    "align_points",
    "alignment_affine",
    "read_box",
    "feathered_alpha",
    "load_inpaint_mask",
    "load_sidecar",
    "mouth_open",
    "parse_speaker_spec",
    "regenerated_region",
    "select_speaker",
    "similarity_transform",
    "smooth_points",
    "speaking_score",
    "template_points",
    "track_from_sidecar",
    "upstream_face_size",
]
