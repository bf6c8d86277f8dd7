"""One clip's metrics in one call, and their aggregate over a test set.

:func:`evaluate_clip` computes whatever its inputs allow: with an oracle video, mouth PSNR /
SSIM and oracle-relative flicker and boundary jumps; with audio and a sync scorer, LSE-C / LSE-D;
with a reference voice, speaker similarity (resemblyzer, :mod:`lsray.voice.similarity`); with the
oracle's viseme track, per-viseme-class scores (:mod:`lsray.eval.visemes`); always identity drift. Missing metrics stay ``None``. Videos are paths (decoded with
:func:`lsray.media.iter_frames`) or frame arrays; audio is a path (read at 16 kHz) or
``(samples, sample_rate)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from lsray.eval import video as vm
from lsray.eval.lse import SyncScorer, lse
from lsray.eval.visemes import VISEME_METRICS, pooled, viseme_scores

METRICS = ("mouth_psnr", "mouth_ssim", "mouth_sharpness", "oracle_lag", "flicker", "boundary_jump", "identity_drift",
           "lse_c", "lse_d", "av_offset", "speaker_similarity", *VISEME_METRICS)


class ClipMetrics(BaseModel):
    """Metrics of one output clip (``None``: not computable from what was given)."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    frames: int = 0
    mouth_psnr: float | None = None  # dB vs the oracle (inf when identical)
    mouth_ssim: float | None = None
    mouth_sharpness: float | None = None  # Laplacian energy of the mouth over the oracle's (1 = as sharp)
    oracle_lag: int | None = None  # frames; 0 = the mouth moves in step with the oracle's
    flicker: float | None = None  # 0-255 units of extra frame-to-frame change
    boundary_jump: float | None = None  # ratio, ~1 = seamless
    identity_drift: float | None = None  # cosine distance, 0 = same face
    lse_c: float | None = None
    lse_d: float | None = None
    av_offset: int | None = None
    speaker_similarity: float | None = None
    # per viseme class, given the oracle's viseme track (lsray.eval.visemes); None without one
    bilabial_hit: float | None = None  # fraction of /p b m/ frames with the lips shut (oracle: 1)
    labiodental_hit: float | None = None  # fraction of /f v/ frames with teeth on the lower lip
    open_vowel: float | None = None  # opening on open vowels relative to the oracle's (1 = as wide)
    bilabial_frames: int | None = None
    labiodental_frames: int | None = None
    open_vowel_frames: int | None = None


FrameSource = str | Path | np.ndarray | Sequence[np.ndarray]
AudioSource = str | Path | tuple[np.ndarray, int]


def load_frames(src: FrameSource) -> np.ndarray:
    if isinstance(src, (str, Path)):
        from lsray.media import iter_frames

        return np.stack([np.asarray(getattr(f, "rgb", f)) for f in iter_frames(src)])
    return np.asarray(src) if not isinstance(src, np.ndarray) else src


def load_audio_16k(src: AudioSource) -> np.ndarray:
    if isinstance(src, (str, Path)):
        from lsray.media import read_audio_16k

        return np.asarray(read_audio_16k(src), np.float32)
    samples, sr = src
    samples = np.asarray(samples, np.float32)
    if samples.ndim > 1:
        samples = samples.mean(axis=-1 if samples.shape[-1] <= 8 else 0)
    if int(sr) == 16000:
        return samples
    import librosa

    return librosa.resample(samples, orig_sr=int(sr), target_sr=16000).astype(np.float32)


def evaluate_clip(
    output_video: FrameSource,
    oracle_video: FrameSource | None = None,
    audio: AudioSource | None = None,
    *,
    name: str = "",
    fps: float = 25.0,
    mouth_boxes=None,
    face_boxes=None,
    window: int = 16,
    segment_starts: Sequence[int] = (),
    sync_scorer: SyncScorer | None = None,
    vshift: int = 15,
    reference_voice: AudioSource | None = None,
    visemes: np.ndarray | None = None,
) -> ClipMetrics:
    """Everything computable about one clip.

    ``mouth_boxes`` / ``face_boxes``: one (x0, y0, x1, y1) or one per frame (the synthetic world's
    ``talking_head_geometry``); without them the frames are taken as aligned face crops. LSE
    crops ``face_boxes`` (square) for the scorer. ``window`` / ``segment_starts`` locate the
    boundaries for the jump metric. ``reference_voice``: the voice the output audio should have.
    ``visemes``: the (frames, P) viseme track the oracle was drawn from (``viseme_track`` of the
    dub's phonemes), for the per-class scores; they need the oracle too.
    """
    out = load_frames(output_video)
    ref = load_frames(oracle_video) if oracle_video is not None else None
    m = ClipMetrics(name=name, frames=len(out))
    if ref is not None:
        n = min(len(out), len(ref))
        mb = mouth_boxes if mouth_boxes is None or np.isscalar(mouth_boxes[0]) else mouth_boxes[:n]
        m.mouth_psnr = vm.mouth_psnr(out[:n], ref[:n], mb)
        m.mouth_ssim = vm.mouth_ssim(out[:n], ref[:n], mb)
        sharp = vm.mouth_sharpness(out[:n], ref[:n], mb)
        m.mouth_sharpness = None if math.isnan(sharp) else sharp
        if n > 2 * vm.ORACLE_MAX_LAG:
            m.oracle_lag = vm.oracle_lag(out[:n], ref[:n], mb)
        if visemes is not None:
            scores = viseme_scores(out[:n], ref[:n], vm._boxes(mouth_boxes, n, out[0].shape), visemes)
            for key, frames in VISEME_METRICS.items():
                setattr(m, key, getattr(scores, key))
                setattr(m, frames, getattr(scores, frames))
    m.flicker = vm.flicker(out, ref, mouth_boxes)
    jump = vm.boundary_jump(out, ref, mouth_boxes, window, segment_starts)
    m.boundary_jump = None if math.isnan(jump) else jump
    m.identity_drift = vm.identity_drift(out, face_boxes, mouth_boxes, every=max(1, len(out) // 25))
    wav = load_audio_16k(audio) if audio is not None else None
    if wav is not None and sync_scorer is not None:
        faces = face_crops(out, face_boxes)
        r = lse(sync_scorer, faces, wav, fps, vshift)
        m.lse_c, m.lse_d, m.av_offset = r.lse_c, r.lse_d, r.offset
    if wav is not None and reference_voice is not None:
        from lsray.voice.similarity import speaker_similarity

        m.speaker_similarity = speaker_similarity(wav, 16000, load_audio_16k(reference_voice), 16000)
    return m


def square_box(box) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1), in whole pixels, around a box's centre with its longer side;
    it may reach past the frame (callers pad or clip)."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
    return int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half))


def face_crops(frames: np.ndarray, face_boxes=None) -> np.ndarray:
    """Square crops around each face box (the whole frames when no boxes), at the first crop's size."""
    if face_boxes is None:
        return np.asarray(frames)
    import cv2

    boxes = vm._boxes(face_boxes, len(frames), frames[0].shape)
    out, size = [], None
    for f, box in zip(frames, boxes):
        sq = square_box(box)
        pad = max(0, -sq[0], -sq[1], sq[2] - f.shape[1], sq[3] - f.shape[0])
        fp = np.pad(f, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else f
        c = fp[sq[1] + pad : sq[3] + pad, sq[0] + pad : sq[2] + pad]
        size = size or (c.shape[1], c.shape[0])
        out.append(cv2.resize(c, size, interpolation=cv2.INTER_AREA) if (c.shape[1], c.shape[0]) != size else c)
    return np.stack(out)


def aggregate(clips: Sequence[ClipMetrics]) -> dict[str, float | int | None]:
    """Mean of every metric over the clips that have it (non-finite values, e.g. an infinite
    PSNR of a perfect clip, are left out of the mean; ``<metric>_n`` counts the clips used); the
    viseme scores are over all their frames together (:func:`lsray.eval.visemes.pooled`), with
    ``<frames field>`` the frame total."""
    agg: dict[str, float | int | None] = {"clips": len(clips), "frames": int(sum(c.frames for c in clips))}
    for key in METRICS:
        vals = [getattr(c, key) for c in clips if getattr(c, key) is not None]
        finite = [float(v) for v in vals if math.isfinite(float(v))]
        agg[key] = float(np.mean(finite)) if finite else (float(vals[0]) if vals else None)
        agg[f"{key}_n"] = len(finite)
    dumps = [c.model_dump() for c in clips]
    for key, frames in VISEME_METRICS.items():
        agg[key] = pooled(dumps, key)
        agg[frames] = sum(d[frames] or 0 for d in dumps if d[key] is not None)
    return agg
