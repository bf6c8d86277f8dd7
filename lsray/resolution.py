"""The face-crop sizes the pipeline works at (one definition for configs, CLIs and the aligner).

256 and 512 are LatentSync's. 128 is lsray's CPU size: a quarter of the pixels and latents of
256, for the demo bundle and CPU-only deployments where speed matters more than mouth detail.
"""

from __future__ import annotations

from typing import Literal, get_args

Resolution = Literal[128, 256, 512]
RESOLUTIONS: tuple[int, ...] = get_args(Resolution)
