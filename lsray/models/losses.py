"""Training losses shared by the jobs in :mod:`lsray.train` (no Ray here).

- :func:`pseudo_huber`: the LCM distillation loss.
- :func:`temporal_smoothness`: upgrade 3's smoothness term, the second temporal difference of the
  x0 estimate matched to the second difference of the ground truth (so real motion is not punished,
  jitter is).
- :func:`mouth_crops`: the 96x96 mouth crops the lip discriminator sees.
- :class:`PerceptualLoss`: VGG16 features (LPIPS-style, unweighted) from a local weights file; only
  built when its weights are given (nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lsray.errors import MissingWeightError


def pseudo_huber(pred: torch.Tensor, target: torch.Tensor, c: float = 0.001) -> torch.Tensor:
    """sqrt((pred - target)^2 + c^2) - c, averaged (Song & Dhariwal's improved consistency loss)."""
    return (torch.sqrt((pred.float() - target.float()) ** 2 + c * c) - c).mean()


def second_difference(x: torch.Tensor) -> torch.Tensor:
    """x[t+1] - 2 x[t] + x[t-1] along the frame axis of (B, C, F, H, W)."""
    return x[:, :, 2:] - 2 * x[:, :, 1:-1] + x[:, :, :-2]


def temporal_smoothness(x0_pred: torch.Tensor, x0_true: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between the second temporal differences of prediction and target, (B, C, F, H, W).

    ``region`` (B, 1, F, H, W), 1 where it counts (the regenerated mouth), weights the error.
    """
    if x0_pred.shape[2] < 3:
        return x0_pred.new_zeros(())
    err = (second_difference(x0_pred) - second_difference(x0_true)) ** 2
    if region is None:
        return err.mean()
    w = region[:, :, 1:-1].expand_as(err)
    return (err * w).sum() / w.sum().clamp_min(1.0)


def mouth_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) bounding box of the regenerated region (mask < 0.5) of an (S, S) mask."""
    ys, xs = np.nonzero(np.asarray(mask) < 0.5)
    if len(ys) == 0:
        s = mask.shape[0]
        return s // 2, s, s // 4, 3 * s // 4
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def mouth_crops(images: torch.Tensor, box: tuple[int, int, int, int], size: int = 96) -> torch.Tensor:
    """Square mouth crops (n, 3, size, size) of images (n, 3, S, S): the box, squared about its centre."""
    y0, y1, x0, x1 = box
    s = images.shape[-1]
    side = max(y1 - y0, x1 - x0)
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    top = int(np.clip(cy - side // 2, 0, max(s - side, 0)))
    left = int(np.clip(cx - side // 2, 0, max(s - side, 0)))
    crop = images[:, :, top : top + side, left : left + side]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)


#: VGG16 ``features`` layout (torchvision's indices, so its state dict loads key for key).
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


class PerceptualLoss(nn.Module):
    """Mean L1 over unit-normalised VGG16 feature maps of two image batches in [-1, 1]."""

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise MissingWeightError(path, "VGG16 weights for the perceptual loss")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
            state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
            self.features.load_state_dict(state)
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = ((a + 1) / 2 - self.mean) / self.std
        y = ((b + 1) / 2 - self.mean) / self.std
        loss = 0.0
        for i, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if i in _TAPS:
                loss = loss + F.l1_loss(F.normalize(x, dim=1), F.normalize(y, dim=1))
            if i >= _TAPS[-1]:
                break
        return loss / len(_TAPS)
