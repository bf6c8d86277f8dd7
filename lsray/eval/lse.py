"""LSE-C / LSE-D: SyncNet's offset search (``SyncNetInstance.evaluate``), for any sync scorer.

Algorithm (as in joonson/syncnet_python): embed every video window ``i`` (frames i .. i+w-1)
and the audio window aligned with it; for each window compare its video embedding with the audio
embeddings of windows ``i - vshift .. i + vshift`` (audio embeddings zero-padded past the ends)
by Euclidean distance; average over the clip per offset -> ``mdist`` (2*vshift + 1,).
LSE-D = min(mdist); LSE-C = median(mdist) - min(mdist) (torch's median: the lower middle value);
AV offset = vshift - argmin. The original evaluates ``min(frames, samples / 640) - 5`` windows
(it leaves the last possible window out); :func:`lse` does the same for 5-frame windows
(``frames - window`` windows in general).

A scorer is anything with the :class:`SyncScorer` shape: the original network
(:class:`lsray.eval.syncnet_v2.SyncNetV2Scorer`) or the project's own trained SyncNet
(:class:`ProjectSyncNetScorer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SyncScorer(Protocol):
    """Embeds video windows and the audio windows aligned with them, in one space.

    ``embed_video(faces (N, H, W, 3) RGB uint8, num_windows) -> (num_windows, D)``: window ``i``
    is faces ``i .. i + video_window - 1``. ``embed_audio(audio_16k, num_windows, fps) ->
    (num_windows, D)``: window ``i`` is the audio under video window ``i``.
    """

    video_window: int

    def embed_video(self, faces: np.ndarray, num_windows: int) -> np.ndarray: ...

    def embed_audio(self, audio_16k: np.ndarray, num_windows: int, fps: float = 25.0) -> np.ndarray: ...


@dataclass(frozen=True)
class LSEResult:
    """``lse_c`` (confidence, higher is better), ``lse_d`` (min distance, lower is better),
    ``offset`` (frames; positive = audio leads, as SyncNet prints it), ``mdist`` per offset
    (index k = offset vshift - k) and the per-window distances (windows, 2*vshift + 1)."""

    lse_c: float
    lse_d: float
    offset: int
    mdist: np.ndarray
    dists: np.ndarray


def offset_distances(video_emb: np.ndarray, audio_emb: np.ndarray, vshift: int = 15) -> np.ndarray:
    """``calc_pdist``: (windows, 2*vshift+1) distances of video window i to audio window i+k-vshift."""
    v = np.asarray(video_emb, np.float64)
    a = np.asarray(audio_emb, np.float64)
    ap = np.pad(a, ((vshift, vshift), (0, 0)))
    win = 2 * vshift + 1
    # torch.nn.functional.pairwise_distance adds eps=1e-6 to the difference
    idx = np.arange(len(v))[:, None] + np.arange(win)[None, :]
    return np.linalg.norm(v[:, None, :] - ap[idx] + 1e-6, axis=-1)


def lse_from_distances(dists: np.ndarray, vshift: int = 15) -> LSEResult:
    """LSE-C / LSE-D / offset from per-window distances (windows, 2*vshift+1)."""
    dists = np.asarray(dists, np.float64)
    if dists.ndim != 2 or dists.shape[0] == 0:
        raise ValueError(f"need at least one window of distances, got shape {dists.shape}")
    mdist = dists.mean(axis=0)
    k = int(np.argmin(mdist))
    median = float(np.sort(mdist)[(len(mdist) - 1) // 2])
    return LSEResult(lse_c=median - float(mdist[k]), lse_d=float(mdist[k]), offset=vshift - k, mdist=mdist, dists=dists)


def lse(scorer: SyncScorer, faces: np.ndarray, audio_16k: np.ndarray, fps: float = 25.0, vshift: int = 15) -> LSEResult:
    """LSE-C / LSE-D of face crops (N, H, W, 3) RGB uint8 against 16 kHz audio."""
    faces = np.asarray(faces)
    frames = min(len(faces), int(np.floor(len(audio_16k) / (16000.0 / fps))))
    num_windows = frames - scorer.video_window
    if num_windows < 1:
        raise ValueError(f"clip too short for LSE: {frames} frames, windows of {scorer.video_window}")
    v = scorer.embed_video(faces[:frames], num_windows)
    a = scorer.embed_audio(audio_16k, num_windows, fps)
    return lse_from_distances(offset_distances(v, a, vshift), vshift)


class ProjectSyncNetScorer:
    """Adapter: the project's :class:`lsray.models.syncnet.SyncNet` as a :class:`SyncScorer`.

    Video windows are ``config.num_frames`` face crops (resized to ``config.image_size``, scaled
    to [-1, 1]; the model takes their lower half); audio windows are its mel windows
    (:func:`lsray.models.syncnet.mel_window`). Embeddings are L2-normalised, so the Euclidean
    distance is a monotone function of the cosine the network was trained on.
    """

    def __init__(self, model, batch_size: int = 8) -> None:
        self.model = model.eval()
        self.batch_size = batch_size
        self.video_window = int(model.config.num_frames)

    def embed_video(self, faces: np.ndarray, num_windows: int) -> np.ndarray:
        import cv2
        import torch
        import torch.nn.functional as F

        s = self.model.config.image_size
        x = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in faces])
        t = torch.from_numpy(x).float().permute(0, 3, 1, 2) / 127.5 - 1.0  # N 3 S S
        out = []
        with torch.no_grad():
            for i in range(0, num_windows, self.batch_size):
                b = torch.stack([t[j : j + self.video_window] for j in range(i, min(num_windows, i + self.batch_size))])
                out.append(F.normalize(self.model.embed_visual(b.to(self.model.device)), dim=-1).cpu())  # b F 3 S S -> b D
        return torch.cat(out).numpy()

    def embed_audio(self, audio_16k: np.ndarray, num_windows: int, fps: float = 25.0) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        from lsray.models.syncnet import mel_window, syncnet_mel

        mel = syncnet_mel(audio_16k)
        out = []
        with torch.no_grad():
            for i in range(0, num_windows, self.batch_size):
                m = np.stack([mel_window(mel, j, self.video_window, fps) for j in range(i, min(num_windows, i + self.batch_size))])
                out.append(F.normalize(self.model.embed_audio(torch.from_numpy(m).to(self.model.device)), dim=-1).cpu())
        return torch.cat(out).numpy()
