"""Does a trained UNet use its audio? The check a falling loss cannot make.

A lip-sync UNet can lower its loss a long way without listening: the masked frame, the reference
frame and (at low noise) the noisy latents say most of what the mouth looks like. The demo
recipe's first bundles did exactly that (their random Whisper gave features that were >99 % the
position table; before that, fully shared training noise leaked the motion). This measures it:
the x0 error in the regenerated latent region at a high-noise timestep, where only the audio
says what the mouth does, with each sequence's own audio and with another sequence's. A UNet
that listens does clearly worse with the wrong audio.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class AudioReliance:
    right: float  # mean x0 MSE in the regenerated region, each sequence with its own audio
    shuffled: float  # the same with the next sequence's audio (same sequences, noise, timestep)
    sequences: int
    timestep: int

    @property
    def gain(self) -> float:
        """How much worse the wrong audio is, relative: 0 = the UNet ignores its audio."""
        return self.shuffled / self.right - 1.0

    def describe(self) -> str:
        return (f"x0 error at t={self.timestep} over {self.sequences} sequences: {self.right:.4f} with the right audio, "
                f"{self.shuffled:.4f} with another sequence's ({100 * self.gain:+.1f} %)")


@torch.no_grad()
def audio_reliance(bundle: str | Path, shards: str | Path, *, timestep: int = 999, sequences: int = 64,
                   seq_len: int = 8, batch_size: int = 8, noise_share: float = 0.0, seed: int = 0,
                   image_size: int | None = None) -> AudioReliance:
    """Right- vs wrong-audio x0 error of ``bundle``'s UNet on ``sequences`` sequences of ``shards``.

    Sequences are drawn with ``seed`` and batched ``batch_size`` at a time; inside a batch each
    sequence gets its neighbour's audio (so ``batch_size`` >= 2). ``noise_share`` as in training
    (:func:`lsray.train.latents.sample_noise`). ``image_size``: the shards' crop size to read
    (default: the bundle's resolution).
    """
    from lsray.bundle import load_bundle
    from lsray.train.data import collate, local_sequences
    from lsray.train.latents import InpaintingInputs, add_noise, predicted_x0, sample_noise
    from lsray.train.runner import bundle_sequence_kwargs

    if batch_size < 2:
        raise ValueError("batch_size must be >= 2: the wrong audio is another sequence's in the same batch")
    b = load_bundle(str(bundle), device="cpu", precision="fp32")  # whatever the bundle samples in
    size = image_size or b.config.resolution
    inputs = InpaintingInputs.from_bundle(b, size)
    sched = b.make_scheduler("ddim")
    alphas, kind = sched.alphas_cumprod.float(), sched.config.prediction_type
    unet = b.unet.eval()
    seqs = local_sequences(str(shards), seq_len=seq_len, stride=seq_len, image_size=size, **bundle_sequence_kwargs(b.config))
    random.Random(seed).shuffle(seqs)
    seqs = seqs[:sequences]
    g = torch.Generator().manual_seed(seed)
    sums = {"right": 0.0, "shuffled": 0.0}
    weight, used = 0.0, 0
    for i in range(0, len(seqs) - 1, batch_size):
        chunk = seqs[i : i + batch_size]
        if len(chunk) < 2:
            break
        used += len(chunk)
        lb = inputs.prepare(collate(chunk), torch.device("cpu"))
        n, _, f = lb.latents.shape[:3]
        t = torch.full((n,), timestep)
        noisy = add_noise(lb.latents, sample_noise(lb.latents, noise_share, g), alphas, t)
        inp = torch.cat([noisy, lb.side], dim=1)  # b 13 f h w
        region = lb.regenerated  # b 1 f h w
        for name, audio in (("right", lb.audio), ("shuffled", lb.audio.roll(f, dims=0))):  # (b f) n d
            x0 = predicted_x0(unet(inp, t, audio), noisy, alphas, t, kind)  # b 4 f h w
            sums[name] += float((((x0 - lb.latents) ** 2) * region).sum())
        weight += float(region.sum()) * lb.latents.shape[1]
    if weight == 0:
        raise ValueError(f"{shards}: fewer than 2 sequences of {seq_len} frames")
    return AudioReliance(right=sums["right"] / weight, shuffled=sums["shuffled"] / weight,
                         sequences=used, timestep=timestep)
