"""Build tiny LatentSync-style checkpoint folders and lsray bundles for tests.

The UNet checkpoint and mask are the parity fixtures (random weights, small config), linked in
place from ``../shared/fixtures/latentsync`` into a temporary folder, never copied into the repo;
the Whisper checkpoint (384 wide, as the UNet's audio attention expects) and the VAE are random
ones from :mod:`lsray.models.random`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lsray.models.random import random_openai_whisper, random_vae


def make_latentsync_src(
    dst: Path,
    parity_dir: Path,
    *,
    unet: bool = True,
    whisper: bool = True,
    config: bool = True,
    vae: bool = True,
    mask: bool = True,
) -> Path:
    """A LatentSync checkpoint folder: latentsync_unet.pt, config.json, whisper/tiny.pt, vae/, mask.png.

    Each part can be left out to test the converter's handling of missing files.
    """
    dst.mkdir(parents=True, exist_ok=True)
    small = parity_dir / "unet_small"
    if unet:
        os.symlink(small / "latentsync_unet.pt", dst / "latentsync_unet.pt")
    if config:
        os.symlink(small / "config.json", dst / "config.json")
    if whisper:
        random_openai_whisper(dst / "whisper" / "tiny.pt")
    if vae:
        random_vae(dst / "vae")
    if mask:
        os.symlink(parity_dir / "mask.png", dst / "mask.png")
    return dst


def make_tiny_bundle(dst: Path, parity_dir: Path, **upgrades) -> Path:
    """Convert a tiny SRC (built next to ``dst``) into a bundle at ``dst``; returns ``dst``."""
    from lsray.bundle.convert import convert_latentsync

    src = make_latentsync_src(dst.with_name(dst.name + "-src"), parity_dir)
    return convert_latentsync(src, dst, upgrades=upgrades or None)


def nudge_weight(weights: Path) -> None:
    """Retrained weights of the same shape: one value of the first tensor changes, the safetensors
    file keeps its size, its metadata and every shape (it still loads strictly)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights), framework="pt") as f:
        metadata = f.metadata()
        state = {key: f.get_tensor(key) for key in f.keys()}
    first = state[sorted(state)[0]]
    first.view(-1)[0] += 1.0
    save_file(state, str(weights), metadata=metadata)
