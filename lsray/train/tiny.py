"""Tiny, random-weight models and bundles for tests, demos and CI (DESIGN.md: full-size models are
for GPUs). Nothing here is downloaded; every model is built from a config with a fixed seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsray.models.config import UNetConfig
from lsray.models.syncnet import SyncNetConfig


def tiny_unet_config(audio_dim: int = 64, **upgrades: Any) -> UNetConfig:
    """Two levels of 32 channels (~0.6 M parameters): a 16-frame 8x8-latent step takes ~0.2 s on CPU."""
    data: dict[str, Any] = dict(
        block_out_channels=(32, 32), down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=audio_dim, attention_head_dim=8, motion_module_resolutions=(1, 2),
        motion_module_kwargs={"num_attention_heads": 4, "norm_num_groups": 8},
    )
    data.update(upgrades)
    if "temporal" not in data:
        data["temporal"] = {"max_len": 24}
    return UNetConfig.model_validate(data)


def tiny_syncnet_config(num_frames: int = 5, image_size: int = 64) -> SyncNetConfig:
    return SyncNetConfig(num_frames=num_frames, image_size=image_size, visual_channels=(16, 32, 32),
                         audio_channels=(8, 16, 32), embed_dim=32, norm_groups=8)


def tiny_whisper(d_model: int = 64, seed: int = 0, encoder_layers: int = 1, conv_gain: float = 4.0,
                 position_scale: float = 0.1):
    """A random, frozen Whisper encoder whose features follow the audio.

    With transformers' own init (weights ~ N(0, 0.02)) the two input convs barely pass the mel
    through and the sinusoidal position table is >99 % of the features' variance over time: every
    clip gives the same features at the same frame index, so a UNet trained on them cannot read
    the speech (the demo bundle's first stage 2 ignored its audio for exactly this reason). The
    convs are therefore re-drawn at ``conv_gain`` times PyTorch's default scale and the position
    table is scaled by ``position_scale``; at 4 and 0.1 the position explains ~7 % of the variance
    (speech that starts at similar times across clips), features have std ~0.8.
    """
    from transformers import WhisperConfig

    from lsray.audio.whisper import WhisperEncoder

    torch.manual_seed(seed)
    cfg = WhisperConfig(d_model=d_model, encoder_layers=encoder_layers, encoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
                        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=2 * d_model, num_mel_bins=80)
    whisper = WhisperEncoder(cfg, device=torch.device("cpu"))
    enc = whisper.encoder
    with torch.no_grad():
        for conv in (enc.conv1, enc.conv2):
            conv.reset_parameters()
            conv.weight.mul_(conv_gain)
        enc.embed_positions.weight.mul_(position_scale)
    return whisper


def tiny_phoneme_encoder(seed: int = 0, **kwargs: Any):
    """A random phoneme branch (upgrade 1): a 2-layer, 32-wide Wav2Vec2ForCTC with the base models'
    conv stack (320-sample stride, 400-sample receptive field) and the real 128-d projection, so
    fused tokens have their real width. ``kwargs`` go to PhonemeEncoder (chunk_s, normalize, ...)."""
    from transformers import Wav2Vec2Config

    from lsray.audio.phoneme import PhonemeEncoder

    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2)
    return PhonemeEncoder.from_config(cfg, device=torch.device("cpu"), **kwargs)


def tiny_vae(seed: int = 0):
    """A random 4-level AutoencoderKL: 4 latent channels, /8 like the SD VAE."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=8, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


def make_tiny_bundle(out: str | Path, unet_config: UNetConfig | None = None, seed: int = 0) -> Path:
    """A complete random bundle (tiny UNet, Whisper, VAE, generated mask) that ``load_bundle`` reads."""
    from PIL import Image

    from lsray.bundle.config import AudioConfig, BundleConfig, MaskInfo, WhisperLayout
    from lsray.bundle.convert import default_mask
    from lsray.models.unet import LipSyncUNet
    from lsray.train.export import save_inference_bundle

    whisper = tiny_whisper(seed=seed)
    cfg = unet_config or tiny_unet_config(audio_dim=whisper.dim)
    torch.manual_seed(seed)
    unet = LipSyncUNet(cfg)
    # A random UNet with zero-initialised temporal outputs; give those a little weight so the
    # temporal layers matter from the start (a trained checkpoint would have them non-zero).
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "proj_out" in name and "motion_modules" in name:
                p.normal_(0, 0.02)
    out = Path(out)
    base = out.with_name(out.name + "-assets")
    base.mkdir(parents=True, exist_ok=True)
    whisper.encoder.save_pretrained(str(base / "whisper"), safe_serialization=True)
    tiny_vae(seed).save_pretrained(str(base / "vae"), safe_serialization=True)
    Image.fromarray(default_mask(256)).save(base / "mask.png")
    config = BundleConfig(unet=cfg, audio=AudioConfig(whisper=WhisperLayout(encoder_layers=1, dim=whisper.dim)),
                          mask=MaskInfo(source="generated"))
    return save_inference_bundle(out, unet, base, config)


def synthetic_shards(out: str | Path, *, clips: int = 2, frames: int = 24, size: int = 64, audio_tokens: int = 20,
                     audio_dim: int = 64, seed: int = 0) -> Path:
    """Random training shards in the ``prepare-training`` layout (no video decoding, no faces):
    for unit tests of the trainers that do not need real crops."""
    import io

    import cv2
    import pandas as pd

    from lsray.bundle.convert import default_mask

    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    yy, xx = np.mgrid[0:size, 0:size]
    for c in range(clips):
        phase = rng.uniform(0, 2 * np.pi)
        crops = np.empty((frames, size, size, 3), np.uint8)
        for f in range(frames):  # a smooth pattern with a "mouth" that opens and closes
            base = 128 + 60 * np.sin(xx / 7.0 + phase) * np.cos(yy / 9.0)
            mouth = ((yy - 0.75 * size) ** 2 / (0.08 * size) ** 2 + (xx - size / 2) ** 2 / (0.2 * size) ** 2) < (
                0.5 + 0.5 * np.sin(f / 2 + phase))
            img = np.where(mouth, 30.0, base)
            crops[f] = np.clip(np.stack([img, img * 0.8, img * 0.6], -1), 0, 255).astype(np.uint8)
        arrays = {
            f"crops_{size}": crops,
            "whisper": rng.normal(size=(frames, audio_tokens, audio_dim)).astype(np.float16),
            "mel": rng.uniform(-4, 4, size=(80, int(frames * 3.2) + 8)).astype(np.float32),
            "start_frame": np.array(0), "fps": np.array(25.0),
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        (out / "clips" / f"c{c}.npz").write_bytes(buf.getvalue())
        rows.append({"clip_id": f"c{c}", "file": f"clips/c{c}.npz", "frames": frames, "fps": 25.0,
                     "resolutions": [size], "audio_tokens": audio_tokens, "audio_dim": audio_dim, "phoneme": False})
    pd.DataFrame(rows).to_parquet(out / "index.parquet", index=False)
    cv2.imwrite(str(out / "mask.png"), default_mask(256))
    return out
