"""Per-clip dubbing options and the one place a clip's effective settings are decided.

:class:`DubOptions` is what a user may say about one clip; ``None`` means "the bundle's". The CLI
flags (:func:`add_option_flags`), the catalog's columns (``lsray.catalog.read``) and the Serve
request model all derive from its fields, so there is no hand-kept mirror to drift.
:meth:`DubOptions.resolve` turns options + a bundle's config into :class:`ClipSettings`: sampler,
steps, guidance, the LCM grid, the voice backend and its weights. Nothing else picks a default.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lsray.errors import LsrayError
from lsray.resolution import Resolution
from lsray.sampler_kinds import SamplerKind
from lsray.voice_backends import COQUI_BACKENDS, VoiceBackend

if TYPE_CHECKING:
    from lsray.bundle.config import AnchorSampling, BundleConfig

SyncMode = Literal["video", "cut_off", "bounce", "loop", "silence", "remap"]
SYNC_MODES: tuple[str, ...] = get_args(SyncMode)
#: DPM-Solver++'s step count when a clip asks for it without --steps (upstream users run 8-12).
DPM_SOLVER_STEPS = 10


class OptionError(LsrayError):
    """A clip's options cannot be honoured by this bundle (e.g. LCM on a bundle with no student)."""


class DubOptions(BaseModel):
    """How one clip is dubbed. Defaults are the dubbing-friendly ones (keep the source's timing);
    ``None`` = decided by the bundle in :meth:`resolve`."""

    model_config = ConfigDict(extra="forbid")

    sampler: SamplerKind | None = Field(
        default=None, description="ddim | lcm (distilled bundles) | dpmsolver (DPM-Solver++, training-free; "
        "default: the bundle's)")
    steps: int | None = Field(default=None, ge=1, le=100, description="sampling steps (default: the bundle's)")
    guidance: float | None = Field(default=None, ge=1.0, le=10.0, description="guidance scale (default: the bundle's)")
    deep_cache: int | None = Field(default=None, ge=1, le=10, description="DeepCache: the whole UNet runs one "
                                   "step in N, the others reuse its deep features (default: 1, off)")
    resolution: Resolution | None = Field(default=None, description="face crop size (default: the bundle's)")
    sync_mode: SyncMode = Field(default="video", description="what to do when video and audio lengths differ")
    speaker: str = Field(default="largest", description="largest | auto | X,Y@T (pixel X,Y in the frame at T s)")
    keep_silent_mouth: bool = Field(default=True, description="keep the original mouth where the dub is silent")
    voice: VoiceBackend | None = Field(default=None, description="voice conversion backend (default: the bundle's)")
    voice_model: str | None = Field(default=None, description="model folder of a Coqui voice backend")
    segment_seconds: float = Field(default=10.0, gt=0, description="shard length (memory is bounded by it)")
    crf: int = Field(default=18, ge=0, le=51, description="H.264 quality (lower = better)")
    seed: int = Field(default=0, description="noise seed (the same clip with the same seed gives the same mouths in every runner)")
    anchors: Literal["on", "off"] | None = Field(
        default=None, description="long-range anchors: keyframes sampled first, every window pinned to them "
        "(default: on where the bundle was trained for them; off: every window on its own, as LatentSync)")
    anchor_stride: int | None = Field(default=None, ge=1, le=16, description="frames between keyframes "
                                      "(default: the bundle's)")
    anchor_sequence: int | None = Field(default=None, ge=2, le=64, description="keyframes per anchor-pass "
                                        "sequence (default: the bundle's)")
    anchor_overlap: int | None = Field(default=None, ge=0, le=63, description="keyframes consecutive "
                                       "sequences share (default: the bundle's)")

    @field_validator("speaker")
    @classmethod
    def _speaker(cls, v: str) -> str:
        from lsray.face.speaker import parse_speaker_spec  # (lazy: keeps `lsray --help` light)

        return str(parse_speaker_spec(v))  # one parser for the CLI, catalogs and the API

    def resolve(self, config: "BundleConfig") -> "ClipSettings":
        """The clip's effective settings on a bundle: the only place defaults are decided.

        A sampler the bundle cannot run is an :class:`OptionError` now, before any work: LCM
        needs a distilled student, DDIM on a student bundle needs the teacher it ships.
        """
        defaults, lcm = config.sampler, config.lcm
        sampler = self.sampler or defaults.method
        if sampler == "lcm" and lcm is None:
            raise OptionError("sampler 'lcm' needs a distilled (LCM student) bundle; this one has no lcm section")
        if sampler != "lcm" and lcm is not None and lcm.teacher_unet is None:
            raise OptionError(f"sampler '{sampler}' on an LCM student bundle needs its teacher UNet, which this bundle lacks")
        if sampler == defaults.method:
            steps, guidance = defaults.num_inference_steps, defaults.guidance_scale
        elif sampler == "lcm":
            steps, guidance = lcm.num_inference_steps, lcm.teacher_guidance_scale
        elif lcm is not None:  # DDIM / DPM-Solver++ on a student bundle: its teacher, as distilled
            steps, guidance = lcm.teacher_steps, lcm.teacher_guidance_scale
        else:
            steps, guidance = defaults.num_inference_steps, defaults.guidance_scale
        if sampler == "dpmsolver" and defaults.method != "dpmsolver":
            steps = DPM_SOLVER_STEPS
        voice = self.voice or config.voice.backend
        voice_model = self.voice_model
        if voice_model is None and voice == config.voice.backend:
            voice_model = config.voice.model_dir
        if voice in COQUI_BACKENDS and not voice_model:
            raise OptionError(f"voice backend '{voice}' needs its model folder (--voice-model DIR, the clip's "
                              "voice_model option, or the bundle's voice.model_dir)")
        return ClipSettings(
            sampler=sampler, steps=self.steps or steps, guidance=self.guidance or guidance,
            lcm_grid=lcm.original_inference_steps if sampler == "lcm" else None,
            deep_cache=self.deep_cache or 1, resolution=self.resolution or config.resolution, voice=voice,
            voice_model=voice_model if voice in COQUI_BACKENDS else None, seed=self.seed,
            anchors=self._anchors(config),
        )

    def _anchors(self, config: "BundleConfig") -> "AnchorSampling | None":
        """The clip's anchor settings (None: off): the bundle's, with the clip's overrides."""
        from lsray.bundle.config import AnchorSampling

        base = config.sampler.anchors
        overrides = {k: v for k, v in (("stride", self.anchor_stride), ("sequence", self.anchor_sequence),
                                       ("overlap", self.anchor_overlap)) if v is not None}
        if self.anchors == "off" or (self.anchors is None and base is None):
            return None
        if base is None:
            raise OptionError("anchors 'on' needs a bundle trained for long-range anchors (its sampler has no "
                              "anchors section); use --anchors off or a bundle from an anchor-trained stage 2")
        try:
            anchors = AnchorSampling.model_validate({**base.model_dump(), **overrides})
            anchors.check_positions(config.unet.temporal.max_len)
        except ValueError as exc:
            raise OptionError(f"anchor options {overrides}: {exc}") from None
        return anchors


@dataclass(frozen=True)
class ClipSettings:
    """A clip's effective settings (from :meth:`DubOptions.resolve`), carried by its plan."""

    sampler: SamplerKind
    steps: int
    guidance: float
    lcm_grid: int | None  # LCM only: the distillation's timestep grid (LCMScheduler's original_inference_steps)
    deep_cache: int  # the whole UNet runs one step in this many (1: every step)
    resolution: int
    voice: VoiceBackend
    voice_model: str | None  # Coqui backends: their weights folder (relative = inside the bundle)
    seed: int
    anchors: "AnchorSampling | None" = None  # long-range anchors; None = every window on its own

    @classmethod
    def tracking_only(cls, resolution: int) -> "ClipSettings":
        """A clip that only goes through prepare, shard and audio (training shards): tracked and
        aligned at ``resolution``, voice off; no sampler ever reads the other fields."""
        return cls(sampler="ddim", steps=0, guidance=1.0, lcm_grid=None, deep_cache=1, resolution=resolution,
                   voice="off", voice_model=None, seed=0)

    def scheduler_extra(self) -> dict[str, Any]:
        """Keywords for the scheduler's ``set_timesteps`` beyond the step count."""
        return {"original_inference_steps": self.lcm_grid} if self.lcm_grid else {}


# ------------------------------------------------------------------------------------------------
# CLI flags, generated from the fields above
# ------------------------------------------------------------------------------------------------
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """Every DubOptions field as a flag (``--sync-mode``, ``--no-keep-silent-mouth``, ...); the
    help and choices come from the field, unset flags stay unset (so the bundle decides)."""
    for name, field in DubOptions.model_fields.items():
        ann, default = field.annotation, field.default
        help_text = field.description or ""
        if ann is bool:
            if default:
                parser.add_argument(f"--no-{name.replace('_', '-')}", dest=name, action="store_false",
                                    default=None, help=f"off: {help_text}")
            else:
                parser.add_argument(_flag(name), dest=name, action="store_true", default=None, help=help_text)
            continue
        choices = [a for a in _literal_values(ann)]
        kind = type(choices[0]) if choices else _scalar_type(ann)
        parser.add_argument(_flag(name), dest=name, type=kind, choices=choices or None, default=None,
                            help=f"{help_text} (default: {default})" if default is not None else help_text)


def options_from_flags(args: argparse.Namespace, base: DubOptions | None = None) -> DubOptions:
    """DubOptions from parsed flags: only flags that were given override ``base``'s values."""
    given = {n: getattr(args, n) for n in DubOptions.model_fields if getattr(args, n, None) is not None}
    return DubOptions.model_validate({**(base or DubOptions()).model_dump(exclude_unset=True), **given})


def option_flags(options: DubOptions) -> list[str]:
    """The command line that :func:`options_from_flags` reads back as ``options`` (fields left at
    their default are omitted), e.g. for the entrypoint ``lsray submit`` starts on a cluster."""
    argv: list[str] = []
    for name, value in options.model_dump(exclude_defaults=True).items():
        if isinstance(value, bool):
            argv.append(_flag(name) if value else f"--no-{name.replace('_', '-')}")
        else:
            argv += [_flag(name), str(value)]
    return argv


def _literal_values(ann: Any) -> tuple:
    args = get_args(ann)
    if getattr(ann, "__origin__", None) is Literal:
        return args
    for a in args:  # X | None
        if getattr(a, "__origin__", None) is Literal:
            return get_args(a)
    return ()


def _scalar_type(ann: Any) -> type:
    for t in (int, float, str):
        if ann is t or t in get_args(ann):
            return t
    return str
