"""Write a trained UNet as an inference bundle (the only thing training hands to the pipeline).

The new bundle takes Whisper, the VAE and the mask from the bundle training started from (and,
for fused audio, the phoneme encoder: the base's, or the one an upgrade adds) and holds exactly
the UNet weights its ``config.json`` describes: training-only modules (the lip discriminator,
EMA targets, optimizers) live in training checkpoints, never here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from lsray.errors import BundleError, MissingWeightError
from lsray.media.atomic import atomic_directory
from lsray.bundle.config import CONFIG_FILE, MASK_FILE, PHONEME_DIR, UNET_FILE, VAE_DIR, WHISPER_DIR, BundleConfig
from lsray.bundle.load import resolve_bundle


def save_inference_bundle(
    out: str | Path, unet: torch.nn.Module, base: str | Path, config: BundleConfig,
    *, phoneme_dir: str | Path | None = None, extra_unets: dict[str, torch.nn.Module] | None = None,
) -> Path:
    """Write ``out`` (a local directory) atomically: temp sibling, then rename.

    A fused ``config`` needs a phoneme encoder: ``phoneme_dir`` (a
    ``PhonemeEncoder.save_pretrained`` folder, for an upgrade to fused audio) or else the base's
    ``phoneme/``. Checked before anything is written, so a bundle that could not load is never made.
    ``extra_unets`` maps a file inside the bundle to more weights (an LCM student's teacher).
    """
    from safetensors.torch import save_file

    base_dir, out = resolve_bundle(base), Path(out)
    fused = config.audio.encoder == "fused"
    if phoneme_dir is not None and not fused:
        raise BundleError(f"a phoneme encoder ({phoneme_dir}) goes with fused audio, but the config's encoder is "
                          f"{config.audio.encoder!r}")
    phoneme = Path(phoneme_dir) if phoneme_dir is not None else base_dir / PHONEME_DIR
    if fused and not phoneme.is_dir():
        raise MissingWeightError(phoneme, "phoneme encoder folder of a fused-audio bundle")
    with atomic_directory(out) as tmp:
        for name, model in {UNET_FILE: unet, **(extra_unets or {})}.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / name))
        for sub in (WHISPER_DIR, VAE_DIR):
            if (base_dir / sub).is_dir():
                shutil.copytree(base_dir / sub, tmp / sub)
        if fused:
            shutil.copytree(phoneme, tmp / PHONEME_DIR)
        mask = base_dir / config.mask.file
        if mask.is_file():
            shutil.copyfile(mask, tmp / config.mask.file)
        config.write(tmp / CONFIG_FILE)
    return out


__all__ = ["save_inference_bundle", "MASK_FILE"]
