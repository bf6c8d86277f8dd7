"""Model bundles: one directory holding everything the pipeline needs to dub a video.

Layout (DESIGN.md "Model bundles")::

    bundle/
      config.json          BundleConfig (pydantic): architecture, audio layout, sampler defaults
      unet.safetensors     LipSyncUNet weights (strict: every key of the config's model)
      whisper/             Whisper encoder, local transformers format (config.json + model.safetensors)
      phoneme/             fused-audio bundles only: phoneme-CTC Wav2Vec2 (transformers format) +
                           projection.safetensors, as PhonemeEncoder.save_pretrained writes it
      vae/                 diffusers AutoencoderKL folder (optional: only needed to encode/decode frames)
      mask.png             inpainting mask, black = region the UNet regenerates

:func:`load_bundle` reads one into a typed :class:`ModelBundle`. Nothing is downloaded: a missing
file is :class:`MissingWeightError` naming the path expected, an unreadable config is
:class:`BundleError`. Bundle locations go through :func:`resolve_bundle`, a scheme -> resolver
table, so remote stores (``s3://``) plug in with :func:`register_resolver` without touching the loader.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lsray.errors import BundleError, LsrayError, MissingWeightError
from lsray.models.config import UNetConfig
from lsray.resolution import Resolution
from lsray.sampling.schedulers import SchedulerConfig

if TYPE_CHECKING:  # heavy imports stay out of module import (``lsray --help`` must be fast)
    import numpy as np
    import torch
    from diffusers import AutoencoderKL

    from lsray.audio.fused import FusedAudioEncoder
    from lsray.audio.phoneme import PhonemeEncoder
    from lsray.audio.whisper import WhisperEncoder
    from lsray.models.unet import LipSyncUNet

FORMAT_VERSION = 1

# File names inside a bundle (one place, used by the writer, the loader and `lsray doctor`).
CONFIG_FILE = "config.json"
UNET_FILE = "unet.safetensors"
WHISPER_DIR = "whisper"
PHONEME_DIR = "phoneme"
VAE_DIR = "vae"
MASK_FILE = "mask.png"


# --------------------------------------------------------------------------------------------
# config.json
# --------------------------------------------------------------------------------------------
class WhisperLayout(BaseModel):
    """Shape of the Whisper features the UNet was trained on (independent of the video fps)."""

    model_config = ConfigDict(extra="forbid")

    encoder_layers: int = Field(4, ge=1)  # transformer blocks (released tiny: 4)
    dim: int = Field(384, ge=1)  # encoder width (released tiny: 384)

    @property
    def feature_layers(self) -> int:
        """L: input embedding + one state per block, the layers LatentSync stacks per row."""
        return self.encoder_layers + 1


class AudioConfig(BaseModel):
    """Which encoder makes the UNet's audio tokens: Whisper alone, or Whisper + the 128-d phoneme
    branch (``fused``, upgrade 1: the bundle then holds ``phoneme/``)."""

    model_config = ConfigDict(extra="forbid")

    encoder: Literal["whisper", "fused"] = "whisper"
    whisper: WhisperLayout = Field(default_factory=WhisperLayout)


class SamplerDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["ddim", "lcm"] = "ddim"
    num_inference_steps: int = Field(20, ge=1)
    guidance_scale: float = Field(1.5, ge=0.0)
    eta: float = 0.0
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    # Detail transfer: add the decoded *change* (decode(generated) - decode(source latents)) to the
    # source pixels instead of pasting the decoded face, so whatever the UNet leaves alone keeps
    # the source's exact pixels rather than the VAE's reconstruction of them (sharp lower face
    # with a small VAE). Costs one more VAE decode per frame; off = LatentSync's paste.
    detail_transfer: bool = False
    # With detail transfer: where the decoded change is large the source's detail is the *old*
    # mouth's edges (teeth, lip lines of another phoneme), which ghost over the new one. The
    # source detail is faded out as the change (mean |decode(z) - decode(z_source)| over colour
    # and a 5x5 neighbourhood, in [-1, 1] pixel units) rises to ``detail_gate``. None = no fade.
    # Where the VAE cannot rebuild real texture, fading the detail leaves blur (the demo's photo
    # clip lost 0.8 dB at 0.2 while its synthetic clips gained), so the demo bundle leaves it off.
    detail_gate: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _gate_needs_transfer(self) -> "SamplerDefaults":
        if self.detail_gate is not None and not self.detail_transfer:
            raise ValueError("sampler.detail_gate only applies with sampler.detail_transfer: true")
        return self


class VAEConfig(BaseModel):
    """Latent scaling LatentSync applies around the SD VAE: ``z = (x - shift) * scale``."""

    model_config = ConfigDict(extra="forbid")

    scaling_factor: float = 0.18215
    shift_factor: float = 0.0


class LCMStudentConfig(BaseModel):
    """Upgrade 4: a consistency-distilled student (guidance scale is a UNet input)."""

    model_config = ConfigDict(extra="forbid")

    time_cond_proj_dim: int = Field(ge=1)
    num_inference_steps: int = Field(4, ge=1)
    teacher_steps: int = 20
    teacher_guidance_scale: float = 1.5


class MaskInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = MASK_FILE
    source: Literal["latentsync", "generated", "custom"] = "latentsync"


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = ""  # where the weights came from (e.g. the LatentSync checkpoint folder)
    global_step: int | None = None
    converted_by: str = "lsray convert"


class BundleConfig(BaseModel):
    """The validated ``config.json`` of a model bundle."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1] = FORMAT_VERSION
    resolution: Resolution = 256
    unet: UNetConfig = Field(default_factory=UNetConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    sampler: SamplerDefaults = Field(default_factory=SamplerDefaults)
    vae: VAEConfig = Field(default_factory=VAEConfig)
    lcm: LCMStudentConfig | None = None
    mask: MaskInfo = Field(default_factory=MaskInfo)
    provenance: Provenance = Field(default_factory=Provenance)

    @model_validator(mode="after")
    def _consistent(self) -> "BundleConfig":
        if self.lcm is not None and self.lcm.time_cond_proj_dim != self.unet.time_cond_proj_dim:
            raise ValueError(
                f"lcm.time_cond_proj_dim ({self.lcm.time_cond_proj_dim}) must equal "
                f"unet.time_cond_proj_dim ({self.unet.time_cond_proj_dim})"
            )
        if self.sampler.method == "lcm" and self.lcm is None:
            raise ValueError("sampler.method 'lcm' needs an lcm student section")
        if self.audio.whisper.dim > self.unet.cross_attention_dim:
            raise ValueError(
                f"audio tokens are {self.audio.whisper.dim}-d but the UNet attends to "
                f"{self.unet.cross_attention_dim}-d audio (cross_attention_dim)"
            )
        if self.audio.encoder == "fused":
            from lsray.audio.phoneme import PHONEME_DIM  # fused bundles only: keeps transformers out of plain reads

            width = self.audio.whisper.dim + PHONEME_DIM
            if self.unet.cross_attention_dim != width:
                raise ValueError(
                    f"fused audio tokens are {self.audio.whisper.dim} (Whisper) + {PHONEME_DIM} (phoneme) = "
                    f"{width}-d but the UNet attends to {self.unet.cross_attention_dim}-d audio (cross_attention_dim)"
                )
        return self

    @classmethod
    def read(cls, path: str | Path) -> "BundleConfig":
        """Parse and validate a bundle ``config.json``; BundleError names the file and the problem."""
        path = Path(path)
        if not path.is_file():
            raise MissingWeightError(path, "bundle config")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(data, dict) and data.get("format_version") not in (None, FORMAT_VERSION):
            raise BundleError(
                f"{path}: bundle format_version {data.get('format_version')!r} is not supported "
                f"(this lsray reads version {FORMAT_VERSION})"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise BundleError(f"{path}: invalid bundle config: {exc}") from exc

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# where bundles live
# --------------------------------------------------------------------------------------------
Resolver = Callable[[str], Path]
_RESOLVERS: dict[str, Resolver] = {}


def register_resolver(scheme: str, resolver: Resolver) -> None:
    """Teach :func:`resolve_bundle` a URI scheme (e.g. ``"s3"``): ``resolver(uri)`` returns a
    local directory holding the bundle (typically a cache it has synchronised)."""
    _RESOLVERS[scheme.lower()] = resolver


def resolve_bundle(location: str | Path) -> Path:
    """A local directory for ``location``: a path, ``file://`` URI or a registered scheme."""
    text = str(location)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Path(text).expanduser()
    scheme = scheme.lower()
    if scheme == "file":
        return Path(rest)
    if scheme in _RESOLVERS:
        return _RESOLVERS[scheme](text)
    raise BundleError(f"{text}: no resolver for '{scheme}://' bundles (local directories only for now)")


def _s3_resolver(uri: str) -> Path:
    """``s3://`` bundles are synchronised into ``$LSRAY_BUNDLE_CACHE`` (lsray.storage.bundle_cache)."""
    from lsray.storage.bundle_cache import resolve_s3_bundle

    return resolve_s3_bundle(uri)


register_resolver("s3", _s3_resolver)


# --------------------------------------------------------------------------------------------
# the loaded bundle
# --------------------------------------------------------------------------------------------
class ModelBundle:
    """Everything the dubbing pipeline needs; each model is loaded on first use (eval mode).

    Lazy parts let a runner that gives each stage its own worker load only what that stage
    uses (the face workers never hold the UNet); :func:`load_bundle` loads everything up front
    unless asked not to, so a broken bundle fails at load time.
    """

    def __init__(self, path: Path, config: BundleConfig, device: "torch.device", with_vae: bool = True) -> None:
        self.path, self.config, self.device, self.with_vae = path, config, device, with_vae

    @cached_property
    def unet(self) -> "LipSyncUNet":
        return load_unet(self.path, self.config, self.device)

    @cached_property
    def whisper(self) -> "WhisperEncoder":
        from lsray.audio.whisper import WhisperEncoder

        return WhisperEncoder.from_pretrained(self.path / WHISPER_DIR, device=self.device)

    @cached_property
    def phoneme(self) -> "PhonemeEncoder | None":
        """The phoneme branch of a fused bundle (None for Whisper-only ones). Its projection is
        required: a random one would silently feed the UNet noise."""
        if self.config.audio.encoder != "fused":
            return None
        from lsray.audio.phoneme import PROJECTION_FILE, PhonemeEncoder

        folder = self.path / PHONEME_DIR
        return PhonemeEncoder.from_pretrained(folder, folder / PROJECTION_FILE, device=self.device)

    @cached_property
    def mask(self) -> "np.ndarray":
        """(S, S) float32, S = config.resolution; 1 = keep, 0 = regenerate."""
        from lsray.face.mask import load_inpaint_mask

        return load_inpaint_mask(self.path / self.config.mask.file, self.config.resolution)

    @cached_property
    def vae(self) -> "AutoencoderKL | None":
        vae_dir = self.path / VAE_DIR
        return load_vae(vae_dir, self.device) if self.with_vae and vae_dir.is_dir() else None

    def require_vae(self) -> "AutoencoderKL":
        """The VAE, or MissingWeightError naming ``vae/`` when the bundle has none."""
        if self.vae is None:
            raise MissingWeightError(self.path / VAE_DIR, "VAE folder (diffusers AutoencoderKL)")
        return self.vae

    def make_scheduler(self, kind: Literal["ddim", "lcm"] | None = None) -> Any:
        """A fresh diffusers scheduler on the bundle's noise schedule (default: its sampler)."""
        from lsray.sampling import make_scheduler

        try:
            return make_scheduler(kind or self.config.sampler.method, self.config.sampler.scheduler)
        except ValueError as exc:
            raise BundleError(str(exc)) from exc

    @cached_property
    def audio_encoder(self) -> "WhisperEncoder | FusedAudioEncoder":
        """The encoder whose tokens the UNet's audio cross-attention takes."""
        if self.phoneme is None:
            return self.whisper
        from lsray.audio.fused import FusedAudioEncoder

        return FusedAudioEncoder(self.whisper, self.phoneme)


def bundle_files(path: str | Path) -> dict[str, bool]:
    """Which of a bundle's expected files exist (``lsray doctor --bundle``); no weights are read.

    The phoneme files are expected when ``config.json`` (if readable) declares fused audio.
    """
    root = Path(path)
    files = {
        CONFIG_FILE: (root / CONFIG_FILE).is_file(),
        UNET_FILE: (root / UNET_FILE).is_file(),
        f"{WHISPER_DIR}/config.json": (root / WHISPER_DIR / "config.json").is_file(),
        f"{WHISPER_DIR}/model.safetensors": (root / WHISPER_DIR / "model.safetensors").is_file(),
    }
    if _declares_fused(root / CONFIG_FILE):
        from lsray.audio.phoneme import PHONEME_FILES

        files.update({f"{PHONEME_DIR}/{name}": (root / PHONEME_DIR / name).is_file() for name in PHONEME_FILES})
    files.update({f"{VAE_DIR}/": _vae_present(root / VAE_DIR), MASK_FILE: (root / MASK_FILE).is_file()})
    return files


def _declares_fused(config_file: Path) -> bool:
    try:
        return BundleConfig.read(config_file).audio.encoder == "fused"
    except LsrayError:  # missing or invalid: reported on its own, nothing more to expect
        return False


def _vae_present(vae_dir: Path) -> bool:
    return (vae_dir / "config.json").is_file() and any(vae_dir.glob("diffusion_pytorch_model*.safetensors"))


def load_unet(path: Path, config: BundleConfig, device: "torch.device") -> "LipSyncUNet":
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lsray.models.unet import LipSyncUNet

    weights = path / UNET_FILE
    if not weights.is_file():
        raise MissingWeightError(weights, "UNet weights")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"{weights}: unreadable safetensors file ({exc})") from exc
    model = LipSyncUNet(config.unet)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{weights}: weights do not fit config.json's unet: {exc}") from exc
    return model.to(device).eval()


def load_vae(vae_dir: Path, device: "torch.device") -> "AutoencoderKL":
    from diffusers import AutoencoderKL

    if not (vae_dir / "config.json").is_file():
        raise MissingWeightError(vae_dir / "config.json", "VAE config")
    if not any(vae_dir.glob("diffusion_pytorch_model*.safetensors")):
        raise MissingWeightError(vae_dir / "diffusion_pytorch_model.safetensors", "VAE weights")
    vae = AutoencoderKL.from_pretrained(str(vae_dir), local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False)
    return vae.to(device).eval()


def load_bundle(
    location: str | Path,
    device: "torch.device | str | None" = None,
    *,
    load_vae: bool = True,
    lazy: bool = False,
) -> ModelBundle:
    """Open a bundle directory (or a URI a registered resolver understands) onto ``device``.

    The config is always read and validated now. Models load now too, unless ``lazy`` (then
    each loads on first use). ``load_vae=False`` skips the VAE (audio-only or latent-space
    callers; ``require_vae()`` then raises); a bundle without ``vae/`` has ``vae=None`` either way.
    """
    import torch

    from lsray.device import default_device

    path = resolve_bundle(location)
    if not path.is_dir():
        raise MissingWeightError(path, "model bundle directory")
    dev = torch.device(device) if device is not None else default_device()
    bundle = ModelBundle(path, BundleConfig.read(path / CONFIG_FILE), dev, with_vae=load_vae)
    if not lazy:
        for part in ("unet", "audio_encoder", "mask", "vae"):
            getattr(bundle, part)
    return bundle
