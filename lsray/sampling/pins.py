"""Pinned keyframes: how a sequence of frames is told that some of its frames are already decided.

Long-range anchors (DESIGN.md, upgrade 3) sample a clip's keyframes first; every later pass over
frames that include a keyframe (a 16-frame window, or the next keyframe sequence of the anchor
chain) *pins* it: the UNet's noisy-latent channels carry that frame's clean latent at every step
(whatever the timestep of the others), and the sampler's result for it is the clean latent
exactly. Clean keyframes carry their full information from the first step on, which is what a
1-4 step consistency student needs (a keyframe re-noised to the step's level would say nothing at
the first, pure-noise step). Training pins the same way (``lsray.train``), so this is the one
definition the sampler and the training jobs share.
"""

from __future__ import annotations

import torch


def keyframe_pins(positions: torch.Tensor, stride: int) -> torch.Tensor:
    """(F,) bool: the frames at ``positions`` (frame times) that are keyframes (multiples of ``stride``)."""
    return positions % stride == 0


def pin_latents(latents: torch.Tensor, clean: torch.Tensor | None, pins: torch.Tensor | None) -> torch.Tensor:
    """``latents`` (B, C, F, h, w) with the pinned frames replaced by ``clean`` (same shape);
    ``pins``: (B, 1, F, 1, 1) or (F,) bool. No pins: ``latents`` unchanged."""
    if pins is None or clean is None:
        return latents
    if pins.dim() == 1:
        pins = pins.view(1, 1, -1, 1, 1)
    return torch.where(pins.to(latents.device), clean.to(latents.dtype), latents)
