"""Frame metrics against the oracle: mouth PSNR / SSIM, flicker, boundary jumps, identity drift.

Frames are RGB uint8 (N, H, W, 3) arrays (or sequences of frames). A *box* is (x0, y0, x1, y1)
in pixels: one for the whole clip or one per frame (the synthetic world knows them exactly:
``lsray.synth.talking_head_geometry(...)[k].mouth_box``). Without boxes, :func:`default_mouth_box`
assumes an aligned face crop (the mouth in the lower middle).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def default_mouth_box(height: int, width: int) -> Box:
    """Mouth region of an aligned face crop: x 25-75 %, y 60-95 %."""
    return (int(0.25 * width), int(0.6 * height), int(0.75 * width), int(0.95 * height))


def _boxes(boxes, n: int, shape) -> list[Box]:
    if boxes is None:
        return [default_mouth_box(shape[0], shape[1])] * n
    if len(boxes) == 4 and np.isscalar(boxes[0]):
        return [tuple(int(v) for v in boxes)] * n
    if len(boxes) < n:
        raise ValueError(f"{len(boxes)} boxes for {n} frames")
    return [tuple(int(v) for v in b) for b in boxes[:n]]


def _crop(frame: np.ndarray, box: Box, size: tuple[int, int] | None = None) -> np.ndarray:
    x0, y0, x1, y1 = box
    c = frame[max(0, y0):y1, max(0, x0):x1]
    if size is not None and (c.shape[1], c.shape[0]) != size:
        c = cv2.resize(c, size, interpolation=cv2.INTER_AREA)
    return c


def mouth_crops(frames: Sequence[np.ndarray], boxes=None) -> np.ndarray:
    """(N, h, w, 3) mouth crops, all resized to the first box's size (boxes move with the head)."""
    bs = _boxes(boxes, len(frames), frames[0].shape)
    size = (max(1, bs[0][2] - bs[0][0]), max(1, bs[0][3] - bs[0][1]))
    return np.stack([_crop(f, b, size) for f, b in zip(frames, bs)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def mouth_psnr(output: Sequence[np.ndarray], oracle: Sequence[np.ndarray], boxes=None) -> float:
    """PSNR over the mouth regions of the whole clip (one MSE over all frames, in dB)."""
    n = min(len(output), len(oracle))
    return psnr(mouth_crops(output[:n], boxes), mouth_crops(oracle[:n], boxes))


#: Shifts :func:`oracle_lag` tries by default: +-4 frames (160 ms at 25 fps).
ORACLE_MAX_LAG = 4


def oracle_lag(output: Sequence[np.ndarray], oracle: Sequence[np.ndarray], boxes=None,
               max_lag: int = ORACLE_MAX_LAG) -> int:
    """The frame shift of ``output`` against ``oracle`` at which their mouths agree best (PSNR).

    A sync measure that needs no learned scorer, for worlds where the oracle is known: a model that
    follows the dub moves its mouth in step with the oracle's, so the agreement peaks at 0; one
    that lags the audio peaks at the lag (positive: output frame i + lag matches oracle frame i);
    one that ignores the audio peaks wherever chance puts it.
    """
    n = min(len(output), len(oracle))
    if n < 2 * max_lag + 1:
        raise ValueError(f"{n} frames: too short for lags up to {max_lag}")
    out, ref = mouth_crops(output[:n], boxes), mouth_crops(oracle[:n], boxes)  # each frame with its own box
    scores = {lag: psnr(out[max(lag, 0) : n + min(lag, 0)], ref[max(-lag, 0) : n - max(lag, 0)])
              for lag in range(-max_lag, max_lag + 1)}
    return max(scores, key=lambda lag: (scores[lag], -abs(lag)))  # ties: the smaller shift


def mouth_ssim(output: Sequence[np.ndarray], oracle: Sequence[np.ndarray], boxes=None) -> float:
    """Mean SSIM (skimage, per colour channel) of the mouth regions frame by frame."""
    from skimage.metrics import structural_similarity

    n = min(len(output), len(oracle))
    a, b = mouth_crops(output[:n], boxes), mouth_crops(oracle[:n], boxes)
    win = min(7, a.shape[1], a.shape[2])
    win -= 1 - win % 2  # odd
    return float(np.mean([structural_similarity(x, y, channel_axis=-1, data_range=255, win_size=max(3, win))
                          for x, y in zip(a, b)]))


def mouth_sharpness(output: Sequence[np.ndarray], oracle: Sequence[np.ndarray], boxes=None) -> float:
    """How sharp the output's mouth is relative to the oracle's: the mean square of the Laplacian
    of the grey mouth crop (its fine detail: lip edges, teeth), summed over the frames, output over
    oracle. 1 = as much detail as the oracle; a "close enough" blur scores well below 1 even where
    PSNR forgives it; above 1 is detail the oracle lacks (ghosted edges, noise)."""
    n = min(len(output), len(oracle))
    a, b = mouth_crops(output[:n], boxes), mouth_crops(oracle[:n], boxes)  # (n, h, w, 3) uint8

    def energy(crops: np.ndarray) -> float:
        return float(sum(np.mean(cv2.Laplacian(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F) ** 2)
                         for c in crops))

    ref = energy(b)
    return energy(a) / ref if ref > 0 else float("nan")


def frame_changes(frames: Sequence[np.ndarray], boxes=None) -> np.ndarray:
    """(N,) mean absolute change of each frame's region from the previous frame's (0 for frame 0)."""
    crops = mouth_crops(frames, boxes).astype(np.float32)
    d = np.zeros(len(crops), np.float64)
    d[1:] = np.abs(np.diff(crops, axis=0)).mean(axis=(1, 2, 3))
    return d


def flicker(output: Sequence[np.ndarray], oracle: Sequence[np.ndarray] | None = None, boxes=None) -> float:
    """Temporal flicker: mean over frames of the output's frame-to-frame change in the mouth
    region beyond the oracle's own change there (``max(0, d_out - d_oracle)``), in 0-255 units.
    Without an oracle, the raw mean change."""
    d = frame_changes(output, boxes)[1:]
    if oracle is not None:
        n = min(len(output), len(oracle))
        d = np.maximum(0.0, d[: n - 1] - frame_changes(oracle[:n], boxes)[1:])
    return float(d.mean()) if len(d) else 0.0


def boundary_frames(num_frames: int, window: int = 16, segment_starts: Sequence[int] = ()) -> np.ndarray:
    """Frame indices that start a new window (k * window, k >= 1) or segment."""
    idx = set(range(window, num_frames, window)) | {int(s) for s in segment_starts if 0 < s < num_frames}
    return np.array(sorted(idx), dtype=int)


def boundary_jump(output: Sequence[np.ndarray], oracle: Sequence[np.ndarray] | None = None, boxes=None,
                  window: int = 16, segment_starts: Sequence[int] = ()) -> float:
    """How much bigger the change is across window/segment boundaries than inside windows.

    ``d_t`` = mean |frame_t - frame_{t-1}| in the region (minus the oracle's, floored at 0, when
    an oracle is given); returns mean(d at boundary frames) / mean(d at other frames). ~1: no
    seam; > 1: the output jumps where windows meet. NaN if the clip has no boundary.
    """
    n = len(output) if oracle is None else min(len(output), len(oracle))
    d = frame_changes(output[:n], boxes)
    if oracle is not None:
        d = np.abs(d - frame_changes(oracle[:n], boxes))
    b = boundary_frames(n, window, segment_starts)
    if len(b) == 0:
        return float("nan")
    inside = np.setdiff1d(np.arange(1, n), b)
    return float(d[b].mean() / (d[inside].mean() + 1e-3)) if len(inside) else float("nan")


def face_descriptor(frame: np.ndarray, face_box: Box | None = None, mouth_box: Box | None = None, size: int = 64) -> np.ndarray:
    """HOG descriptor (L2-normalised) of the face without its mouth: what stays the same person.

    The mouth box (frame pixels) is filled with the face's mean colour first, so speaking does
    not count as drift; the face is resized to ``size`` x ``size`` grey.
    """
    from skimage.feature import hog

    img = frame.copy()
    if mouth_box is not None:
        x0, y0, x1, y1 = mouth_box
        img[max(0, y0):y1, max(0, x0):x1] = img.reshape(-1, 3).mean(0).astype(np.uint8)
    face = _crop(img, face_box, (size, size)) if face_box is not None else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    h = hog(grey, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=True)
    return (h / (np.linalg.norm(h) + 1e-8)).astype(np.float32)


def identity_drift(frames: Sequence[np.ndarray], face_boxes=None, mouth_boxes=None, every: int = 1) -> float:
    """Mean cosine distance of later frames' face descriptors to the first frame's (0 = no drift)."""
    n = len(frames)
    fb = [None] * n if face_boxes is None else _boxes(face_boxes, n, frames[0].shape)
    mb = [None] * n if mouth_boxes is None else _boxes(mouth_boxes, n, frames[0].shape)
    d0 = face_descriptor(frames[0], fb[0], mb[0])
    ds = [1.0 - float(face_descriptor(frames[k], fb[k], mb[k]) @ d0) for k in range(every, n, every)]
    return float(np.mean(ds)) if ds else 0.0
