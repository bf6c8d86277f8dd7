"""Strict loading of upstream LatentSync UNet checkpoints into :class:`LipSyncUNet`.

Upstream loads with ``strict=False`` and silently ignores what does not fit; here every missing,
unexpected or misshaped key is an error that names it. The only differences tolerated are the
upgrades, each adapted so the loaded model computes exactly what LatentSync computes:
- audio K/V projections narrower than ``cross_attention_dim`` are zero-padded (upgrade 1);
- positional encodings shorter than ``temporal.max_len`` keep their rows and are extended with
  the same sinusoid (upgrade 3); new anchor branches start from their zero initialisation;
- a guidance-embedding projection (``time_cond_proj_dim``, upgrade 4) starts at zero.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from lsray.errors import CheckpointMismatchError, MissingWeightError
from lsray.models.config import UNetConfig
from lsray.models.temporal import sinusoid_table
from lsray.models.unet import LipSyncUNet

# Parameters that only exist in upgraded models and may be absent from an upstream checkpoint.
_UPGRADE_ONLY = re.compile(r"(\.anchor\.|^time_embedding\.cond_proj\.)")
_AUDIO_KV = re.compile(r"\.attn2\.to_[kv]\.weight$")
_POS = re.compile(r"\.pos_encoder\.pe$")


def read_state_dict(checkpoint: str | Path | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors of an upstream checkpoint (``{"state_dict": ...}``) or a bare state dict."""
    if isinstance(checkpoint, dict):
        sd = checkpoint
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise MissingWeightError(path, "LatentSync UNet checkpoint")
        sd = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def is_upgrade_only(key: str) -> bool:
    """Whether a parameter exists only in upgrade branches (anchors, guidance embedding)."""
    return bool(_UPGRADE_ONLY.search(key))


def adapt_state_dict(model: LipSyncUNet, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check ``sd`` against ``model`` key by key and apply the upgrade adaptations.

    Raises CheckpointMismatchError listing every missing, unexpected and misshaped key.
    """
    target = model.state_dict()
    missing = [k for k in target if k not in sd and not _UPGRADE_ONLY.search(k)]
    unexpected = [k for k in sd if k not in target]
    misshaped: list[str] = []
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key not in target:
            continue
        want = target[key]
        if value.shape == want.shape:
            out[key] = value
        elif _AUDIO_KV.search(key) and value.shape[0] == want.shape[0] and value.shape[1] < want.shape[1]:
            padded = torch.zeros_like(want, dtype=value.dtype)
            padded[:, : value.shape[1]] = value  # new audio dims contribute nothing at load time
            out[key] = padded
        elif _POS.search(key) and value.shape[2] == want.shape[2] and value.shape[1] < want.shape[1]:
            extended = sinusoid_table(want.shape[1], want.shape[2]).to(value.dtype)
            extended[:, : value.shape[1]] = value
            out[key] = extended
        else:
            misshaped.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(want.shape)}")
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("misshaped", misshaped)):
            if items:
                shown = ", ".join(items[:12]) + (f" (+{len(items) - 12} more)" if len(items) > 12 else "")
                parts.append(f"{len(items)} {label}: {shown}")
        raise CheckpointMismatchError("checkpoint does not fit the UNet config: " + "; ".join(parts))
    for key, value in target.items():  # upgrade-only parameters keep their initialisation
        out.setdefault(key, value)
    return out


def load_latentsync_unet(
    checkpoint: str | Path | dict[str, torch.Tensor],
    config: str | Path | dict[str, Any] | UNetConfig,
    **upgrades: Any,
) -> LipSyncUNet:
    """Build the UNet from an upstream config (+ upgrades), load the checkpoint strictly, eval mode."""
    if isinstance(config, UNetConfig):
        cfg = config.model_copy(update=upgrades) if upgrades else config
        cfg = UNetConfig.model_validate(cfg.model_dump())
    else:
        cfg = UNetConfig.from_latentsync(config, **upgrades)
    model = LipSyncUNet(cfg)
    model.load_state_dict(adapt_state_dict(model, read_state_dict(checkpoint)), strict=True)
    return model.eval()


def compare_shapes(model: LipSyncUNet, reference: str | Path | dict[str, list[int]]) -> list[str]:
    """Differences between ``model``'s state-dict names/shapes and a reference name -> shape map
    (e.g. ``stage2_state_dict_shapes.json``); an empty list means they agree exactly."""
    ref = json.loads(Path(reference).read_text()) if not isinstance(reference, dict) else reference
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    diffs = [f"missing in model: {k}" for k in ref if k not in ours]
    diffs += [f"not in reference: {k}" for k in ours if k not in ref]
    diffs += [f"{k}: model {ours[k]} vs reference {ref[k]}" for k in ref if k in ours and ours[k] != list(ref[k])]
    return diffs
