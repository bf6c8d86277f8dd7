"""The anchor pass (upgrade 3, long-range anchors): a clip's keyframes, sampled before any window.

LatentSync's 16-frame windows never see one another, so teeth, lip texture and jaw height drift
from window to window over a long clip. Here every ``stride``-th output frame (a keyframe) is
sampled first, in sequences of ``sequence`` keyframes with temporal attention across them at
their real frame times (``positions``: 0, 8, ..., 56). A clip longer than one sequence is covered
by sequences that overlap the previous one by ``overlap`` keyframes, pinned to what it sampled, so
the clip's keyframes form one chain. Every window then pins the keyframes it holds and the next
window's first one (:meth:`SampleStage._pin_keyframes`); windows are independent of one another
given the anchors, so shards still run anywhere, in any grouping, and agree at their boundaries.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import torch

from lsray.device import single_thread
from lsray.pipeline.records import ClipAnchors, Keyframes
from lsray.pipeline.sample import CountingUNet, SampleStage
from lsray.sampling.schedulers import make_scheduler
from lsray.sampling.window import WindowConditioning, denoise_window, initial_noise

#: Keyframes VAE-encoded per call (bounded memory on long clips).
ENCODE_CHUNK = 16


def sequence_starts(keyframes: int, length: int, overlap: int) -> list[int]:
    """First keyframe of each anchor-pass sequence: ``length`` keyframes each, every one after the
    first starting ``overlap`` keyframes before the previous one's end; the last one ends at the
    clip's last keyframe (it may overlap more), so every sequence has the same length."""
    if keyframes <= length:
        return [0]
    starts = list(range(0, keyframes - length + 1, length - overlap))
    if starts[-1] + length < keyframes:
        starts.append(keyframes - length)
    return starts


def anchor_seed(seed: int, sequence: int) -> int:
    """A stable 63-bit noise seed for one anchor-pass sequence (never equal to a window's)."""
    digest = hashlib.sha256(f"{seed}:anchors:{sequence}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class AnchorStage:
    """Keyframes (with audio tokens) -> ClipAnchors; uses the sample stage's models."""

    def __init__(self, sample: SampleStage) -> None:
        self.sample = sample

    def __call__(self, kf: Keyframes) -> ClipAnchors:
        # On CPU, short sequences round differently with the thread count: one thread keeps the
        # keyframes (and so every window pinned to them) identical in every runner.
        if self.sample.device.type == "cpu":
            with single_thread():
                return self._run(kf)
        return self._run(kf)

    @torch.no_grad()
    def _run(self, kf: Keyframes) -> ClipAnchors:
        clip = kf.plan.settings
        settings = clip.anchors
        if settings is None:
            raise ValueError("the anchor pass needs a clip whose settings have anchors on")
        sample, device = self.sample, self.sample.device
        t0 = time.perf_counter()
        mask = sample.mask_for(kf.crops.shape[1])
        encoded = [sample.encode(kf.crops[i : i + ENCODE_CHUNK], mask)[1:] for i in range(0, len(kf.frames), ENCODE_CHUNK)]
        masked = torch.cat([m for m, _ in encoded])  # K 4 h w
        ref = torch.cat([r for _, r in encoded])
        tokens = torch.from_numpy(kf.tokens).to(device)  # K N D
        vae_s = time.perf_counter() - t0

        k, (c, h, w) = len(kf.frames), masked.shape[1:]
        length = min(settings.sequence, k)
        latents = torch.zeros_like(masked)  # K 4 h w, filled sequence by sequence
        unet = CountingUNet(sample.unets(clip.sampler))
        scheduler = make_scheduler(clip.sampler, sample.settings.scheduler_config, clip.lcm_grid)
        done = 0  # keyframes [0, done) are sampled
        starts = sequence_starts(k, length, settings.overlap)
        t1 = time.perf_counter()
        for j, s0 in enumerate(starts):
            sel = slice(s0, s0 + length)

            def frames_first(x: torch.Tensor) -> torch.Tensor:  # L 4 h w -> 1 4 L h w
                return x[sel].permute(1, 0, 2, 3)[None]

            cond = WindowConditioning(mask=sample.latent_mask(mask, length, h, w), masked=frames_first(masked),
                                      ref=frames_first(ref), audio=tokens[sel])
            gen = torch.Generator().manual_seed(anchor_seed(clip.seed, j))
            noise = initial_noise(1, length, h, w, generator=gen, device=device, channels=c) * scheduler.init_noise_sigma
            pins = (torch.arange(s0, s0 + length, device=device) < done).view(1, 1, length, 1, 1)
            positions = torch.from_numpy(kf.frames[sel] - kf.frames[s0]).to(device)
            out = denoise_window(unet, noise, cond, sampler=clip.sampler, steps=clip.steps, guidance=clip.guidance,
                                 lcm_grid=clip.lcm_grid, deep_cache=clip.deep_cache,
                                 scheduler_config=sample.settings.scheduler_config, generator=gen,
                                 pinned=frames_first(latents), pins=pins, positions=positions)
            latents[sel] = out[0].permute(1, 0, 2, 3)
            done = s0 + length
        unet_s = time.perf_counter() - t1

        def host(x: torch.Tensor) -> np.ndarray:
            return x.float().cpu().numpy()

        trace = {"keyframes": k, "stride": settings.stride, "sequences": len(starts), "sequence": length,
                 "overlap": settings.overlap, "unet_calls": unet.calls}
        return ClipAnchors(settings.stride, kf.frames.copy(), host(latents), host(masked), host(ref), host(tokens),
                           trace=trace, timings={"anchors": unet_s, "vae": vae_s})
