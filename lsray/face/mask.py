"""LatentSync's inpainting mask: black = the region the UNet regenerates.

Upstream (image_processor.load_fixed_mask) reads `mask.png` (256 x 256), resizes it to the
working resolution with LANCZOS4 and divides by 255; the result multiplies the face crop, so the
mask is 1 where pixels are KEPT and 0 where the mouth is regenerated. lsray keeps that
convention and returns one channel (the PNG's channels are equal).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lsray.errors import MediaError, MissingWeightError


def load_inpaint_mask(path: str | Path, resolution: int = 256) -> np.ndarray:
    """(S, S) float32 in [0, 1]: 1 = keep, 0 = regenerate (LANCZOS4 resize, as upstream)."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightError(path, "inpainting mask")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise MediaError(path, "not a readable image (expected LatentSync's mask.png)")
    if image.shape != (resolution, resolution):
        image = cv2.resize(image, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4)
    return np.clip(image.astype(np.float32) / 255.0, 0.0, 1.0)


def regenerated_region(mask: np.ndarray) -> np.ndarray:
    """1 where the UNet regenerates pixels: the region paste-back is allowed to change."""
    return 1.0 - np.asarray(mask, dtype=np.float32)
