"""The bundle's ``config.json`` (pydantic) and the file names inside a bundle.

Layout (DESIGN.md "Model bundles")::

    bundle/
      config.json          BundleConfig: architecture, audio layout, sampler defaults
      unet.safetensors     LipSyncUNet weights (strict: every key of the config's model)
      whisper/             Whisper encoder, local transformers format (config.json + model.safetensors)
      phoneme/             fused-audio bundles only: phoneme-CTC Wav2Vec2 (transformers format) +
                           projection.safetensors, as PhonemeEncoder.save_pretrained writes it
      vae/                 diffusers AutoencoderKL folder (optional: only needed to encode/decode frames)
      mask.png             inpainting mask, black = region the UNet regenerates

Reading a config imports no torch model code: ``lsray doctor`` and the CLI's option checks use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lsray.errors import BundleError, MissingWeightError
from lsray.models.config import UNetConfig
from lsray.precision import Precision
from lsray.resolution import Resolution
from lsray.sampling.schedulers import SamplerKind, SchedulerConfig
from lsray.voice_backends import VoiceBackend

FORMAT_VERSION = 1

# File names inside a bundle (one place, used by the writer, the loader and `lsray doctor`).
CONFIG_FILE = "config.json"
UNET_FILE = "unet.safetensors"
WHISPER_DIR = "whisper"
PHONEME_DIR = "phoneme"
VAE_DIR = "vae"
MASK_FILE = "mask.png"
TEACHER_UNET_FILE = "teacher/unet.safetensors"  # LCM student bundles: the teacher, for --sampler ddim


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


class AnchorSampling(BaseModel):
    """Long-range anchors (upgrade 3), for bundles trained to follow pinned keyframes.

    The anchor pass samples every ``stride``-th output frame first, in sequences of ``sequence``
    keyframes (temporal attention across them, at their real frame times) that overlap by
    ``overlap`` keyframes pinned to the previous sequence's; every window then pins its keyframes.
    """

    model_config = ConfigDict(extra="forbid")

    stride: int = Field(8, ge=1, le=16, description="output frames between keyframes (divides the 16-frame window)")
    sequence: int = Field(8, ge=2, le=64, description="keyframes sampled together in one anchor-pass sequence")
    overlap: int = Field(1, ge=0, description="keyframes a sequence shares (pinned) with the one before")

    @model_validator(mode="after")
    def _fits(self) -> "AnchorSampling":
        if 16 % self.stride:
            raise ValueError(f"anchor stride {self.stride} must divide the 16-frame window (1, 2, 4, 8 or 16)")
        if self.overlap >= self.sequence:
            raise ValueError(f"anchor overlap ({self.overlap}) must be smaller than the sequence ({self.sequence})")
        return self

    def check_positions(self, max_len: int) -> None:
        """ValueError unless a keyframe sequence fits a UNet with ``max_len`` temporal positions."""
        span = (self.sequence - 1) * self.stride
        if span >= max_len:
            raise ValueError(f"{self.sequence} keyframes {self.stride} frames apart span {span + 1} frames, "
                             f"beyond the UNet's temporal positions ({max_len})")


class SamplerDefaults(BaseModel):
    """How a clip is sampled unless its options say otherwise (``DubOptions.resolve`` reads this)."""

    model_config = ConfigDict(extra="forbid")

    method: SamplerKind = "ddim"
    num_inference_steps: int = Field(20, ge=1)
    guidance_scale: float = Field(1.5, ge=0.0)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    # Detail transfer: add the decoded *change* (decode(generated) - decode(source latents)) to the
    # source pixels instead of pasting the decoded face, so whatever the UNet leaves alone keeps
    # the source's exact pixels rather than the VAE's reconstruction of them (sharp lower face
    # with a small VAE). Costs one more VAE decode per frame; off = LatentSync's paste.
    detail_transfer: bool = False
    # With detail transfer: where the decoded change is large the source's detail is the *old*
    # mouth's edges (teeth, lip lines of another phoneme), which ghost over the new one. The
    # source detail is faded out as the change (|mean of decode(z) - decode(z_source)| over colour
    # and a 9x9 neighbourhood, in [-1, 1] pixel units: lsray.pipeline.sample.detail_gate) rises
    # to ``detail_gate``. None = no fade. It trades sharpness for closeness: on the demo's 40
    # held-out clips 0.2 gave +0.14 dB and a quarter less flicker but a visibly softer mouth
    # (README, Status), so the demo bundle leaves it off.
    detail_gate: float | None = Field(None, gt=0.0)
    # Long-range anchors: set when the bundle was trained to follow pinned keyframes (stage 2 and
    # distillation with anchor training); None = it was not, and every window is sampled on its own.
    anchors: AnchorSampling | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_eta(cls, data: object) -> object:
        # Bundles written before 0.2 carry ``eta``; DDIM here is always deterministic (eta 0),
        # so the knob never did anything and is dropped on read rather than refused.
        if isinstance(data, dict) and "eta" in data:
            data = {k: v for k, v in data.items() if k != "eta"}
        return data

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
    """Upgrade 4: a consistency-distilled student (guidance scale is a UNet input).

    What the distillation trained on, so inference samples the way it was distilled: the
    timestep grid (``original_inference_steps``: LCMScheduler picks its 1-4 timesteps from this
    many evenly spaced ones) and the guidance range the student saw as input.
    """

    model_config = ConfigDict(extra="forbid")

    time_cond_proj_dim: int = Field(ge=1)
    num_inference_steps: int = Field(4, ge=1)
    original_inference_steps: int = Field(50, ge=1, description="the distillation's DDIM skipping grid N")
    guidance_range: tuple[float, float] = (1.0, 2.0)
    teacher_steps: int = 20
    teacher_guidance_scale: float = 1.5
    teacher_unet: str | None = Field(
        None, description="the teacher's weights inside the bundle (same architecture, no guidance input): "
        "what ``--sampler ddim`` samples with; None = DDIM is not available for this bundle")

    @model_validator(mode="after")
    def _range(self) -> "LCMStudentConfig":
        lo, hi = self.guidance_range
        if not 0.0 <= lo <= hi:
            raise ValueError(f"lcm.guidance_range must be 0 <= low <= high, got {self.guidance_range}")
        return self


class VoiceDefaults(BaseModel):
    """Upgrade 5 for every clip of this bundle unless a clip says otherwise: which converter
    re-voices the dub in the on-screen speaker's voice, and where its weights are (``model_dir``:
    absolute, or relative to the bundle; the Coqui backends need one, builtin needs none)."""

    model_config = ConfigDict(extra="forbid")

    backend: VoiceBackend = "off"
    model_dir: str | None = None


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
    precision: Precision = Field("auto", description="inference precision (lsray.precision): auto = fp16 on CUDA, fp32 on CPU")
    voice: VoiceDefaults = Field(default_factory=VoiceDefaults)
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
        if self.sampler.anchors is not None:
            self.sampler.anchors.check_positions(self.unet.temporal.max_len)
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
