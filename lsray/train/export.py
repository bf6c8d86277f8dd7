"""Write a trained UNet as an inference bundle (the only thing training hands to the pipeline).

The new bundle takes Whisper, the VAE and the mask from the bundle training started from and
holds exactly the UNet weights its ``config.json`` describes: training-only modules (the lip
discriminator, EMA targets, optimizers) live in training checkpoints, never here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from lsray.media.atomic import atomic_directory
from lsray.models.bundle import CONFIG_FILE, MASK_FILE, UNET_FILE, VAE_DIR, WHISPER_DIR, BundleConfig, resolve_bundle


def save_inference_bundle(out: str | Path, unet: torch.nn.Module, base: str | Path, config: BundleConfig) -> Path:
    """Write ``out`` (a local directory) atomically: temp sibling, then rename."""
    from safetensors.torch import save_file

    base_dir, out = resolve_bundle(base), Path(out)
    with atomic_directory(out) as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in unet.state_dict().items()}
        save_file(state, str(tmp / UNET_FILE))
        for sub in (WHISPER_DIR, VAE_DIR):
            if (base_dir / sub).is_dir():
                shutil.copytree(base_dir / sub, tmp / sub)
        mask = base_dir / config.mask.file
        if mask.is_file():
            shutil.copyfile(mask, tmp / config.mask.file)
        config.write(tmp / CONFIG_FILE)
    return out


__all__ = ["save_inference_bundle", "MASK_FILE"]
