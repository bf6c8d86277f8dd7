"""Phoneme branch of the fused audio encoder: a phoneme-CTC Wav2Vec2, projected to 128-d, on 50 Hz.

Whisper features say WHAT sound is there only implicitly; a phoneme-CTC Wav2Vec2 is trained to
separate phonemes, which is what lip shapes follow. Its hidden states (~49 Hz: one frame per
320 samples, 400-sample receptive field) are projected by a Linear that belongs to lsray's own
weights and resampled linearly in time onto Whisper's rows (row ``r`` is centred on sample
``320 r``), so the two branches can be concatenated row by row.

Long audio is encoded in chunks with context on both sides (only each chunk's interior is kept),
so attention cost and memory stay bounded by the chunk, not by the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from lsray.audio.mel import HOP_LENGTH, SAMPLE_RATE, num_rows
from lsray.audio.wave import WaveSource
from lsray.device import default_device
from lsray.errors import MissingWeightError

if TYPE_CHECKING:  # transformers loads where a model is built: prepare's wave statistics need none of it
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

#: Width of the projected phoneme vector (Whisper tiny 384 + 128 = the UNet's 512).
PHONEME_DIM = 128

#: The projection's weights inside a saved encoder folder (next to the Wav2Vec2 files).
PROJECTION_FILE = "projection.safetensors"

#: What :meth:`PhonemeEncoder.save_pretrained` writes and a fused bundle's ``phoneme/`` must hold.
PHONEME_FILES = ("config.json", "model.safetensors", PROJECTION_FILE)


def wave_mean_std(wave: WaveSource, block: int = SAMPLE_RATE * 30) -> tuple[float, float]:
    """Whole-file mean and std in bounded blocks (all chunks of a file share one normalisation,
    so a shard of a long clip is given the file's figures instead of its own)."""
    n, s1, s2 = len(wave), 0.0, 0.0
    for lo in range(0, n, block):
        x = np.asarray(wave[lo : lo + block], dtype=np.float64)
        s1, s2 = s1 + x.sum(), s2 + (x * x).sum()
    mean = s1 / max(n, 1)
    return mean, math.sqrt(max(s2 / max(n, 1) - mean * mean, 0.0))


class PhonemeEncoder(nn.Module):
    """Wav2Vec2 phoneme-CTC hidden states -> (T, 128) on the Whisper 50 Hz grid."""

    def __init__(
        self,
        model: Wav2Vec2ForCTC,
        out_dim: int = PHONEME_DIM,
        normalize: bool = True,
        chunk_s: float = 20.0,
        context_s: float = 3.0,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.proj = nn.Linear(model.config.hidden_size, out_dim)  # lsray weights, trained with the UNet
        self.normalize = normalize  # Wav2Vec2FeatureExtractor's zero-mean / unit-variance
        cfg = model.config
        self.stride = math.prod(cfg.conv_stride)  # samples per frame (320 for the base models)
        rf = 1
        for k, s in zip(reversed(cfg.conv_kernel), reversed(cfg.conv_stride)):
            rf = (rf - 1) * s + k
        self.receptive_field = rf  # samples seen by one frame (400 for the base models)
        self.chunk_frames = max(1, int(chunk_s * SAMPLE_RATE) // self.stride)
        self.context_frames = int(context_s * SAMPLE_RATE) // self.stride
        self.to(device or default_device())

    @classmethod
    def from_config(cls, config: Wav2Vec2Config, **kwargs) -> "PhonemeEncoder":
        """Random weights from a config (tests, or before loading a fine-tuned projection)."""
        from transformers import Wav2Vec2ForCTC

        return cls(Wav2Vec2ForCTC(config), **kwargs)

    @classmethod
    def from_pretrained(
        cls, w2v_dir: str | Path, projection: str | Path | None = None, **kwargs
    ) -> "PhonemeEncoder":
        """Load a local HF ``Wav2Vec2ForCTC`` folder and the projection's safetensors.

        ``projection`` defaults to the folder's own ``projection.safetensors`` when it has one
        (a :meth:`save_pretrained` folder); a plain Wav2Vec2 folder keeps a random projection.
        """
        w2v_dir = Path(w2v_dir)
        if projection is None and (w2v_dir / PROJECTION_FILE).is_file():
            projection = w2v_dir / PROJECTION_FILE
        if not (w2v_dir / "config.json").is_file():
            raise MissingWeightError(w2v_dir / "config.json", "Wav2Vec2 config")
        if not list(w2v_dir.glob("model*.safetensors")) and not (w2v_dir / "pytorch_model.bin").is_file():
            raise MissingWeightError(w2v_dir / "model.safetensors", "Wav2Vec2 weights")
        prep = w2v_dir / "preprocessor_config.json"
        if prep.is_file() and "normalize" not in kwargs:
            kwargs["normalize"] = bool(json.loads(prep.read_text()).get("do_normalize", True))
        from transformers import Wav2Vec2ForCTC

        encoder = cls(Wav2Vec2ForCTC.from_pretrained(w2v_dir, local_files_only=True), **kwargs)
        if projection is not None:
            from safetensors.torch import load_file

            projection = Path(projection)
            if not projection.is_file():
                raise MissingWeightError(projection, "phoneme projection weights")
            encoder.proj.load_state_dict(load_file(str(projection)))
        return encoder

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write what :meth:`from_pretrained` reads back: the Wav2Vec2 folder (safetensors), its
        ``preprocessor_config.json`` (whether input is normalised) and ``projection.safetensors``."""
        from safetensors.torch import save_file
        from transformers import Wav2Vec2FeatureExtractor

        out_dir = Path(out_dir)
        self.model.save_pretrained(str(out_dir), safe_serialization=True)
        Wav2Vec2FeatureExtractor(do_normalize=self.normalize).save_pretrained(str(out_dir))
        state = {k: v.detach().contiguous().cpu() for k, v in self.proj.state_dict().items()}
        save_file(state, str(out_dir / PROJECTION_FILE))
        return out_dir

    @property
    def dim(self) -> int:
        return self.proj.out_features

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _frame_count(self, num_samples: int) -> int:
        """Wav2Vec2 frames for ``num_samples`` (the conv stack without padding)."""
        if num_samples < self.receptive_field:
            return 0
        return (num_samples - self.receptive_field) // self.stride + 1

    def _frames(self, wave: WaveSource, f0: int, f1: int, stats: tuple[float, float]) -> torch.Tensor:
        """Last hidden states of frames ``[f0, f1)``, encoded with context on both sides: (f1 - f0, H)."""
        total = self._frame_count(len(wave))
        c0, c1 = max(0, f0 - self.context_frames), min(total, f1 + self.context_frames)
        mean, std = stats
        x = np.asarray(wave[c0 * self.stride : (c1 - 1) * self.stride + self.receptive_field], dtype=np.float32)
        x = torch.from_numpy((x - mean) / math.sqrt(std * std + 1e-7)).float()
        h = self.model.wav2vec2(x[None].to(self.device)).last_hidden_state[0]  # (c1 - c0, H)
        return h[f0 - c0 : f1 - c0].float().cpu()

    def stats(self, wave: WaveSource) -> tuple[float, float]:
        """The normalisation every chunk of ``wave`` shares (identity when ``normalize`` is off)."""
        return wave_mean_std(wave) if self.normalize else (0.0, 1.0)

    @torch.no_grad()
    def hidden_frames(self, wave: WaveSource) -> torch.Tensor:
        """Last hidden states of Wav2Vec2 over the whole file, chunk by chunk: (F, H)."""
        total = self._frame_count(len(wave))
        stats = self.stats(wave)
        out = [self._frames(wave, f0, min(total, f0 + self.chunk_frames), stats) for f0 in range(0, total, self.chunk_frames)]
        return torch.cat(out) if out else torch.zeros(0, self.model.config.hidden_size)

    @torch.no_grad()
    def rows(self, wave: WaveSource, r0: int, r1: int, stats: tuple[float, float] | None = None) -> torch.Tensor:
        """Projected phoneme vectors for Whisper rows ``[r0, r1)`` only: (r1 - r0, 128).

        Encodes just the frames those rows interpolate from (plus context), so a caller can walk
        an hour of audio block by block. ``stats``, the file's (mean, std) (:meth:`stats`, or the
        pipeline's per-clip figures), avoids re-reading the file; an encoder that does not
        normalise its input ignores them.
        """
        stats = self.stats(wave) if stats is None or not self.normalize else stats
        total = self._frame_count(len(wave))
        if total == 0 or r1 <= r0:
            return torch.zeros(max(r1 - r0, 0), self.dim)
        pos = _row_positions(torch.arange(r0, r1), self.stride, self.receptive_field).clamp(0, total - 1)
        f0, f1 = int(pos.min().floor()), min(total, int(pos.max().floor()) + 2)
        projected = self.proj(self._frames(wave, f0, f1, stats).to(self.device)).float().cpu()  # (f1 - f0, 128)
        return _interpolate(projected, pos - f0)

    @torch.no_grad()
    def features(self, wave: WaveSource, total_rows: int | None = None) -> torch.Tensor:
        """Projected phoneme vectors on Whisper's rows: (T, 128), T = mel frames // 2 by default."""
        total_rows = num_rows(len(wave)) if total_rows is None else total_rows
        frames = self.hidden_frames(wave)  # (F, hidden) ~49 Hz
        projected = self.proj(frames.to(self.device)).float().cpu()  # (F, 128)
        return resample_to_rows(projected, total_rows, self.stride, self.receptive_field)


def _row_positions(rows: torch.Tensor, stride: int, receptive_field: int) -> torch.Tensor:
    """Fractional Wav2Vec2 frame index of each Whisper row's centre (sample ``320 r``)."""
    return (rows.double() * (2 * HOP_LENGTH) - (receptive_field - 1) / 2) / stride


def _interpolate(frames: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of (F, D) frames at fractional indices ``pos`` (already clamped)."""
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=frames.shape[0] - 1)
    w = (pos - lo).float()[:, None]  # (T, 1)
    return (1 - w) * frames[lo] + w * frames[hi]  # (T, D)


def resample_to_rows(frames: torch.Tensor, total_rows: int, stride: int, receptive_field: int) -> torch.Tensor:
    """Linear interpolation in time from Wav2Vec2 frames (F, D) to Whisper rows (T, D).

    Frame ``j`` covers samples ``[stride j, stride j + rf)`` (centre ``stride j + (rf - 1) / 2``);
    row ``r`` is centred on mel frame ``2 r``, i.e. sample ``2 * 160 * r``. Times outside the
    frames' span take the nearest frame.
    """
    if frames.shape[0] == 0:
        return torch.zeros(total_rows, frames.shape[1])
    pos = _row_positions(torch.arange(total_rows), stride, receptive_field).clamp(0, frames.shape[0] - 1)
    return _interpolate(frames, pos)
