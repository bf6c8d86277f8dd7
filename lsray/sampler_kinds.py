"""The samplers a clip can be dubbed with, named in one place that imports nothing heavy: clip
options and the bundle config name one; only :mod:`lsray.sampling` (torch, diffusers) builds it."""

from __future__ import annotations

from typing import Literal, get_args

#: ``ddim``: LatentSync's sampler; ``lcm``: a distilled consistency student (1-4 steps);
#: ``dpmsolver``: DPM-Solver++, training-free, for undistilled weights (8-12 steps).
SamplerKind = Literal["ddim", "lcm", "dpmsolver"]
SAMPLER_KINDS: tuple[str, ...] = get_args(SamplerKind)
