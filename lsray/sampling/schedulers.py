"""The noise schedules lsray samples with: diffusers' DDIM and LCM schedulers, LatentSync's betas."""

from __future__ import annotations

from typing import Any, Literal

from diffusers import DDIMScheduler, LCMScheduler

SamplerKind = Literal["ddim", "lcm"]

# LatentSync's configs/scheduler_config.json (the schedule its checkpoints were trained with).
LATENTSYNC_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
    "prediction_type": "epsilon",
}


def make_scheduler(kind: SamplerKind = "ddim", config: dict[str, Any] | None = None) -> DDIMScheduler | LCMScheduler:
    """A fresh scheduler (they are stateful: one per concurrent sampling loop)."""
    cfg = dict(LATENTSYNC_SCHEDULER_CONFIG if config is None else config)
    if kind == "ddim":
        return DDIMScheduler(**cfg)
    if kind == "lcm":
        return LCMScheduler(**cfg)
    raise ValueError(f"unknown sampler {kind!r}: expected 'ddim' or 'lcm'")
