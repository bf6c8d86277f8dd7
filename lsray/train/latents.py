"""From a batch of face sequences to what the UNet sees (shared by stage 2 and distillation).

The frozen VAE encodes the frames, their masked copies and the reference frames with the same
:class:`~lsray.models.codec.LatentCodec` as the sample stage at inference, and the mask is resized
to the latent grid with nearest-neighbour, as there. :func:`anchor_layout` then decides, per step,
which of the sequence's frames are pinned or whether the UNet sees its keyframes only (upgrade 3's
long-range anchors, trained the way the sampler uses them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from lsray.errors import LsrayError
from lsray.models.codec import LatentCodec
from lsray.sampling.pins import keyframe_pins

if TYPE_CHECKING:
    from lsray.bundle import ModelBundle
    from lsray.models.config import UNetConfig
    from lsray.train.config import AnchorTraining


@dataclass
class LatentBatch:
    latents: torch.Tensor  # (B, 4, F, h, w) clean latents of the frames
    side: torch.Tensor  # (B, 9, F, h, w) [mask (1), masked-frame latents (4), reference latents (4)]
    mask_latent: torch.Tensor  # (B, 1, F, h, w) 1 = keep
    audio: torch.Tensor  # (B*F, N, D)
    frames: torch.Tensor  # (B, F, 3, S, S) in [-1, 1]
    pixel_mask: torch.Tensor  # (S, S) 1 = keep

    @property
    def regenerated(self) -> torch.Tensor:
        return 1.0 - self.mask_latent


class InpaintingInputs:
    """A batch of face sequences -> what the UNet sees (:class:`LatentBatch`): the frozen
    :class:`~lsray.models.codec.LatentCodec` (the one the sample stage uses) plus the bundle's
    inpainting mask at the training crop size."""

    def __init__(self, codec: LatentCodec, mask: np.ndarray, image_size: int) -> None:
        self.codec = codec
        m = torch.from_numpy(np.asarray(mask, np.float32))[None, None]
        self.mask = F.interpolate(m, size=(image_size, image_size), mode="bilinear")[0, 0]  # (S, S)

    @classmethod
    def from_bundle(cls, bundle: "ModelBundle", image_size: int) -> "InpaintingInputs":
        """A loaded bundle's codec and mask at ``image_size``."""
        return cls(bundle.codec, bundle.mask, image_size)

    def to(self, device: torch.device) -> "InpaintingInputs":
        self.codec.to(device)
        self.mask = self.mask.to(device)
        return self

    def prepare(self, batch: dict[str, torch.Tensor], device: torch.device) -> LatentBatch:
        frames = batch["frames"].to(device)  # b f 3 S S
        ref = batch["ref"].to(device)
        latents = self.codec.encode_video(frames)  # b 4 f h w
        masked = self.codec.encode_video(frames * self.mask)
        ref_lat = self.codec.encode_video(ref)
        b, _, f, h, w = latents.shape
        m = F.interpolate(self.mask[None, None], size=(h, w))[:, :, None].expand(b, 1, f, h, w)
        audio = batch["audio"].to(device)  # b f n d
        return LatentBatch(
            latents=latents, side=torch.cat([m, masked, ref_lat], dim=1), mask_latent=m,
            audio=audio.reshape(b * f, *audio.shape[2:]), frames=frames, pixel_mask=self.mask,
        )


@dataclass
class AnchorLayout:
    """What one training step makes of a sequence for long-range anchors (upgrade 3): the frames
    the UNet sees (``batch``: the sequence, or its keyframes), their frame times and the pinned
    frames, whose noisy channels carry the clean latents (:func:`lsray.sampling.pins.pin_latents`)."""

    batch: LatentBatch  # the sequence, or its keyframes (every ``stride``-th frame)
    frames: torch.Tensor | None = None  # (F',) long: the sequence's frames in ``batch`` (None: all of them)
    positions: torch.Tensor | None = None  # (F',) long frame times for the UNet (None: 0..F'-1)
    pins: torch.Tensor | None = None  # (F',) bool, True = pinned (None: none)

    @property
    def keyframes(self) -> bool:
        """A keyframe sequence (frames ``stride`` apart): no windowed pass, no sync loss."""
        return self.frames is not None

    def select(self, x: torch.Tensor, dim: int = 2) -> torch.Tensor:
        """``x``'s frames (along ``dim``) that are in ``batch``: e.g. noise drawn for the whole sequence."""
        return x if self.frames is None else x.index_select(dim, self.frames.to(x.device))


def anchor_stride(unet_config: "UNetConfig", anchors: "AnchorTraining | None") -> int | None:
    """The keyframe stride anchors training pins at: the UNet's ``temporal.anchor_stride``, as at
    inference (None when ``anchors`` is None). A UNet without anchors cannot be trained with them."""
    if anchors is None:
        return None
    stride = unet_config.temporal.anchor_stride
    if not stride:
        raise LsrayError("anchors training pins every anchor_stride-th frame, but the UNet has no "
                         "temporal.anchor_stride: set it (stage 2: unet_overrides.temporal.anchor_stride; "
                         "distillation: a teacher trained with it) or drop 'anchors'")
    return stride


def anchor_layout(lb: LatentBatch, anchors: "AnchorTraining", stride: int, max_len: int,
                  generator: torch.Generator | None = None) -> AnchorLayout:
    """One step's anchor layout of the sequence ``lb`` (F frames), drawn with ``generator``:

    - with ``anchors.keyframe_probability``, a keyframe sequence (the anchor pass): frames 0,
      stride, 2 stride, ... (frame times < ``max_len``, the UNet's positional table) at those
      times, the first k ~ U{0..overlap} of them pinned (the previous anchor sequence's overlap;
      at least one stays free). Needs at least two keyframes, else the sequence stays as is;
    - else, with ``anchors.pin_probability``, the sequence with its keyframes pinned (a window of
      the local pass; never every frame, which leaves nothing to learn);
    - else the sequence with nothing pinned.
    The same three draws every step, so a seeded generator gives the same layouts.
    """
    f = lb.latents.shape[2]
    device = lb.latents.device
    u_key, u_pin = torch.rand((2,), generator=generator).tolist()
    k = int(torch.randint(0, anchors.overlap + 1, (1,), generator=generator))
    idx = torch.arange(0, min(f, max_len), stride)  # the keyframes' frame times
    if u_key < anchors.keyframe_probability and len(idx) >= 2:
        k = min(k, len(idx) - 1)
        pins = (torch.arange(len(idx)) < k) if k else None
        b = lb.latents.shape[0]
        i = idx.to(device)
        audio = lb.audio.view(b, f, *lb.audio.shape[1:])[:, i].flatten(0, 1)  # (b f') n d
        key = LatentBatch(latents=lb.latents[:, :, i], side=lb.side[:, :, i], mask_latent=lb.mask_latent[:, :, i],
                          audio=audio, frames=lb.frames[:, i], pixel_mask=lb.pixel_mask)
        return AnchorLayout(key, frames=idx, positions=i, pins=None if pins is None else pins.to(device))
    pins = keyframe_pins(torch.arange(f), stride)
    if u_pin < anchors.pin_probability and not pins.all():
        return AnchorLayout(lb, pins=pins.to(device))
    return AnchorLayout(lb)


def sample_noise(latents: torch.Tensor, shared: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training noise whose variance is the fraction ``shared`` one frame repeated over the sequence
    (1: as at inference) and the rest i.i.d. per frame (0: plain diffusion noise).

    Fully shared noise leaks the answer: frame differences of the noisy latents are then
    sqrt(alpha_bar) * (x_i - x_j) at every t, so the UNet learns the mouth's motion from its own
    input instead of the audio, and at inference (no such signal in the start noise) holds the
    mouth still. A mixture (PYoCo's mixed noise, 0.5 = alpha 1) keeps most of the steadiness of
    shared noise without the leak.
    """
    b, c, f, h, w = latents.shape
    if not 0.0 <= shared <= 1.0:
        raise ValueError(f"shared noise fraction must be in [0, 1], got {shared}")
    n = None
    if shared > 0:
        n = torch.randn((b, c, 1, h, w), generator=generator).expand(b, c, f, h, w)
        if shared == 1:
            return n.contiguous().to(latents.device)
        n = n * shared**0.5
    i = torch.randn((b, c, f, h, w), generator=generator) * (1.0 - shared) ** 0.5
    return (i if n is None else n + i).to(latents.device)


def predicted_x0(pred: torch.Tensor, noisy: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor,
                 prediction_type: str = "epsilon") -> torch.Tensor:
    """The clean-latent estimate from the UNet's output ``pred``, per clip timestep t (B,):
    epsilon: x0 = (x_t - sqrt(1 - a) eps) / sqrt(a); v: x0 = sqrt(a) x_t - sqrt(1 - a) v; sample: pred."""
    if prediction_type == "sample":
        return pred
    a = alphas_cumprod.to(noisy.device)[t].view(-1, 1, 1, 1, 1)
    if prediction_type == "v_prediction":
        return a.sqrt() * noisy - (1 - a).sqrt() * pred
    return (noisy - (1 - a).sqrt() * pred) / a.sqrt()


def prediction_target(x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor,
                      prediction_type: str = "epsilon") -> torch.Tensor:
    """What the UNet is trained to output under the bundle's ``prediction_type`` (diffusers' names)."""
    if prediction_type == "sample":
        return x0
    if prediction_type == "v_prediction":
        a = alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1, 1)
        return a.sqrt() * noise - (1 - a).sqrt() * x0
    return noise


def add_noise(x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a = alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def trainable_parameters(module: torch.nn.Module, patterns: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """Freeze every parameter whose name contains none of ``patterns``; returns the trainable ones."""
    out = []
    for name, p in module.named_parameters():
        keep = any(pat in name for pat in patterns)
        p.requires_grad_(keep)
        if keep:
            out.append(p)
    if not out:
        raise ValueError(f"no parameter matches the trainable patterns {patterns}")
    return out


def enable_gradient_checkpointing(unet: torch.nn.Module) -> torch.nn.Module:
    """Recompute each UNet level's activations in backward (GPU memory for compute).

    The levels' ``forward`` is wrapped per instance, so parameter names (and bundles) are unchanged.
    """
    from torch.utils.checkpoint import checkpoint

    for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks]:
        def fresh(*args, _f=block.forward, **kwargs):
            # up levels pop their skip tensors from a list argument: give every (re)run its own copy
            return _f(*(list(a) if isinstance(a, list) else a for a in args), **kwargs)

        def forward(*args, _run=fresh, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_run, *args, use_reentrant=False, **kwargs)
            return _run(*args, **kwargs)

        block.forward = forward
    return unet
