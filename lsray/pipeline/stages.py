"""The five stages built from one model bundle: the single place batch, serve and the local
runner get them from, so the three runners cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lsray.bundle import BundleConfig, ModelBundle, load_bundle
from lsray.pipeline.audio import AudioStage
from lsray.pipeline.prepare import PrepareStage, ShardStage
from lsray.pipeline.render import RenderStage
from lsray.pipeline.sample import SamplerSettings, SampleStage
from lsray.pipeline.voice import VoiceStage


def settings_from_config(cfg: BundleConfig) -> SamplerSettings:
    """The sampler defaults of a bundle's ``BundleConfig``."""
    return SamplerSettings(
        steps=cfg.sampler.num_inference_steps,
        guidance=cfg.sampler.guidance_scale,
        scaling_factor=cfg.vae.scaling_factor,
        shift_factor=cfg.vae.shift_factor,
        scheduler_config=cfg.sampler.scheduler.model_dump(),
        detail_transfer=cfg.sampler.detail_transfer,
        detail_gate=cfg.sampler.detail_gate,
    )


@dataclass
class Stages:
    prepare: PrepareStage
    voice: VoiceStage
    shard: ShardStage
    audio: AudioStage
    sample: SampleStage
    render: RenderStage


#: Stage names in pipeline order (``build_stage`` builds one of them).
STAGE_NAMES = ("prepare", "voice", "shard", "audio", "sample", "render")


def build_stage(
    name: str, bundle: ModelBundle | str | Path, *, device=None, work_root: str | None = None, encode_preset: str = "medium"
):
    """One stage of the DAG. Given a location, the bundle opens lazily, so the stage loads only
    the parts it needs: a runner giving each stage its own worker (batch actor pools, serve
    deployments) keeps the UNet out of the face workers and Whisper out of the UNet workers."""
    if not isinstance(bundle, ModelBundle):
        bundle = load_bundle(bundle, device, lazy=True)
    cfg = bundle.config
    if name == "prepare":
        return PrepareStage(resolution=cfg.resolution, work_root=work_root)
    if name == "voice":
        return VoiceStage()
    if name == "shard":
        return ShardStage()
    if name == "audio":
        return AudioStage(bundle.audio_encoder, token_dim=cfg.unet.cross_attention_dim)
    if name == "sample":
        return SampleStage(bundle.unet, bundle.require_vae(), bundle.mask, settings_from_config(cfg))
    if name == "render":
        return RenderStage(bundle.mask, preset=encode_preset)
    raise ValueError(f"unknown stage {name!r} (one of {STAGE_NAMES})")


def build_stages(bundle: ModelBundle, work_root: str | None = None, encode_preset: str = "medium") -> Stages:
    """All stages of the DAG for ``bundle`` (models are shared, not copied)."""
    return Stages(**{n: build_stage(n, bundle, work_root=work_root, encode_preset=encode_preset) for n in STAGE_NAMES})
