"""The five stages built from one model bundle: the single place batch, serve and the local
runner get them from, so the three runners cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from lsray.models.bundle import ModelBundle
from lsray.pipeline.audio import AudioStage
from lsray.pipeline.prepare import PrepareStage, ShardStage
from lsray.pipeline.render import RenderStage
from lsray.pipeline.sample import SamplerSettings, SampleStage
from lsray.pipeline.voice import VoiceStage


def sampler_settings(bundle: ModelBundle) -> SamplerSettings:
    cfg = bundle.config
    return SamplerSettings(
        steps=cfg.sampler.num_inference_steps,
        guidance=cfg.sampler.guidance_scale,
        scaling_factor=cfg.vae.scaling_factor,
        shift_factor=cfg.vae.shift_factor,
        scheduler_config=cfg.sampler.scheduler.model_dump(),
    )


@dataclass
class Stages:
    prepare: PrepareStage
    voice: VoiceStage
    shard: ShardStage
    audio: AudioStage
    sample: SampleStage
    render: RenderStage


def build_stages(bundle: ModelBundle, work_root: str | None = None, encode_preset: str = "medium") -> Stages:
    """All stages of the DAG for ``bundle`` (models are shared, not copied)."""
    return Stages(
        prepare=PrepareStage(resolution=bundle.config.resolution, work_root=work_root),
        voice=VoiceStage(),
        shard=ShardStage(),
        audio=AudioStage(bundle.audio_encoder, token_dim=bundle.config.unet.cross_attention_dim),
        sample=SampleStage(bundle.unet, bundle.require_vae(), bundle.mask, sampler_settings(bundle)),
        render=RenderStage(bundle.mask, preset=encode_preset),
    )
