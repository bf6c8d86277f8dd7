"""``lsray convert``: a LatentSync checkpoint folder -> an lsray model bundle.

Source folder (a user's LatentSync ``checkpoints/`` plus, optionally, its config and assets)::

    SRC/latentsync_unet.pt       required  {"global_step", "state_dict"} as released
    SRC/whisper/tiny.pt          required  OpenAI-format Whisper checkpoint
    SRC/config.json | stage2*.yaml  optional  unet config (yaml: its ``model:`` section);
                                 default: the released stage2 architecture
    SRC/vae/                     optional  diffusers AutoencoderKL folder (sd-vae-ft-mse)
    SRC/mask.png                 optional  LatentSync's latentsync/utils/mask.png; when absent a
                                 default lower-face mask is generated (``mask.source: generated``)

The bundle is built in ``OUT.partial-<pid>`` beside ``OUT`` and renamed into place at the end, so
``OUT`` either does not exist or is complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lsray.media.atomic import atomic_directory
from lsray.errors import BundleError, MissingWeightError
from lsray.bundle.config import (
    CONFIG_FILE,
    MASK_FILE,
    UNET_FILE,
    VAE_DIR,
    WHISPER_DIR,
    AudioConfig,
    BundleConfig,
    MaskInfo,
    Provenance,
    WhisperLayout,
)


def default_mask(size: int = 256) -> "Any":
    """A procedural inpainting mask: white (keep) everywhere but the lower face, which is black.

    Approximates the region of LatentSync's ``mask.png`` on its aligned 256 crops (rows ~95-242,
    nose to chin, nearly the full width) as a rectangle with rounded lower corners. Released
    LatentSync weights were trained with upstream's exact mask; pass it when you have it.
    """
    import numpy as np

    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    top, bottom, left, right, r = 0.37, 0.95, 0.04, 0.96, 0.2
    inside = (yy >= top) & (yy <= bottom) & (xx >= left) & (xx <= right)
    for cx in (left + r, right - r):  # round the two lower corners (jaw line)
        cy = bottom - r
        in_corner = (yy > cy) & ((xx < cx) if cx < 0.5 else (xx > cx))
        inside &= ~(in_corner & ((xx - cx) ** 2 + (yy - cy) ** 2 > r**2))
    return np.where(inside, 0, 255).astype(np.uint8)


def find_unet_config(src: Path, resolution: int | None) -> Path | None:
    """``config.json`` in SRC, else the ``stage2*.yaml`` matching the resolution, else None."""
    if (src / "config.json").is_file():
        return src / "config.json"
    yamls = sorted(src.glob("stage2*.yaml"))
    if len(yamls) <= 1:
        return yamls[0] if yamls else None
    want = "stage2_512.yaml" if resolution == 512 else "stage2.yaml"
    for y in yamls:
        if y.name == want:
            return y
    raise BundleError(f"{src}: several unet configs ({', '.join(y.name for y in yamls)}); pass --unet-config")


def _yaml_resolution(path: Path | None) -> int | None:
    """``data.resolution`` of an upstream stage2 yaml, if it has one."""
    if path is None or path.suffix not in (".yaml", ".yml"):
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None  # UNetConfig.from_latentsync reports the broken file
    res = (data or {}).get("data", {}).get("resolution") if isinstance(data, dict) else None
    return res if res in (256, 512) else None


def unet_upgrades(
    cross_attention_dim: int | None = None,
    temporal_band: int | None = None,
    anchor_stride: int | None = None,
    time_cond_proj_dim: int | None = None,
) -> dict[str, Any]:
    """The ``**upgrades`` of :meth:`LipSyncUNet.from_latentsync` for the CLI's upgrade flags."""
    upgrades: dict[str, Any] = {}
    if cross_attention_dim is not None:
        upgrades["cross_attention_dim"] = cross_attention_dim
    if temporal_band is not None or anchor_stride is not None:
        upgrades["temporal"] = {"band": temporal_band, "anchor_stride": anchor_stride}
    if time_cond_proj_dim is not None:
        upgrades["time_cond_proj_dim"] = time_cond_proj_dim
    return upgrades


def convert_latentsync(
    src: str | Path,
    out: str | Path,
    *,
    resolution: int | None = None,
    unet_config: str | Path | None = None,
    vae: str | Path | None = None,
    mask: str | Path | None = None,
    upgrades: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert a LatentSync checkpoint folder into a bundle at ``out``; returns ``out``.

    ``upgrades`` go to :meth:`LipSyncUNet.from_latentsync` (see :func:`unet_upgrades`).
    ``resolution`` defaults to the yaml's ``data.resolution`` or 256.
    """
    import torch
    from PIL import Image

    from lsray.audio.whisper import WhisperEncoder
    from lsray.models.config import UNetConfig
    from lsray.models.unet import LipSyncUNet

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise MissingWeightError(src, "LatentSync checkpoint folder")
    if out.exists() and not overwrite:
        raise BundleError(f"{out} already exists (pass --force to replace it)")
    ckpt_path = src / "latentsync_unet.pt"
    whisper_path = src / "whisper" / "tiny.pt"
    for path, what in ((ckpt_path, "LatentSync UNet checkpoint"), (whisper_path, "Whisper checkpoint")):
        if not path.is_file():
            raise MissingWeightError(path, what)
    cfg_path = Path(unet_config) if unet_config is not None else find_unet_config(src, resolution)
    if cfg_path is not None and not cfg_path.is_file():
        raise MissingWeightError(cfg_path, "unet config")
    resolution = resolution or _yaml_resolution(cfg_path) or 256
    if resolution not in (256, 512):
        raise BundleError(f"resolution must be 256 or 512, got {resolution}")
    vae_dir = Path(vae) if vae is not None else (src / VAE_DIR if (src / VAE_DIR).is_dir() else None)
    mask_path = Path(mask) if mask is not None else (src / MASK_FILE if (src / MASK_FILE).is_file() else None)
    if mask_path is not None:
        if not mask_path.is_file():
            raise MissingWeightError(mask_path, "inpainting mask")
        try:
            with Image.open(mask_path) as image:
                image.verify()
        except Exception as exc:
            raise BundleError(f"{mask_path}: not a readable mask image ({exc})") from exc

    # --- load and check everything before writing anything --------------------------------------
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    global_step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
    # Without a config: the released stage2 architecture (stage2_512 differs only in data resolution).
    base: Any = cfg_path if cfg_path is not None else UNetConfig().model_dump(mode="json")
    try:
        unet = LipSyncUNet.from_latentsync(checkpoint, base, **(upgrades or {}))
    except ValueError as exc:  # pydantic validation of the config + upgrades
        raise BundleError(f"invalid unet config / upgrades: {exc}") from exc
    del checkpoint
    whisper = WhisperEncoder.from_openai(whisper_path, device=torch.device("cpu"))
    vae_model = None
    if vae_dir is not None:
        from diffusers import AutoencoderKL

        if not (vae_dir / "config.json").is_file():
            raise MissingWeightError(vae_dir / "config.json", "VAE config")
        vae_model = AutoencoderKL.from_pretrained(str(vae_dir), local_files_only=True, low_cpu_mem_usage=False)

    config = BundleConfig(
        resolution=resolution,
        unet=unet.config,
        audio=AudioConfig(whisper=WhisperLayout(encoder_layers=len(whisper.encoder.layers), dim=whisper.dim)),
        mask=MaskInfo(source="latentsync" if mask_path is not None else "generated"),
        provenance=Provenance(source=str(src.resolve()), global_step=global_step),
    )

    # --- write into a sibling temp dir, then rename ----------------------------------------------
    with atomic_directory(out) as tmp:
        from safetensors.torch import save_file
        from transformers.utils import logging as hf_logging

        save_file({k: v.detach().contiguous() for k, v in unet.state_dict().items()}, str(tmp / UNET_FILE))
        hf_logging.disable_progress_bar()
        # WhisperEncoder has no save method: its transformers encoder's save_pretrained writes the
        # local HF layout (config.json + model.safetensors) that WhisperEncoder.from_pretrained reads.
        whisper.encoder.save_pretrained(str(tmp / WHISPER_DIR), safe_serialization=True)
        if vae_model is not None:
            vae_model.save_pretrained(str(tmp / VAE_DIR), safe_serialization=True)
        if mask_path is not None:
            shutil.copyfile(mask_path, tmp / MASK_FILE)  # byte-exact: released weights were trained with it
        else:
            Image.fromarray(default_mask(256)).save(tmp / MASK_FILE)
        config.write(tmp / CONFIG_FILE)
    return out
