"""Stage 4, sample: VAE-encode the aligned faces, denoise each 16-frame window, decode the mouths.

Per window (LatentSync's inference step by step): masked and reference frames are encoded,
one noise frame is shared by all frames, the UNet denoises with the chosen sampler, and the
decoded face keeps the reference outside the mask (``decoded * (1 - mask) + ref * mask``); with
the bundle's ``detail_transfer``, the masked part is instead the reference plus the decoded
change, ``ref + decode(z) - decode(z_ref)`` (the VAE's reconstruction error cancels), and with its
``detail_gate`` the reference's detail fades out where that change is large (:func:`detail_gate`).
Windows with no frame to change (no face, or silence that keeps the original mouth) skip the
UNet entirely. Noise is seeded per (clip, window), so a window's result does not depend on how
the clip was sharded or which worker ran it. With long-range anchors (``shard.anchors``, from
:mod:`lsray.pipeline.anchors`) a window pins its keyframes and the next window's first one.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from lsray.models.codec import LatentCodec
from lsray.models.unet import LipSyncUNet
from lsray.pipeline.records import WINDOW_FRAMES, ClipShard
from lsray.sampling.schedulers import make_scheduler
from lsray.sampling.window import WindowConditioning, denoise_window, initial_noise


@dataclass(frozen=True)
class SamplerSettings:
    """What a bundle fixes about sampling for every clip (a clip's sampler, steps, guidance and
    LCM grid are its ``ClipSettings``, resolved once by ``DubOptions.resolve``)."""

    scheduler_config: dict | None = None
    detail_transfer: bool = False  # see SamplerDefaults.detail_transfer
    detail_gate: float | None = None  # see SamplerDefaults.detail_gate


def window_seed(seed: int, window: int) -> int:
    """A stable 63-bit seed for one window of a clip. It depends on the clip's seed and the
    window's place only, never on the name a runner gives the clip (a catalog's clip id, a Serve
    job id, an attempt number), so the same clip dubs to the same mouths in every runner and on
    every retry."""
    digest = hashlib.sha256(f"{seed}:{window}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class SampleStage:
    """ClipShard -> ClipShard with ``generated`` (n, S, S, 3) uint8 crops.

    ``unets(sampler)`` gives the UNet a sampler runs (``ModelBundle.sampling_unet``: an LCM
    student bundle samples DDIM with its teacher), loaded on first use.
    """

    def __init__(self, unets: Callable[[str], LipSyncUNet], codec: LatentCodec, mask: np.ndarray,
                 settings: SamplerSettings) -> None:
        self.unets, self.codec, self.settings = unets, codec, settings
        self.device = codec.vae.device
        self.mask = torch.from_numpy(np.asarray(mask, np.float32))  # (S, S) 1 keep, 0 regenerate

    def mask_for(self, s: int) -> torch.Tensor:
        m = self.mask if self.mask.shape[-1] == s else F.interpolate(self.mask[None, None], size=(s, s), mode="bilinear")[0, 0]
        return m.to(self.device)

    def __call__(self, shard: ClipShard) -> ClipShard:
        return self.sample_many([shard], max_windows=1)[0]  # one window alive: bounded memory

    @torch.no_grad()
    def sample_many(self, shards: list[ClipShard], max_windows: int = 8) -> list[ClipShard]:
        """Sample several shards (of any clips); windows that share a sampler, step count,
        guidance and size are denoised together, up to ``max_windows`` per UNet call.

        Windows are prepared lazily and a group is denoised as soon as it is full, so at most
        ``max_windows`` windows per group are in memory, whatever the shards' length. Each window
        keeps its own seeded generator, so its result does not depend on what it was batched with.
        """
        for shard in shards:
            shard.generated = shard.crops.copy()
            shard.timings.setdefault("vae", 0.0)
            shard.timings.setdefault("unet", 0.0)
            shard.sampling = None
        pending: dict[tuple, list[_Window]] = {}
        for shard in shards:
            for window in self._windows(shard):
                group = pending.setdefault(window.key, [])
                group.append(window)
                if len(group) == max_windows:
                    self._denoise(pending.pop(window.key))
        for group in pending.values():
            self._denoise(group)
        for shard in shards:
            if shard.sampling is not None:  # a fingerprint of what this shard generated
                shard.sampling = {**shard.sampling, "generated_sha256": hashlib.sha256(shard.generated.tobytes()).hexdigest()}
        return shards

    def _denoise(self, chunk: list["_Window"]) -> None:
        """One UNet sampling loop over windows with the same key, then decode each."""
        sampler, steps, guidance, lcm_grid, deep_cache = chunk[0].key[:5]
        unet = CountingUNet(self.unets(sampler))
        t0 = time.perf_counter()
        noise = torch.cat([w.noise for w in chunk])  # B 4 F h w
        cond = WindowConditioning(
            mask=torch.cat([w.cond.mask for w in chunk]), masked=torch.cat([w.cond.masked for w in chunk]),
            ref=torch.cat([w.cond.ref for w in chunk]), audio=torch.cat([w.cond.audio for w in chunk]),
        )  # audio: (B F) N D, batch-major like the latents
        pinned = pins = None
        if any(w.pins is not None for w in chunk):  # windows without keyframes pin nothing (exactly)
            pins = torch.cat([w.pins if w.pins is not None else
                              torch.zeros((1, 1, w.noise.shape[2], 1, 1), dtype=torch.bool, device=w.noise.device)
                              for w in chunk])
            pinned = torch.cat([w.pinned if w.pinned is not None else torch.zeros_like(w.noise) for w in chunk])
        gens = [w.generator for w in chunk]
        latents = denoise_window(
            unet, noise, cond, sampler=sampler, steps=steps, guidance=guidance, lcm_grid=lcm_grid, deep_cache=deep_cache,
            scheduler_config=self.settings.scheduler_config, generator=gens if len(gens) > 1 else gens[0],
            pinned=pinned, pins=pins,
        )
        per = (time.perf_counter() - t0) / len(chunk)
        trace = {"sampler": sampler, "steps": steps, "guidance": guidance, "lcm_grid": lcm_grid, "deep_cache": deep_cache,
                 "unet_calls_per_window": unet.calls, "timesteps": unet.timesteps}
        for w, lat in zip(chunk, latents):
            w.shard.timings["unet"] += per
            anchors = w.shard.anchors
            w.shard.sampling = {**trace, "anchors": anchors.trace} if anchors is not None else trace
            self._finish(w, lat)

    def _windows(self, shard: ClipShard) -> Iterator["_Window"]:
        """VAE-encoded conditioning and seeded initial noise of each window of ``shard`` that
        has a frame to change (f = WINDOW_FRAMES)."""
        clip = shard.plan.settings  # resolved once for the clip (DubOptions.resolve)
        n, s = shard.crops.shape[0], shard.crops.shape[1]
        mask = self.mask_for(s)  # (S, S)
        first_window = shard.start // WINDOW_FRAMES
        for w0 in range(0, n, WINDOW_FRAMES):
            idx = np.arange(w0, min(n, w0 + WINDOW_FRAMES))
            if not shard.changes(idx):
                continue
            # Pad a short last window by repeating its last frame (dropped after decoding).
            full = np.concatenate([idx, np.full(WINDOW_FRAMES - len(idx), idx[-1])])
            t0 = time.perf_counter()
            pixels, masked, ref = self.encode(shard.crops[full], mask)  # f 3 S S ; f 4 h w
            h, w = masked.shape[-2:]
            cond = WindowConditioning(
                mask=self.latent_mask(mask, WINDOW_FRAMES, h, w), masked=masked.permute(1, 0, 2, 3)[None],  # 1 4 f h w
                ref=ref.permute(1, 0, 2, 3)[None], audio=torch.from_numpy(shard.tokens[full]).to(self.device),  # f N D
            )
            pinned = pins = None
            if shard.anchors is not None:
                cond, pinned, pins = self._pin_keyframes(shard, w0, len(idx), cond)
            frames = cond.masked.shape[2]  # 16, or 17 with the next window's keyframe as context
            gen = torch.Generator().manual_seed(window_seed(clip.seed, first_window + w0 // WINDOW_FRAMES))
            scheduler = make_scheduler(clip.sampler, self.settings.scheduler_config, clip.lcm_grid)
            noise = initial_noise(1, frames, h, w, generator=gen, device=self.device,
                                  channels=masked.shape[1]) * scheduler.init_noise_sigma
            shard.timings["vae"] += time.perf_counter() - t0
            yield _Window(shard, idx, pixels, mask, cond, noise, gen,
                          (clip.sampler, clip.steps, clip.guidance, clip.lcm_grid, clip.deep_cache, h, w, frames),
                          pinned, pins)

    def encode(self, crops: np.ndarray, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Aligned crops (f, S, S, 3) uint8 -> pixels (f, 3, S, S) in [-1, 1], masked and reference
        latents (f, 4, h, w) (the posterior's mode: upstream samples)."""
        pixels = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return pixels, self.codec.encode(pixels * mask), self.codec.encode(pixels)

    @staticmethod
    def latent_mask(mask: torch.Tensor, frames: int, h: int, w: int) -> torch.Tensor:
        return F.interpolate(mask[None, None], size=(h, w))[:, :, None].expand(1, 1, frames, h, w)

    def _pin_keyframes(self, shard: ClipShard, w0: int, real: int, cond: WindowConditioning):
        """The window at shard frame ``w0`` (``real`` frames of it are the clip's) with its
        keyframes pinned to the anchor pass's latents and, when the clip goes on, the next
        window's first keyframe appended as a 17th, pinned frame: the frames before a window
        boundary see the keyframe right after it. Returns (cond, pinned, pins)."""
        anchors, f0 = shard.anchors, shard.start + w0
        rows = [anchors.index(f0 + k) if k < real else None for k in range(WINDOW_FRAMES)]
        context = anchors.index(f0 + WINDOW_FRAMES) if real == WINDOW_FRAMES else None
        if context is not None:
            def extra(a: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(a[context]).to(self.device)

            h, w = cond.masked.shape[-2:]
            cond = WindowConditioning(
                mask=cond.mask[:, :, :1].expand(1, 1, WINDOW_FRAMES + 1, h, w),
                masked=torch.cat([cond.masked, extra(anchors.masked)[None, :, None]], dim=2),
                ref=torch.cat([cond.ref, extra(anchors.ref)[None, :, None]], dim=2),
                audio=torch.cat([cond.audio, extra(anchors.tokens)[None]]),
            )
            rows.append(context)
        frames = len(rows)
        pins = torch.tensor([r is not None for r in rows], device=self.device).view(1, 1, frames, 1, 1)
        pinned = torch.zeros_like(cond.masked)  # 1 4 F h w
        for k, r in enumerate(rows):
            if r is not None:
                pinned[0, :, k] = torch.from_numpy(anchors.latents[r]).to(self.device)
        return cond, pinned, pins

    @torch.no_grad()
    def _finish(self, w: "_Window", latents: torch.Tensor) -> None:
        """Decode one window's latents (c, f, h, w) and keep the reference outside the mask."""
        t0 = time.perf_counter()
        z = latents[:, :WINDOW_FRAMES].transpose(0, 1)  # f c h w (an appended context keyframe is not decoded)
        if self.settings.detail_transfer:
            both = self.codec.decode(torch.cat([z, w.cond.ref[0, :, :WINDOW_FRAMES].transpose(0, 1)]))  # 2f 3 S S
            generated, rebuilt = both[: len(z)], both[len(z):]
            detail = w.pixels - rebuilt  # what the VAE loses of the source, f 3 S S
            if self.settings.detail_gate is not None:
                detail = detail * detail_gate(generated - rebuilt, self.settings.detail_gate)
            decoded = (generated + detail).clamp(-1, 1)
        else:
            decoded = self.codec.decode(z).clamp(-1, 1)  # f 3 S S
        face = decoded * (1 - w.mask) + w.pixels * w.mask
        out = ((face + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
        w.shard.generated[w.idx] = out[: len(w.idx)]
        w.shard.timings["vae"] += time.perf_counter() - t0


#: The neighbourhood (pixels of the crop, square) over which detail_gate averages the change.
GATE_WINDOW = 9


def detail_gate(change: torch.Tensor, threshold: float) -> torch.Tensor:
    """How much of the source's detail to keep: 1 where the decoded ``change`` (f 3 S S, in
    [-1, 1] units) is nil, falling linearly to 0 where its local mean (over colour and a
    :data:`GATE_WINDOW` square, signed, then its magnitude) reaches ``threshold``. Returns f 1 S S.

    The mean is taken before the magnitude so that a change of *shape* (a mouth that opened or
    shut: the interior darker or lighter over a patch) closes the gate, while texture the UNet
    redraws differently from the VAE's rebuild of the source (zero-mean: as much lighter as
    darker nearby) leaves it open: the source's real texture is kept where the VAE cannot make
    its own. Without the gate the old mouth's sharp edges ghost over the new shape."""
    local = F.avg_pool2d(change.mean(1, keepdim=True), GATE_WINDOW, stride=1, padding=GATE_WINDOW // 2,
                         count_include_pad=False).abs()
    return (1 - local / threshold).clamp(0, 1)


@dataclass
class _Window:
    """One 16-frame window on its way through the UNet (see :meth:`SampleStage.sample_many`)."""

    shard: ClipShard
    idx: np.ndarray  # the shard's frames this window covers (a short last window is padded)
    pixels: torch.Tensor  # f 3 S S in [-1, 1]
    mask: torch.Tensor  # S S
    cond: WindowConditioning
    noise: torch.Tensor  # 1 4 f h w
    generator: torch.Generator
    key: tuple  # (sampler, steps, guidance, lcm_grid, deep_cache, h, w, frames): equal keys batch together
    pinned: torch.Tensor | None = None  # 1 4 F h w: the anchor pass's latents of its keyframes
    pins: torch.Tensor | None = None  # 1 1 F 1 1 bool: which frames are pinned


class CountingUNet(torch.nn.Module):
    """The sampling UNet, counting its forward calls and the timesteps they were made at: what
    a clip's result reports as its sampling trace (proof of the sampler actually run)."""

    def __init__(self, unet: LipSyncUNet) -> None:
        super().__init__()
        self.unet = unet
        self.config = unet.config
        self.calls, self.timesteps = 0, []

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor, audio: torch.Tensor, **kw) -> torch.Tensor:
        self.calls += 1
        self.timesteps.append(int(t))
        return self.unet(x, t, audio, **kw)
