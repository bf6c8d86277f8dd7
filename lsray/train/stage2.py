"""Stage-2 fine-tune: LatentSync's objective plus the lip discriminator (2) and temporal losses (3).

One training step, top to bottom (:meth:`Stage2Job.step`):
 1. encode frames / masked frames / reference frames with the frozen VAE -> latents (B, 4, F, h, w);
 2. noise them at a random timestep, predict the noise -> ``noise`` MSE (LatentSync);
 3. one-step x0 estimate, decoded by the VAE -> ``recon`` L1, ``sync`` (frozen SyncNet, BCE to
    "in sync"), ``perceptual`` (only with VGG weights);
 4. upgrade 3: ``smooth`` = MSE of the x0 estimate's second temporal difference to the clean
    latents' one (jitter is punished, real motion is not), ``anchor`` = anchor consistency: a
    second pass over an anchor-aligned sub-window (its anchors are a subset of the sequence's)
    must predict what the full-sequence pass predicts there (stop-gradient on the full pass), so
    windows sampled separately agree with the whole;
 5. upgrade 2: mouth crops (96 x 96) of decoded vs real frames through the multi-scale PatchGAN:
    generator hinge/LSGAN loss x ``adversarial_weight(step)`` (linear warm-up from 0) + feature
    matching; then the discriminator's own step with its own optimizer.
With ``anchors`` (upgrade 3's long-range anchors, :func:`lsray.train.latents.anchor_layout`) each
step first draws how the sequence is seen, as inference sees its frames: keyframes pinned (clean
latents in the noisy channels), or a keyframe sequence at its frame times (``positions``) with its
leading keyframes pinned. Pinned frames are out of the noise loss and their x0 estimate is the clean
latent, so recon / smooth / adversarial terms teach the free frames to join the given anchors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ValidationError

from lsray.errors import LsrayError, MissingWeightError
from lsray.bundle.config import BundleConfig
from lsray.models.config import UNetConfig
from lsray.models.discriminator import (
    MultiScaleDiscriminator,
    adversarial_weight,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
)
from lsray.models.losses import PerceptualLoss, mouth_box, mouth_crops, temporal_smoothness
from lsray.sampling.pins import pin_latents
from lsray.train.config import Stage2Config
from lsray.train.latents import (
    InpaintingInputs,
    add_noise,
    anchor_layout,
    anchor_stride,
    enable_gradient_checkpointing,
    predicted_x0,
    prediction_target,
    sample_noise,
    trainable_parameters,
)
from lsray.train.optim import clipped_step, data_parallel, set_lr, warmup_cosine_lr


def overridden_unet_config(config: UNetConfig, overrides: dict[str, Any]) -> UNetConfig:
    """``config`` with ``overrides`` merged in, nested sections key by key (``{"temporal": {"band": 2}}``
    keeps the other temporal settings)."""
    data = config.model_dump()
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return type(config).model_validate(data)


def exported_config(bundle_config: BundleConfig, cfg: Stage2Config) -> BundleConfig:
    """The config of the bundle a stage-2 job writes: the start bundle's with the UNet overrides
    and, when ``cfg.phoneme`` is set, fused audio (upgrade 1).

    Computed before training (by the driver for the data, by each worker for the export), so a
    job whose audio widths do not add up, or whose phoneme folder is incomplete, fails at once
    instead of after the last step.
    """
    from lsray.audio.phoneme import PHONEME_FILES

    audio = bundle_config.audio
    if cfg.phoneme is not None:
        if audio.encoder == "fused":
            raise LsrayError(f"{cfg.bundle} already has fused audio: phoneme upgrades a Whisper-only bundle")
        missing = [name for name in PHONEME_FILES if not (Path(cfg.phoneme) / name).is_file()]
        if missing:
            raise MissingWeightError(Path(cfg.phoneme) / missing[0], "phoneme encoder file (PhonemeEncoder.save_pretrained)")
        audio = audio.model_copy(update={"encoder": "fused"})
    unet = overridden_unet_config(bundle_config.unet, cfg.unet_overrides)
    try:
        sampler = {**bundle_config.sampler.model_dump(), "anchors": trained_anchors(unet, cfg.anchors)}
        return BundleConfig.model_validate({**bundle_config.model_dump(), "unet": unet.model_dump(),
                                            "audio": audio.model_dump(), "sampler": sampler})
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise LsrayError(f"stage 2 from {cfg.bundle} (unet_overrides {cfg.unet_overrides}, phoneme "
                         f"{cfg.phoneme}): {problems}") from exc


def trained_anchors(unet: UNetConfig, anchors: Any) -> dict[str, int] | None:
    """The sampler's ``anchors`` section of a bundle trained with ``anchors`` (AnchorTraining):
    keyframes at the UNet's anchor stride, sequences as long as its temporal positions allow (at
    most 8: the 64-frame training sequences), overlapping by one; None when it was not trained
    to follow anchors (a bundle then samples every window on its own)."""
    stride = unet.temporal.anchor_stride
    if anchors is None or not stride:
        return None
    return {"stride": stride, "sequence": max(2, min(8, (unet.temporal.max_len - 1) // stride + 1)), "overlap": 1}


def upgraded_unet(unet, overrides: dict[str, Any]):
    """The bundle's UNet rebuilt with config ``overrides`` (the temporal upgrade, a wider audio
    input for fused features), by :func:`carried_over`. Overrides that remove an upgrade branch
    (e.g. ``anchor_stride: None``) drop its weights."""
    if not overrides:
        return unet
    return carried_over(unet, overridden_unet_config(unet.config, overrides))


def carried_over(unet, config: UNetConfig):
    """A UNet of ``config`` holding ``unet``'s weights by the checkpoint loader's rules (audio K/V
    zero-padded, positional tables extended, new branches at their zero init), so it computes
    what ``unet`` did until training moves it; weights of upgrade branches ``config`` lacks are
    dropped."""
    from lsray.models.latentsync import adapt_state_dict, is_upgrade_only
    from lsray.models.unet import LipSyncUNet

    new = LipSyncUNet(config)
    keys = new.state_dict().keys()
    state = {k: v for k, v in unet.state_dict().items() if k in keys or not is_upgrade_only(k)}
    new.load_state_dict(adapt_state_dict(new, state))
    return new


class UNetPasses(torch.nn.Module):
    """The UNet's full-sequence pass and (optionally) the anchor-window pass in ONE forward call,
    so DistributedDataParallel sees each parameter used once per backward."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, inp: torch.Tensor, t: torch.Tensor, audio: torch.Tensor, a0: int = 0, window: int = 0,
                positions: torch.Tensor | None = None):
        # positions: the frames' times (a keyframe sequence's); the window pass is for contiguous frames only
        eps = self.unet(inp, t, audio, positions=positions)  # b 4 f h w
        if not window:
            return eps, None
        if positions is not None:
            raise ValueError("the anchor-window pass needs contiguous frames (positions=None)")
        b, f = inp.shape[0], inp.shape[2]
        audio_w = audio.view(b, f, *audio.shape[1:])[:, a0 : a0 + window].flatten(0, 1)
        return eps, self.unet(inp[:, :, a0 : a0 + window], t, audio_w)


class Stage2Job:
    """Models, optimizers and the step of the stage-2 fine-tune on one worker."""

    def __init__(self, cfg: Stage2Config, device: torch.device, world: int = 1) -> None:
        from lsray.bundle import load_bundle
        from lsray.models.syncnet import SyncNet

        self.cfg, self.device = cfg, device
        bundle = load_bundle(cfg.bundle, device="cpu", precision="fp32")  # whatever the bundle samples in
        self.export_config = exported_config(bundle.config, cfg)
        self.unet = upgraded_unet(bundle.unet, cfg.unet_overrides).to(device).train()
        self.anchor_stride = anchor_stride(self.unet.config, cfg.anchors)  # None: no anchors training
        params = trainable_parameters(self.unet, cfg.trainable)
        if device.type == "cuda" and cfg.ray.gradient_checkpointing:
            enable_gradient_checkpointing(self.unet)
        self.model = data_parallel(UNetPasses(self.unet), world, find_unused_parameters=True)
        self.opt = torch.optim.AdamW(params, lr=cfg.lr)
        self.inputs = InpaintingInputs.from_bundle(bundle, cfg.data.image_size).to(device)
        sched = bundle.make_scheduler("ddim")
        self.alphas_cumprod = sched.alphas_cumprod.float()
        self.prediction_type = sched.config.prediction_type  # the objective the sampler expects
        self.num_timesteps = sched.config.num_train_timesteps
        self.syncnet = SyncNet.from_pretrained(cfg.syncnet, device) if cfg.syncnet else None
        self.perceptual = PerceptualLoss(cfg.perceptual_weights).to(device) if cfg.perceptual_weights else None
        self.box = mouth_box(self.inputs.mask.cpu().numpy())
        self.disc = self.d_model = self.d_opt = None
        if cfg.discriminator is not None:
            self.disc = MultiScaleDiscriminator(cfg.discriminator).to(device).train()
            self.d_model = data_parallel(self.disc, world, find_unused_parameters=True)
            self.d_opt = torch.optim.AdamW(self.disc.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999))

    # -- checkpoint state (the discriminator is here, never in the bundle) --------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"unet": self.unet.state_dict(), "opt": self.opt.state_dict()}
        if self.disc is not None:
            state["disc"], state["d_opt"] = self.disc.state_dict(), self.d_opt.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.unet.load_state_dict(state["unet"])
        self.opt.load_state_dict(state["opt"])
        if self.disc is not None and "disc" in state:
            self.disc.load_state_dict(state["disc"])
            self.d_opt.load_state_dict(state["d_opt"])

    def export(self, out: str) -> None:
        from lsray.train.export import save_inference_bundle

        save_inference_bundle(out, self.unet, self.cfg.bundle, self.export_config, phoneme_dir=self.cfg.phoneme)

    # -- the step ----------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor], step: int, noise: torch.Tensor | None = None,
               t: torch.Tensor | None = None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Every generator-side loss term and their weighted ``total`` (no optimizer step)."""
        cfg = self.cfg
        lb = self.inputs.prepare(batch, self.device)
        b, _, f = lb.latents.shape[:3]
        if noise is None:
            noise = sample_noise(lb.latents, cfg.data.shared_noise, generator)
        if t is None:
            t = torch.randint(0, self.num_timesteps, (b,), generator=generator)
        t = t.to(self.device)
        positions = pins = None
        keyframes = False
        if cfg.anchors is not None:  # drawn after noise and t: with nothing pinned, the same step as without
            layout = anchor_layout(lb, cfg.anchors, self.anchor_stride, self.unet.config.temporal.max_len, generator)
            lb, positions, pins, keyframes = layout.batch, layout.positions, layout.pins, layout.keyframes
            noise = layout.select(noise)  # b 4 f' h w
            f = lb.latents.shape[2]
        noisy = add_noise(lb.latents, noise, self.alphas_cumprod, t)
        noisy = pin_latents(noisy, lb.latents, pins)  # pinned frames: clean latents, whatever t
        inp = torch.cat([noisy, lb.side], dim=1)  # b 13 f h w
        stride = self.unet.config.temporal.anchor_stride
        a0 = window = 0
        if cfg.anchor_weight > 0 and cfg.anchor_window and stride and f > cfg.anchor_window and not keyframes:
            n_starts = (f - cfg.anchor_window) // stride + 1
            a0, window = stride * (step % n_starts), cfg.anchor_window  # anchor-aligned, cycling
        pred, pred_w = self.model(inp, t, lb.audio, a0, window, positions)  # b 4 f h w
        target = prediction_target(lb.latents, noise, self.alphas_cumprod, t, self.prediction_type)
        free = None if pins is None else ~pins  # (f,) the frames the UNet decides
        if cfg.mouth_weight > 0 or free is not None:  # weighted mean, same scale as the plain MSE
            weight = 1.0 + cfg.mouth_weight * lb.regenerated  # b 1 f h w
            if free is not None:  # pinned frames: the sampler overwrites them, nothing to learn
                weight = weight * free.to(weight.dtype).view(1, 1, -1, 1, 1)
            weight = weight.expand_as(pred)
            out: dict[str, torch.Tensor] = {"noise": (weight * (pred - target) ** 2).sum() / weight.sum()}
        else:
            out = {"noise": F.mse_loss(pred, target)}
        total = cfg.noise_weight * out["noise"]

        x0 = predicted_x0(pred, noisy, self.alphas_cumprod, t, self.prediction_type)  # b 4 f h w
        x0 = pin_latents(x0, lb.latents, pins)  # what the sampler keeps at pinned frames
        if cfg.smooth_weight > 0:
            out["smooth"] = temporal_smoothness(x0, lb.latents, lb.regenerated)
            total = total + cfg.smooth_weight * out["smooth"]
        if pred_w is not None:
            full_w = pred[:, :, a0 : a0 + window].detach()
            if free is not None:  # compared where both passes decide (a0 is anchor-aligned: same pins)
                pred_w, full_w = pred_w[:, :, free[a0 : a0 + window]], full_w[:, :, free[a0 : a0 + window]]
            if pred_w.shape[2]:
                out["anchor"] = F.mse_loss(pred_w, full_w)
                total = total + cfg.anchor_weight * out["anchor"]

        need_pixels = cfg.recon_weight > 0 or self.syncnet or self.perceptual or self.disc is not None
        if need_pixels:
            decoded = self.inputs.codec.decode_video(x0)  # b f 3 S S
            if cfg.recon_weight > 0:
                out["recon"] = F.l1_loss(decoded, lb.frames)
                total = total + cfg.recon_weight * out["recon"]
            if self.syncnet is not None and cfg.sync_weight > 0 and not keyframes:  # SyncNet reads consecutive frames
                n = self.syncnet.config.num_frames
                prob = self.syncnet(decoded[:, :n], batch["mel"].to(self.device))
                out["sync"] = F.binary_cross_entropy(prob, torch.ones_like(prob))
                total = total + cfg.sync_weight * out["sync"]
            if self.perceptual is not None and cfg.perceptual_weight > 0:
                s = decoded.shape[-1]
                out["perceptual"] = self.perceptual(decoded.flatten(0, 1)[:, :, s // 2 :], lb.frames.flatten(0, 1)[:, :, s // 2 :])
                total = total + cfg.perceptual_weight * out["perceptual"]
            if self.disc is not None:
                size = self.disc.config.crop_size
                fake = mouth_crops(decoded.flatten(0, 1), self.box, size)  # (b f) 3 96 96
                real = mouth_crops(lb.frames.flatten(0, 1), self.box, size)
                self.disc.requires_grad_(False)
                d_fake, d_real = self.disc(fake), self.disc(real)  # not the DDP wrapper: D gets no grads here
                self.disc.requires_grad_(True)
                w_adv = adversarial_weight(step, cfg.adv_weight, cfg.adv_warmup_steps)
                out["adv"] = generator_adv_loss(d_fake, self.disc.config.loss)
                out["fm"] = feature_matching_loss(d_real, d_fake)
                total = total + w_adv * out["adv"] + (w_adv / max(cfg.adv_weight, 1e-12)) * cfg.feature_matching_weight * out["fm"]
                out["adv_weight"] = torch.tensor(w_adv)
                out["_crops"] = torch.stack([real, fake.detach()])
        out["total"] = total
        return out

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        cfg = self.cfg
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and cfg.ray.mixed_precision)
        with autocast:
            out = self.losses(batch, step)
        lr = warmup_cosine_lr(step, cfg.lr, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
        set_lr(self.opt, lr)
        clipped_step(self.opt, out["total"], cfg.max_grad_norm)
        out["lr"] = torch.tensor(lr)
        crops = out.pop("_crops", None)
        if crops is not None:  # the discriminator's own step, on detached generated crops
            real, fake = crops
            with autocast:
                # one forward over [real; fake]: DDP sees each parameter used once per backward
                both = self.d_model(torch.cat([real, fake]))
                n = real.shape[0]
                d_real = [([x[:n] for x in feats], logits[:n]) for feats, logits in both]
                d_fake = [([x[n:] for x in feats], logits[n:]) for feats, logits in both]
                d_loss = discriminator_loss(d_real, d_fake, self.disc.config.loss)
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_opt.step()
            out["d_loss"] = d_loss.detach()
        return {k: float(v.detach()) for k, v in out.items()}
