"""The noise schedules lsray samples with: diffusers' DDIM and LCM schedulers, LatentSync's betas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from lsray.sampler_kinds import SAMPLER_KINDS, SamplerKind

if TYPE_CHECKING:  # diffusers is heavy: reading a bundle config must not import it
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, LCMScheduler


class SchedulerConfig(BaseModel):
    """Noise schedule (diffusers kwargs); defaults are LatentSync's ``configs/scheduler_config.json``,
    the schedule its checkpoints were trained with."""

    model_config = ConfigDict(extra="forbid")

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    steps_offset: int = 1
    set_alpha_to_one: bool = False
    clip_sample: bool = False
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "epsilon"


def make_scheduler(
    kind: SamplerKind = "ddim", config: SchedulerConfig | dict[str, Any] | None = None,
    original_inference_steps: int | None = None,
) -> "DDIMScheduler | LCMScheduler | DPMSolverMultistepScheduler":
    """A fresh scheduler (they are stateful: one per concurrent sampling loop).

    ``original_inference_steps`` (LCM only): the distillation's timestep grid, from which the
    1-4 sampling timesteps are picked (a student sampled off its grid visits timesteps it never
    learnt); None = diffusers' default of 50.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, LCMScheduler

    cfg = SchedulerConfig.model_validate(config or {}).model_dump()
    if kind == "ddim":
        return DDIMScheduler(**cfg)
    if kind == "dpmsolver":
        # DPM-Solver++ (2nd order, multistep) on the same noise schedule: a training-free fast
        # sampler for undistilled weights (8-12 steps); DDIM-only keys do not apply to it.
        dpm = {k: v for k, v in cfg.items() if k not in ("set_alpha_to_one", "clip_sample")}
        return DPMSolverMultistepScheduler(**dpm, algorithm_type="dpmsolver++", solver_order=2)
    if kind == "lcm":
        grid = {"original_inference_steps": original_inference_steps} if original_inference_steps else {}
        return LCMScheduler(**cfg, **grid)
    raise ValueError(f"unknown sampler {kind!r}: expected one of {', '.join(SAMPLER_KINDS)}")
