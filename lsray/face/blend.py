"""Paste a generated S x S crop back into the full frame with a feathered mask.

The paste region is given in crop coordinates (by default the whole crop, as upstream; the
pipeline passes `mask.regenerated_region(...)` so only the mouth area can change). It is
feathered INSIDE itself the way upstream feathers its paste mask (erode by w, Gaussian blur of
size 2w + 1 with w = sqrt(region area) // 20), so the soft mask never reaches past the region.
Only the frame pixels under a non-zero warped alpha are written; every other pixel is copied
bit-for-bit, and the work is done on the region's bounding box, not the whole frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from lsray.media.color import VideoColor, yuv_planes


def feathered_alpha(region: np.ndarray, feather: int | None = None) -> np.ndarray:
    """(S, S) float32 soft alpha that is 0 outside `region` (> 0.5) and ramps up inside it."""
    hard = (np.asarray(region, dtype=np.float32) > 0.5).astype(np.float32)
    if feather is None:
        feather = int(np.sqrt(hard.sum())) // 20
    if feather <= 0:
        return hard
    hard = cv2.copyMakeBorder(hard, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)  # crop edge = outside
    k = 2 * feather + 1
    eroded = cv2.erode(hard, np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV's default for this kernel size, as upstream
    soft = cv2.GaussianBlur(eroded, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    return np.clip(soft[1:-1, 1:-1], 0.0, 1.0)


class FaceBlender:
    """Inverse-warps crops into frames through a fixed feathered alpha."""

    def __init__(self, resolution: int = 256, region: np.ndarray | None = None, feather: int | None = None) -> None:
        self.resolution = resolution
        if region is None:
            region = np.ones((resolution, resolution), np.float32)
        if region.shape != (resolution, resolution):
            raise ValueError(f"paste region must be {resolution}x{resolution}, got {region.shape}")
        self.alpha = feathered_alpha(region, feather)
        ys, xs = np.nonzero(self.alpha > 0)
        self._support = None if len(xs) == 0 else (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)

    def _roi(self, affine: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
        """Frame window covering the warped alpha support (+2 px for interpolation)."""
        if self._support is None:
            return None
        x0, y0, x1, y1 = self._support
        inv = cv2.invertAffineTransform(affine)
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ inv.T
        h, w = frame_shape[:2]
        fx0 = max(0, int(np.floor(corners[:, 0].min())) - 2)
        fy0 = max(0, int(np.floor(corners[:, 1].min())) - 2)
        fx1 = min(w, int(np.ceil(corners[:, 0].max())) + 3)
        fy1 = min(h, int(np.ceil(corners[:, 1].max())) + 3)
        return None if fx1 <= fx0 or fy1 <= fy0 else (fx0, fy0, fx1, fy1)

    def frame_alpha(self, affine: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
        """(H, W) alpha in frame space: exactly the pixels `paste` may change are > 0."""
        out = np.zeros(frame_shape[:2], np.float32)
        roi = self._roi(affine, frame_shape)
        if roi is not None:
            x0, y0, x1, y1 = roi
            out[y0:y1, x0:x1] = self._warp(self.alpha, affine, roi, cv2.INTER_LINEAR)
        return out

    @staticmethod
    def _warp(img: np.ndarray, affine: np.ndarray, roi: tuple[int, int, int, int], interp: int) -> np.ndarray:
        # With WARP_INVERSE_MAP, dst pixel (x, y) samples src at affine @ (x + x0, y + y0, 1).
        x0, y0, x1, y1 = roi
        m = affine.astype(np.float64).copy()
        m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
        return cv2.warpAffine(
            img, m, (x1 - x0, y1 - y0), flags=interp | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )

    def _warped(self, crop: np.ndarray, affine: np.ndarray, frame_hw: tuple[int, int],
                even: bool = False) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
        """``(roi, alpha, face)``: the frame window the alpha touches (``even``: grown to whole 4:2:0
        chroma samples) with the alpha (h, w) and ``crop`` (h, w, 3) float32 warped into it; None
        where the alpha touches no pixel of the frame."""
        if crop.shape[:2] != (self.resolution, self.resolution):
            raise ValueError(f"crop must be {self.resolution}x{self.resolution}, got {crop.shape}")
        roi = self._roi(affine, frame_hw)
        if roi is None:
            return None
        if even:  # within the (even) frame: _roi clips to it
            x0, y0, x1, y1 = roi
            roi = (x0 - x0 % 2, y0 - y0 % 2, x1 + x1 % 2, y1 + y1 % 2)
        alpha = self._warp(self.alpha, affine, roi, cv2.INTER_LINEAR)
        if not (alpha > 0).any():
            return None
        return roi, alpha, self._warp(crop, affine, roi, cv2.INTER_LINEAR).astype(np.float32)

    def paste(self, frame: np.ndarray, crop: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """A new frame: `crop` (S, S, 3) uint8 pasted through the alpha; `affine` is frame -> crop."""
        out = frame.copy()
        warped = self._warped(crop, affine, frame.shape[:2])
        if warped is None:
            return out
        (x0, y0, x1, y1), alpha, face = warped
        inside = alpha > 0
        a = alpha[inside][:, None]
        orig = out[y0:y1, x0:x1][inside].astype(np.float32)
        blended = np.clip(np.rint(a * face[inside] + (1.0 - a) * orig), 0, 255).astype(np.uint8)
        window = out[y0:y1, x0:x1]
        window[inside] = blended
        return out

    def paste_yuv(self, frame: np.ndarray, crop: np.ndarray, affine: np.ndarray, color: VideoColor) -> np.ndarray:
        """:meth:`paste` on a (3H/2, W) I420 frame, whose pixels never go through RGB: the warped
        crop is converted to Y, Cb, Cr with the source's own matrix and range (``color``) and
        blended there (blending is linear, so this is the RGB blend), chroma as the 2 x 2 mean of
        the full-resolution blend. Every pixel outside the alpha keeps its exact samples."""
        out = frame.copy()
        warped = self._warped(crop, affine, (frame.shape[0] * 2 // 3, frame.shape[1]), even=True)
        if warped is None:
            return out
        (x0, y0, x1, y1), alpha, face = warped
        inside = alpha > 0
        face = color.rgb_to_yuv(face)  # (h, w, 3) Y, Cb, Cr
        luma, cb, cr = yuv_planes(out)
        window = luma[y0:y1, x0:x1]
        blended = alpha * face[..., 0] + (1.0 - alpha) * window
        window[inside] = np.clip(np.rint(blended[inside]), 0, 255).astype(np.uint8)
        half = ((x1 - x0) // 2, (y1 - y0) // 2)  # INTER_AREA at exactly 1/2: the mean of each 2 x 2 block
        mean_alpha = cv2.resize(alpha, half, interpolation=cv2.INTER_AREA)  # (h/2, w/2)
        touched = mean_alpha > 0
        weighted = cv2.resize(alpha[..., None] * face[..., 1:], half, interpolation=cv2.INTER_AREA)  # (h/2, w/2, 2)
        for plane, k in ((cb, 0), (cr, 1)):
            window = plane[y0 // 2:y1 // 2, x0 // 2:x1 // 2]
            blended = weighted[..., k] + (1.0 - mean_alpha) * window
            window[touched] = np.clip(np.rint(blended[touched]), 0, 255).astype(np.uint8)
        return out
