"""The original SyncNet (``syncnet_v2.model`` of joonson/syncnet_python) and its LSE scorer.

:class:`SyncNetV2` is the ``S`` network of ``SyncNetModel.py`` layer for layer, so its
``state_dict`` keys are the original ones (``netcnnaud.0.weight``, ``netcnnlip.1.running_mean``,
``netfcaud.0.weight``, ...) and a user's ``syncnet_v2.model`` (a ``torch.save``-d state dict)
loads into it with :func:`load_syncnet_v2`:

- audio tower (``netcnnaud``, 2-D convs + BN) on (N, 1, 13, 20) MFCC windows (0.2 s), then
  ``netfcaud`` 512 -> 512 -> 1024;
- lip tower (``netcnnlip``, 3-D convs + BN) on (N, 3, 5, 224, 224) windows of 5 BGR frames in
  0-255 (no normalisation, as ``SyncNetInstance.evaluate`` feeds ``cv2.imread`` pixels), then
  ``netfclip`` 512 -> 512 -> 1024.

Nothing is downloaded: a missing file is :class:`lsray.errors.MissingWeightError`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from lsray.errors import BundleError, MissingWeightError
from lsray.eval.mfcc import MFCC_RATE, syncnet_mfcc

VIDEO_WINDOW = 5  # frames per lip window
AUDIO_WINDOW = 20  # MFCC steps per audio window (0.2 s)
FACE_SIZE = 224


class SyncNetV2(nn.Module):
    """``SyncNetModel.S`` (same layers, same order, same key names)."""

    def __init__(self, embed_dim: int = 1024) -> None:
        super().__init__()
        bn, relu = nn.BatchNorm2d, lambda: nn.ReLU(inplace=True)
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, 3, 1, 1), bn(64), relu(), nn.MaxPool2d(1, 1),
            nn.Conv2d(64, 192, 3, 1, 1), bn(192), relu(), nn.MaxPool2d(3, (1, 2)),
            nn.Conv2d(192, 384, 3, padding=1), bn(384), relu(),
            nn.Conv2d(384, 256, 3, padding=1), bn(256), relu(),
            nn.Conv2d(256, 256, 3, padding=1), bn(256), relu(), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 512, (5, 4), padding=0), bn(512), nn.ReLU(),
        )
        self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))
        self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))
        bn3 = nn.BatchNorm3d
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, 96, (5, 7, 7), (1, 2, 2), 0), bn3(96), relu(), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), bn3(256), relu(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), bn3(256), relu(),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), bn3(256), relu(),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), bn3(256), relu(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(256, 512, (1, 6, 6), padding=0), bn3(512), relu(),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, 1024)."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))  # N 512 1 1 -> N 512

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 -> (N, 1024)."""
        return self.netfclip(self.netcnnlip(x).flatten(1))  # N 512 1 1 1 -> N 512


def save_syncnet_v2(model: SyncNetV2, path: str | Path) -> Path:
    """Write ``model`` in the original format: a plain ``torch.save`` of its state dict."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    tmp.replace(path)
    return path


def load_syncnet_v2(path: str | Path, device: torch.device | str = "cpu") -> SyncNetV2:
    """Load an original ``syncnet_v2.model`` (eval mode, frozen).

    Like ``SyncNetInstance.loadParameters`` it copies every tensor of the file onto the key of
    the same name; unlike it, an unknown key or a missing weight is an error (old files may
    lack ``num_batches_tracked``, which is allowed).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightError(path, "SyncNet v2 weights (syncnet_python's data/syncnet_v2.model)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise BundleError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = {k.removeprefix("__S__."): v for k, v in state.items()}
    model = SyncNetV2()
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    if unknown or missing:
        raise BundleError(f"{path}: not a syncnet_v2 state dict (unknown keys {unknown[:5]}, missing {missing[:5]})")
    with torch.no_grad():
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise BundleError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
            own[k].copy_(v)
    return model.to(device).eval().requires_grad_(False)


class SyncNetV2Scorer:
    """:class:`lsray.eval.lse.SyncScorer` for the original network (25 fps video, 16 kHz audio).

    Video windows are 5 consecutive face crops (RGB uint8, any size: resized to 224 and turned to
    BGR here); the audio window of video frame ``i`` is MFCC columns ``4i .. 4i + 20``.
    """

    video_window = VIDEO_WINDOW

    def __init__(self, model: SyncNetV2, batch_size: int = 20) -> None:
        self.model = model.eval()
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def embed_video(self, faces: np.ndarray, num_windows: int) -> np.ndarray:
        """(N, H, W, 3) RGB face crops -> (num_windows, 1024): window i = frames i .. i+4."""
        x = np.stack([cv2.resize(f, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)[..., ::-1] for f in faces])
        vid = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 0, 1, 2))).float()[None]  # 1 3 N 224 224
        out = []
        for i in range(0, num_windows, self.batch_size):
            batch = torch.cat([vid[:, :, j : j + VIDEO_WINDOW] for j in range(i, min(num_windows, i + self.batch_size))])
            out.append(self.model.forward_lip(batch.to(self.device)).cpu())  # b 3 5 224 224 -> b 1024
        return torch.cat(out).numpy()

    @torch.no_grad()
    def embed_audio(self, audio_16k: np.ndarray, num_windows: int, fps: float = 25.0) -> np.ndarray:
        """16 kHz audio -> (num_windows, 1024): window i = MFCC steps round(i * 100 / fps) + 0..19."""
        mfcc = syncnet_mfcc(audio_16k)
        need = int(round((num_windows - 1) * MFCC_RATE / fps)) + AUDIO_WINDOW
        if mfcc.shape[1] < need:
            mfcc = np.pad(mfcc, ((0, 0), (0, need - mfcc.shape[1])))
        cc = torch.from_numpy(mfcc).float()[None, None]  # 1 1 13 T
        out = []
        for i in range(0, num_windows, self.batch_size):
            starts = [int(round(j * MFCC_RATE / fps)) for j in range(i, min(num_windows, i + self.batch_size))]
            batch = torch.cat([cc[:, :, :, s : s + AUDIO_WINDOW] for s in starts])
            out.append(self.model.forward_aud(batch.to(self.device)).cpu())  # b 1 13 20 -> b 1024
        return torch.cat(out).numpy()
