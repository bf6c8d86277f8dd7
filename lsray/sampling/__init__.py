"""Window samplers on diffusers schedulers: LatentSync's DDIM + guidance, and 1-4 step LCM."""

from lsray.sampling.guidance import guidance_embedding
from lsray.sampling.schedulers import SamplerKind, SchedulerConfig, make_scheduler
from lsray.sampling.window import WindowConditioning, denoise_window, initial_noise, visited_timesteps

__all__ = [
    "SamplerKind",
    "SchedulerConfig",
    "WindowConditioning",
    "denoise_window",
    "guidance_embedding",
    "initial_noise",
    "make_scheduler",
    "visited_timesteps",
]
