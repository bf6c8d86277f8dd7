"""SyncNet: does a 16-frame lower-face clip match an 80 x 52 mel window? (LatentSync's StableSyncNet)

Two convolutional encoders map a stack of 16 lower-half face frames (B, 3*16, S/2, S) and the mel
window of the same 0.64 s (B, 1, 80, 52) to non-negative embeddings; their cosine similarity is
the probability that the two are in sync, trained with BCE on in-sync pairs vs time-shifted
negatives (:mod:`lsray.train.syncnet`). Frozen, it is stage 2's sync loss; the evaluation suite
uses :meth:`SyncNet.sync_confidence` / :meth:`SyncNet.offset_confidence`.

Weights are a directory: ``config.json`` (SyncNetConfig) + ``model.safetensors``
(:meth:`SyncNet.save_pretrained` / :meth:`SyncNet.from_pretrained`). Nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lsray.errors import BundleError, MissingWeightError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

#: SyncNet mel: 16 kHz, n_fft = win = 800, hop 200 -> 80 mel frames per second (Wav2Lip's hparams).
MEL_SAMPLE_RATE = 16_000
MEL_HOP = 200
MEL_FRAMES_PER_SECOND = MEL_SAMPLE_RATE / MEL_HOP


def mel_steps(num_frames: int, fps: float = 25.0) -> int:
    """Mel frames covering ``num_frames`` video frames: ceil(frames * 80 / fps) (16 -> 52 at 25 fps)."""
    return math.ceil(num_frames * MEL_FRAMES_PER_SECOND / fps - 1e-9)


def syncnet_mel(wave_16k: np.ndarray) -> np.ndarray:
    """LatentSync / Wav2Lip ``melspectrogram``: (80, T) in [-4, 4], T = 80 per second.

    Pre-emphasis 0.97, |STFT| (n_fft 800, hop 200), 80 Slaney mels 55-7600 Hz, 20 log10 - 20 dB,
    normalised symmetrically from [-100, 0] dB to [-4, 4].
    """
    import librosa
    from scipy import signal

    wav = signal.lfilter([1, -0.97], [1], np.asarray(wave_16k, dtype=np.float32))
    spec = np.abs(librosa.stft(y=wav, n_fft=800, hop_length=MEL_HOP, win_length=800))
    basis = librosa.filters.mel(sr=MEL_SAMPLE_RATE, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    db = 20 * np.log10(np.maximum(1e-5, basis @ spec)) - 20
    return np.clip(8 * ((db + 100) / 100) - 4, -4, 4).astype(np.float32)


def mel_window(mel: np.ndarray, frame: int, num_frames: int = 16, fps: float = 25.0) -> np.ndarray:
    """The (80, mel_steps) window starting at video frame ``frame`` (zero-padded past the end)."""
    start = int(MEL_FRAMES_PER_SECOND * frame / fps)
    steps = mel_steps(num_frames, fps)
    out = np.full((mel.shape[0], steps), -4.0, np.float32)
    piece = mel[:, start : start + steps]
    out[:, : piece.shape[1]] = piece
    return out


class SyncNetConfig(BaseModel):
    """Encoder widths (full size by default: StableSyncNet-like, 256 px faces, 16 frames)."""

    model_config = ConfigDict(extra="forbid")

    num_frames: int = Field(16, ge=1)
    image_size: int = Field(256, ge=16)  # face crop side; the encoder sees its lower half
    mel_bins: int = 80
    fps: float = 25.0
    visual_channels: tuple[int, ...] = (64, 128, 256, 256, 512, 1024)
    audio_channels: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    embed_dim: int = 1024
    norm_groups: int = 32

    @property
    def mel_steps(self) -> int:
        return mel_steps(self.num_frames, self.fps)


def _down_stack(cin: int, channels: tuple[int, ...], groups: int) -> nn.Sequential:
    """Conv(3x3, stride 2) -> GroupNorm -> SiLU -> Conv(3x3) residual stage per width."""
    layers: list[nn.Module] = []
    for c in channels:
        layers.append(_Stage(cin, c, groups))
        cin = c
    return nn.Sequential(*layers)


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        g = math.gcd(groups, cout)
        self.down = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.block = nn.Sequential(nn.GroupNorm(g, cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1),
                                   nn.GroupNorm(g, cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return x + self.block(x)


class SyncNet(nn.Module):
    """Audio and visual encoders -> non-negative embeddings; cosine similarity = sync probability."""

    def __init__(self, config: SyncNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SyncNetConfig()
        self.visual_encoder = _down_stack(3 * cfg.num_frames, cfg.visual_channels, cfg.norm_groups)
        self.visual_proj = nn.Linear(cfg.visual_channels[-1], cfg.embed_dim)
        self.audio_encoder = _down_stack(1, cfg.audio_channels, cfg.norm_groups)
        self.audio_proj = nn.Linear(cfg.audio_channels[-1], cfg.embed_dim)

    # -- encoders ----------------------------------------------------------------------------
    def lower_half(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, S, S) faces in [-1, 1] -> (B, 3F, S/2, S) lower halves at the config's size."""
        b, f, c, h, w = frames.shape
        x = frames.reshape(b * f, c, h, w)
        s = self.config.image_size
        if h != s or w != s:
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        return x[:, :, s // 2 :, :].reshape(b, f * c, s // 2, s)

    def embed_visual(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, S, S) -> (B, D); or an already stacked (B, 3F, S/2, S)."""
        x = self.lower_half(frames) if frames.dim() == 5 else frames
        x = self.visual_encoder(x).mean(dim=(2, 3))
        return F.relu(self.visual_proj(x))

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 80, M) or (B, 1, 80, M) -> (B, D)."""
        x = mel[:, None] if mel.dim() == 3 else mel
        x = self.audio_encoder(x).mean(dim=(2, 3))
        return F.relu(self.audio_proj(x))

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Sync probability in [0, 1] per pair: cosine of the (non-negative) embeddings, (B,)."""
        v, a = self.embed_visual(frames), self.embed_audio(mel)
        return F.cosine_similarity(v, a, dim=-1, eps=1e-6).clamp(1e-6, 1 - 1e-6)

    def loss(self, frames: torch.Tensor, mel: torch.Tensor, in_sync: torch.Tensor) -> torch.Tensor:
        """BCE of the sync probability against labels (1 = in sync, 0 = shifted)."""
        return F.binary_cross_entropy(self(frames, mel), in_sync.to(torch.float32))

    # -- evaluation API ----------------------------------------------------------------------
    @torch.no_grad()
    def sync_confidence(self, frames: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Mean sync probability of (B, F, 3, S, S) clips against their (B, 80, M) mel windows."""
        return self(frames.to(self.device), mel.to(self.device)).mean()

    @torch.no_grad()
    def offset_confidence(self, frames: torch.Tensor, mels: torch.Tensor) -> tuple[int, float, torch.Tensor]:
        """Sync probabilities of one clip (1, F, 3, S, S) against K candidate mel windows (K, 80, M)
        (e.g. shifted by -k..k frames). Returns (best index, its probability - the median, all)."""
        v = self.embed_visual(frames.to(self.device))
        a = self.embed_audio(mels.to(self.device))
        p = F.cosine_similarity(v.expand_as(a), a, dim=-1, eps=1e-6)
        best = int(p.argmax())
        return best, float(p[best] - p.median()), p

    @property
    def device(self) -> torch.device:
        return self.visual_proj.weight.device

    # -- persistence -------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``path`` (files written atomically)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{WEIGHTS_FILE}.partial"
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(tmp))
        tmp.replace(path / WEIGHTS_FILE)
        tmp_cfg = path / f".{CONFIG_FILE}.partial"
        tmp_cfg.write_text(self.config.model_dump_json(indent=2) + "\n")
        tmp_cfg.replace(path / CONFIG_FILE)
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str = "cpu") -> "SyncNet":
        """Load a directory written by :meth:`save_pretrained` (eval mode, frozen)."""
        from safetensors.torch import load_file

        path = Path(path)
        cfg_path, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not cfg_path.is_file():
            raise MissingWeightError(cfg_path, "SyncNet config")
        if not weights.is_file():
            raise MissingWeightError(weights, "SyncNet weights")
        try:
            config = SyncNetConfig.model_validate(json.loads(cfg_path.read_text()))
        except Exception as exc:
            raise BundleError(f"{cfg_path}: invalid SyncNet config ({exc})") from exc
        model = cls(config)
        try:
            model.load_state_dict(load_file(str(weights)), strict=True)
        except RuntimeError as exc:
            raise BundleError(f"{weights}: weights do not fit {cfg_path}: {exc}") from exc
        return model.to(device).eval().requires_grad_(False)
