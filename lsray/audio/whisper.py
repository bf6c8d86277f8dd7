"""Whisper audio features exactly as LatentSync computes them, without its 30-second glitch.

LatentSync feeds the UNet every intermediate state of Whisper's encoder: the input embedding and
each block's output (no final layer norm), 50 rows per second. Upstream encodes each 30 s span on
its own, so features jump every 1500 rows. Here the encoder windows overlap (30 s windows every
20 s by default) and the overlaps are cross-faded linearly. A file of 30 s or less is a single
window, so it matches upstream exactly; ``hop_frames=3000`` reproduces upstream on any length.

Everything is streamed: one window's mel and features are alive at a time, so memory is bounded
by the window, never by the length of the audio.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from lsray.audio.mel import (
    WINDOW_FRAMES,
    WINDOW_ROWS,
    log_mel_max,
    log_mel_span,
    normalise,
    num_frames,
    num_rows,
)
from lsray.audio.wave import WaveSource
from lsray.audio.windows import rows_for_times, stream_windows
from lsray.device import default_device
from lsray.errors import CheckpointMismatchError, MediaError, MissingWeightError

if TYPE_CHECKING:  # transformers loads where a model is built: the row arithmetic here needs none of it
    from transformers import WhisperConfig

#: Default hop between encoder windows: 20 s (2000 mel frames), i.e. a 10 s cross-faded overlap.
DEFAULT_HOP_FRAMES = 2_000


@dataclass(frozen=True)
class FeatureBlock:
    """A run of finished feature rows: ``features[start_row : start_row + len(features)]``."""

    start_row: int
    features: torch.Tensor  # (rows, L, C)


def openai_to_hf_state_dict(openai_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename OpenAI encoder keys (``encoder.blocks.N.attn.query``...) to transformers' names.

    OpenAI's key projection has no bias, and neither has transformers' ``k_proj``, so the mapping
    is one to one. The positional embedding becomes the (frozen) ``embed_positions`` table.
    """
    renames = {
        "attn.query": "self_attn.q_proj",
        "attn.key": "self_attn.k_proj",
        "attn.value": "self_attn.v_proj",
        "attn.out": "self_attn.out_proj",
        "attn_ln": "self_attn_layer_norm",
        "mlp.0": "fc1",
        "mlp.2": "fc2",
        "mlp_ln": "final_layer_norm",
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in openai_sd.items():
        if not key.startswith("encoder."):
            continue  # the text decoder is not used
        name = key[len("encoder.") :]
        if name == "positional_embedding":
            name = "embed_positions.weight"
        elif name.startswith("ln_post."):
            name = "layer_norm." + name[len("ln_post.") :]
        elif name.startswith("blocks."):
            _, idx, rest = name.split(".", 2)
            for old, new in renames.items():
                if rest.startswith(old + "."):
                    rest = new + rest[len(old) :]
                    break
            name = f"layers.{idx}.{rest}"
        out[name] = value
    return out


def config_from_openai_dims(dims: dict[str, int]) -> WhisperConfig:
    """A transformers ``WhisperConfig`` whose encoder has the checkpoint's audio dims."""
    from transformers import WhisperConfig

    return WhisperConfig(
        num_mel_bins=dims["n_mels"],
        max_source_positions=dims["n_audio_ctx"],
        d_model=dims["n_audio_state"],
        encoder_attention_heads=dims["n_audio_head"],
        encoder_layers=dims["n_audio_layer"],
        encoder_ffn_dim=4 * dims["n_audio_state"],
        # decoder dims are irrelevant (only the encoder is built) but keep them consistent
        decoder_attention_heads=dims.get("n_text_head", dims["n_audio_head"]),
        decoder_layers=dims.get("n_text_layer", 1),
        vocab_size=dims.get("n_vocab", 51865),
        max_target_positions=dims.get("n_text_ctx", 448),
        activation_function="gelu",
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder (transformers' module) producing LatentSync's multi-layer features.

    Build with :meth:`from_openai` (LatentSync's ``checkpoints/whisper/tiny.pt``) or
    :meth:`from_pretrained` (a local transformers Whisper folder), or directly from a config.
    """

    def __init__(self, config: WhisperConfig, device: torch.device | None = None) -> None:
        from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

        super().__init__()
        config._attn_implementation = "eager" if config._attn_implementation is None else config._attn_implementation
        self.encoder = HFWhisperEncoder(config)
        self.encoder.eval()
        self.to(device or default_device())

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def from_openai(cls, path: str | Path, device: torch.device | None = None) -> "WhisperEncoder":
        """Load an OpenAI-format checkpoint ``{"dims": {...}, "model_state_dict": {...}}``."""
        path = Path(path)
        if not path.is_file():
            raise MissingWeightError(path, "Whisper checkpoint")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        dims = ckpt["dims"]
        model = cls(config_from_openai_dims(dims), device=torch.device("cpu"))
        state = openai_to_hf_state_dict(ckpt["model_state_dict"])
        missing, unexpected = model.encoder.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointMismatchError(f"{path}: missing keys {missing}, unexpected keys {unexpected}")
        return model.to(device or default_device())

    @classmethod
    def from_pretrained(cls, hf_dir: str | Path, device: torch.device | None = None) -> "WhisperEncoder":
        """Load the encoder of a local transformers Whisper folder (config.json + weights).

        Accepts full models (``WhisperForConditionalGeneration`` / ``WhisperModel``: keys under
        ``model.encoder.`` or ``encoder.``) and encoder-only saves; the decoder is ignored. The
        state dict is read here rather than through ``from_pretrained`` because a prefix mismatch
        there silently leaves random weights.
        """
        hf_dir = Path(hf_dir)
        if not (hf_dir / "config.json").is_file():
            raise MissingWeightError(hf_dir / "config.json", "Whisper config")
        files = sorted(hf_dir.glob("model*.safetensors"))
        if files:
            from safetensors.torch import load_file

            state: dict[str, torch.Tensor] = {}
            for f in files:
                state.update(load_file(str(f)))
        elif (hf_dir / "pytorch_model.bin").is_file():
            state = torch.load(hf_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
        else:
            raise MissingWeightError(hf_dir / "model.safetensors", "Whisper weights")
        from transformers import WhisperConfig

        config = WhisperConfig.from_pretrained(hf_dir, local_files_only=True)
        encoder_state = {}
        for key, value in state.items():
            if "decoder" in key or key.startswith("proj_out."):
                continue
            if "encoder." in key:
                encoder_state[key.split("encoder.", 1)[1]] = value
            else:
                encoder_state[key] = value  # an encoder-only save has bare keys
        model = cls(config, device=torch.device("cpu"))
        missing, unexpected = model.encoder.load_state_dict(encoder_state, strict=False)
        missing = [k for k in missing if k != "embed_positions.weight"]  # fixed sinusoids if absent
        if missing or unexpected:
            raise CheckpointMismatchError(f"{hf_dir}: missing keys {missing}, unexpected keys {unexpected}")
        return model.to(device or default_device())

    # ---- shape facts ---------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """L: the input embedding plus one per encoder block."""
        return len(self.encoder.layers) + 1

    @property
    def dim(self) -> int:
        """C: the encoder width (384 for the released tiny)."""
        return self.encoder.config.d_model

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- encoding ------------------------------------------------------------------------
    @torch.no_grad()
    def encode_window(self, mel: torch.Tensor) -> torch.Tensor:
        """Every encoder state of one 30 s window: (B, 80, 3000) mel -> (B, 1500, L, C).

        The layers are driven here rather than through ``forward`` because LatentSync wants the
        block outputs without the final layer norm, which transformers' hidden states include.
        """
        enc = self.encoder
        x = nn.functional.gelu(enc.conv1(mel.to(self.device)))  # (B, C, 3000)
        x = nn.functional.gelu(enc.conv2(x))  # (B, C, 1500)
        x = x.permute(0, 2, 1) + enc.embed_positions.weight  # (B, 1500, C)
        states = [x]
        for layer in enc.layers:
            x = layer(x, None)
            states.append(x)
        return torch.stack(states, dim=2)  # (B, 1500, L, C)

    @staticmethod
    def window_starts(total_frames: int, hop_frames: int = DEFAULT_HOP_FRAMES) -> list[int]:
        """First mel frame of each encoder window; one window for 30 s or less (upstream exact)."""
        if hop_frames % 2 or not 0 < hop_frames <= WINDOW_FRAMES:
            raise ValueError(f"hop_frames must be even and in (0, {WINDOW_FRAMES}], got {hop_frames}")
        count = 1 if total_frames <= WINDOW_FRAMES else 1 + -(-(total_frames - WINDOW_FRAMES) // hop_frames)
        return [k * hop_frames for k in range(count)]

    def stream(
        self,
        wave: WaveSource,
        hop_frames: int = DEFAULT_HOP_FRAMES,
        rows: tuple[int, int] | None = None,
        file_max: float | None = None,
    ) -> Iterator[FeatureBlock]:
        """Yield the features of ``wave`` (16 kHz mono) as consecutive blocks of finished rows.

        Pass 1 reads the whole file once for its max log-mel (LatentSync floors at max - 8);
        pass ``file_max`` when it is already known (a shard of a long clip). Pass 2 encodes one
        window at a time; rows shared with the next window are held back (``1500 - hop/2`` rows)
        and cross-faded when it arrives, so at most one window's mel (80, 3000), one window's
        states (1500, L, C) and the held-back tail are alive at once.

        ``rows=(r0, r1)`` encodes only the windows those rows need (a shard's span): the blocks
        then start at or before ``r0`` and cover ``r1``, with values identical to the full stream.
        """
        total_frames = num_frames(len(wave))
        total_rows = num_rows(len(wave))
        if file_max is None:
            file_max = log_mel_max(wave)
        hop_rows = hop_frames // 2
        overlap = WINDOW_ROWS - hop_rows
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)  # new window's weight
        starts = self.window_starts(total_frames, hop_frames)
        k_lo, k_hi = window_range(len(starts), hop_frames, rows)
        tail: torch.Tensor | None = None  # (overlap, L, C) rows [start_k, start_k + overlap) of window k-1
        for k, start in enumerate(starts):
            if not k_lo <= k <= k_hi:
                continue
            mel = normalise(log_mel_span(wave, start, start + WINDOW_FRAMES), file_max)  # (80, <=3000)
            # A short last window is zero-padded in NORMALISED log-mel space, as upstream does.
            mel = nn.functional.pad(mel, (0, WINDOW_FRAMES - mel.shape[1]))  # (80, 3000)
            first_row = start // 2
            feats = self.encode_window(mel[None])[0].float().cpu()  # (1500, L, C)
            feats = feats[: total_rows - first_row]  # rows past the end of the audio are dropped
            if tail is not None and overlap:
                n = min(overlap, feats.shape[0])
                w = ramp[:n, None, None]
                feats[:n] = (1 - w) * tail[:n] + w * feats[:n]
            if k == len(starts) - 1:
                yield FeatureBlock(first_row, feats)
            elif k == k_hi:  # a ranged stream stops here: its rows lie in this window's head
                yield FeatureBlock(first_row, feats[:hop_rows].clone())
            else:
                yield FeatureBlock(first_row, feats[:hop_rows].clone())
                tail = feats[hop_rows:].clone()

    def features(self, wave: WaveSource, hop_frames: int = DEFAULT_HOP_FRAMES) -> torch.Tensor:
        """All feature rows of ``wave``: (T, L, C), T = 50 per second (= mel frames // 2).

        Equal to LatentSync's ``audio2feat`` for audio up to 30 s; longer audio is continuous
        across the 30 s boundaries (cross-faded overlapping windows).
        """
        return torch.cat([block.features for block in self.stream(wave, hop_frames)], dim=0)

    def stream_windows(
        self,
        wave: WaveSource,
        times_s: Sequence[float] | np.ndarray,
        hop_frames: int = DEFAULT_HOP_FRAMES,
        batch: int = 64,
        file_max: float | None = None,
    ) -> Iterator[torch.Tensor]:
        """Per-frame windows at ascending ``times_s`` (e.g. one shard's frames), in batches of
        (<= batch, 10 L, C), computed from the stream: the whole file's features never exist.

        Only the encoder windows these times need are run; ``file_max`` skips the first pass."""
        total = num_rows(len(wave))
        blocks = self.stream(wave, hop_frames, rows=rows_for_times(times_s, total), file_max=file_max)
        yield from windows_from_blocks(blocks, total, times_s, batch)


def windows_from_blocks(
    blocks: Iterator[FeatureBlock], total_rows: int, times_s: Sequence[float] | np.ndarray, batch: int
) -> Iterator[torch.Tensor]:
    """:func:`stream_windows` over a (possibly ranged) block stream, starting at its first row."""
    first = next(blocks)
    features = itertools.chain([first.features], (b.features for b in blocks))
    yield from stream_windows(features, total_rows, times_s, batch, first_row=first.start_row)


def window_range(count: int, hop_frames: int, rows: tuple[int, int] | None) -> tuple[int, int]:
    """Indices (first, last) of the encoder windows whose rows overlap ``rows = (r0, r1)``."""
    if rows is None:
        return 0, count - 1
    hop_rows = hop_frames // 2
    r0, r1 = rows
    first = max(0, -(-(r0 - WINDOW_ROWS + 1) // hop_rows))
    last = min(count - 1, max(0, r1 - 1) // hop_rows)
    return min(first, last), last


def samples_for_rows(rows: tuple[int, int], total_samples: int, hop_frames: int = DEFAULT_HOP_FRAMES) -> tuple[int, int]:
    """Sample span ``[lo, hi)`` a ranged stream over ``rows`` reads (with STFT reflection margin).

    A shard of a long clip carries only these samples of the 16 kHz track (see
    :class:`lsray.audio.mel.WaveSlice`), plus the whole file's ``file_max``.
    """
    from lsray.audio.mel import HOP_LENGTH, N_FFT

    starts = WhisperEncoder.window_starts(num_frames(total_samples), hop_frames)
    k_lo, k_hi = window_range(len(starts), hop_frames, rows)
    lo = starts[k_lo] * HOP_LENGTH - N_FFT - 1  # reflect margin _padded_samples reads
    hi = (starts[k_hi] + WINDOW_FRAMES) * HOP_LENGTH + N_FFT + 1
    return max(0, lo), min(total_samples, hi)


def load_wave(path: str | Path) -> np.ndarray:
    """Read a 16 kHz mono wav as float32 in [-1, 1) (int16 / 32768, as upstream's ffmpeg path)."""
    import soundfile as sf

    from lsray.audio.mel import SAMPLE_RATE

    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "audio file not found")
    wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise MediaError(path, f"expected {SAMPLE_RATE} Hz audio, got {sr} Hz (resample first)")
    return wave.mean(axis=1).astype(np.float32)
