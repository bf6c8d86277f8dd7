"""Window samplers on diffusers schedulers: LatentSync's DDIM + guidance, and 1-4 step LCM.

:mod:`.schedulers` (the sampler's settings, pydantic only; the diffusers scheduler built from
them), :mod:`.window` (one window denoised), :mod:`.guidance` (the student's guidance input).
Import from the submodules: a bundle's config reads :mod:`.schedulers` in workers that never
load torch."""
