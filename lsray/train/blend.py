"""A fine-tune's UNet blended in weight space with the bundle it started from.

Every fine-tune of the demo's v1 on the same synthetic world scored below v1 on held-out clips
(README, "Why the fine-tunes lose to v1"): the end of a fine-tune forgets some of what its start
knew. Fine-tunes from one start stay in one basin, so the straight line between the two sets of
weights is a family of working models; a point inside it can keep what both ends know (WiSE-FT,
Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"). The recipe's ``blend`` publishes
such a point: ``start + blend * (tuned - start)``, parameter by parameter.

The start is first carried over to the fine-tune's architecture (:func:`~lsray.train.stage2.carried_over`:
the wider audio input of fused audio zero-padded, upgrade branches at their zero init), so the
line's start end computes exactly what the start bundle did.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lsray.bundle.config import CONFIG_FILE, UNET_FILE, BundleConfig
from lsray.errors import BundleError


def blend_unets(start: torch.nn.Module, tuned: torch.nn.Module, weight: float) -> torch.nn.Module:
    """A UNet of ``tuned``'s config whose every floating-point tensor is
    ``start + weight * (tuned - start)`` (``weight`` 0: the start's function, 1: ``tuned``)."""
    from lsray.models.unet import LipSyncUNet
    from lsray.train.stage2 import carried_over

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight {weight} is outside [0, 1]")
    base = carried_over(start, tuned.config).state_dict()
    state = {}
    for key, value in tuned.state_dict().items():
        # buffers that are not weights (integer counters) are the fine-tune's
        state[key] = torch.lerp(base[key].to(value.dtype), value, weight) if value.is_floating_point() else value
    out = LipSyncUNet(tuned.config)
    out.load_state_dict(state)
    return out.eval()


def blend_bundles(start: str | Path, tuned: str | Path, weight: float, out: str | Path) -> Path:
    """Write ``out`` (atomically, by :func:`~lsray.train.export.save_inference_bundle`): the bundle
    ``tuned`` with its UNet blended toward ``start``'s by :func:`blend_unets`; everything else
    (audio encoders, VAE, mask, sampler) is ``tuned``'s."""
    from lsray.bundle.load import load_unet
    from lsray.train.export import save_inference_bundle

    start, tuned = Path(start), Path(tuned)
    config = BundleConfig.read(tuned / CONFIG_FILE)
    if config.lcm is not None:
        raise BundleError(f"{tuned} is a consistency student: blend the teacher it was distilled from, then distil")
    cpu = torch.device("cpu")
    start_unet = load_unet(start / UNET_FILE, BundleConfig.read(start / CONFIG_FILE).unet, cpu)
    blended = blend_unets(start_unet, load_unet(tuned / UNET_FILE, config.unet, cpu), weight)
    return save_inference_bundle(out, blended, tuned, config)


__all__ = ["blend_bundles", "blend_unets"]
