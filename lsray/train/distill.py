"""Latent consistency distillation (upgrade 4): a 20-step DDIM + guidance teacher -> 1-4 step student.

One step (:meth:`DistillJob.step`), as diffusers' ``train_lcm_distill_sd`` on LatentSync's inputs:
 1. clean latents + conditioning (frozen VAE); pick a solver index n: t = grid[n], s = t - k, with
    the skipping-step grid ``grid = (1..N) * 1000/N - 1``. Default N = 20 -> k = 50: the teacher's
    own 20-step DDIM grid, so a converged student reproduces the teacher's 20-step chain (N = 50,
    k = 20 is diffusers' recipe and LCMScheduler's default grid; it needs more steps to propagate
    the boundary condition, measured slower on short runs);
 2. a guidance scale w ~ U[w_min, w_max] per clip, embedded (:func:`lsray.sampling.guidance_embedding`)
    as the student's ``timestep_cond``;
 3. student: f(x_t, t, w) = c_skip(t) x_t + c_out(t) x0_student (LCMScheduler's boundary
    conditions: sigma_data 0.5, timestep scaling 10);
 4. teacher (frozen): classifier-free guidance with zeroed audio as the unconditional branch
    (``eps_u + w (eps_c - eps_u)``), one DDIM step t -> s;
 5. EMA target (frozen copy of the student): f(x_s, s, w), no gradient;
 6. pseudo-Huber loss between 3 and 5; optimizer step; EMA update of the target.
With ``anchors`` (:func:`lsray.train.latents.anchor_layout`, as in stage 2) each step draws pinned
keyframes or a keyframe sequence: student, teacher and EMA target all see the clean latents at the
pinned frames (x_t and x_s alike) and the frame times, and the loss leaves pinned frames out, so a
1-4 step student follows anchors as the teacher does.
The output bundle's sampler is ``lcm`` with 4 steps; :func:`lsray.sampling.denoise_window`
(``sampler="lcm"``) samples it in 1, 2 or 4 steps.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from lsray.models.losses import pseudo_huber
from lsray.sampling.guidance import guidance_embedding
from lsray.sampling.pins import pin_latents
from lsray.train.config import DistillConfig
from lsray.train.latents import (
    InpaintingInputs,
    add_noise,
    anchor_layout,
    anchor_stride,
    enable_gradient_checkpointing,
    predicted_x0,
    sample_noise,
    trainable_parameters,
)
from lsray.train.optim import clipped_step, data_parallel

SIGMA_DATA = 0.5
TIMESTEP_SCALING = 10.0  # LCMScheduler's default


def boundary_scalings(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LCM's c_skip, c_out at timesteps t (B,) -> each (B, 1, 1, 1, 1); c_skip(0) = 1, c_out(0) = 0."""
    st = t.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (st**2 + SIGMA_DATA**2)
    c_out = st / (st**2 + SIGMA_DATA**2) ** 0.5
    return c_skip.view(-1, 1, 1, 1, 1), c_out.view(-1, 1, 1, 1, 1)


def student_from_teacher(teacher, time_cond_proj_dim: int):
    """The teacher's UNet with a (zero-initialised) guidance-scale embedding input."""
    from lsray.models.unet import LipSyncUNet

    cfg = teacher.config.model_copy(update={"time_cond_proj_dim": time_cond_proj_dim})
    student = LipSyncUNet(type(cfg).model_validate(cfg.model_dump()))
    state = {k: v for k, v in teacher.state_dict().items() if not k.startswith("time_embedding.cond_proj")}
    missing, unexpected = student.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("time_embedding.cond_proj") for k in missing):
        raise ValueError(f"teacher and student differ beyond the guidance embedding: {missing} {unexpected}")
    return student


class DistillJob:
    def __init__(self, cfg: DistillConfig, device: torch.device, world: int = 1) -> None:
        from lsray.bundle import load_bundle

        self.cfg, self.device = cfg, device
        bundle = load_bundle(cfg.teacher, device="cpu", precision="fp32")  # whatever the bundle samples in
        self.bundle_config = bundle.config
        self.teacher = bundle.unet.to(device).eval().requires_grad_(False)
        self.anchor_stride = anchor_stride(self.teacher.config, cfg.anchors)  # None: no anchors training
        self.student = student_from_teacher(bundle.unet, cfg.time_cond_proj_dim).to(device).train()
        params = trainable_parameters(self.student, cfg.trainable)
        if device.type == "cuda" and cfg.ray.gradient_checkpointing:
            enable_gradient_checkpointing(self.student)
        self.target = copy.deepcopy(self.student).eval().requires_grad_(False)
        self.model = data_parallel(self.student, world, find_unused_parameters=True)
        self.opt = torch.optim.AdamW(params, lr=cfg.lr)
        self.inputs = InpaintingInputs.from_bundle(bundle, cfg.data.image_size).to(device)
        sched = bundle.make_scheduler("ddim")
        self.alphas_cumprod = sched.alphas_cumprod.float().to(device)
        self.kind = sched.config.prediction_type  # the teacher's objective; the student keeps it
        total = sched.config.num_train_timesteps
        self.k = total // cfg.num_ddim_timesteps
        self.grid = (torch.arange(1, cfg.num_ddim_timesteps + 1) * self.k - 1).to(device)  # [k-1, ..., 999]

    def state_dict(self) -> dict[str, Any]:
        return {"student": self.student.state_dict(), "target": self.target.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["opt"])

    def export(self, out: str) -> None:
        from lsray.bundle.config import TEACHER_UNET_FILE, LCMStudentConfig
        from lsray.train.export import save_inference_bundle

        cfg = self.cfg
        base = self.bundle_config
        # Everything inference needs to sample the way the student was distilled: its step count,
        # the skipping grid its timesteps come from, the guidance range it saw, and the teacher
        # (so `--sampler ddim` still works on this bundle).
        config = base.model_copy(update={
            "unet": self.student.config,
            "lcm": LCMStudentConfig(time_cond_proj_dim=cfg.time_cond_proj_dim, num_inference_steps=cfg.student_steps,
                                    original_inference_steps=cfg.num_ddim_timesteps,
                                    guidance_range=(cfg.w_min, cfg.w_max), teacher_steps=cfg.teacher_steps,
                                    teacher_guidance_scale=cfg.teacher_guidance, teacher_unet=TEACHER_UNET_FILE),
            "sampler": base.sampler.model_copy(update={
                "method": "lcm", "num_inference_steps": cfg.student_steps, "guidance_scale": cfg.teacher_guidance,
                # the student follows anchors only if it was distilled with them
                "anchors": base.sampler.anchors if cfg.anchors is not None else None}),
        })
        save_inference_bundle(out, self.target, cfg.teacher, config,  # the EMA target, as LCM releases it
                              extra_unets={TEACHER_UNET_FILE: self.teacher})

    def losses(self, batch: dict[str, torch.Tensor], step: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        cfg, ac = self.cfg, self.alphas_cumprod
        lb = self.inputs.prepare(batch, self.device)
        b = lb.latents.shape[0]
        # 1. solver interval [s, t] on the skipping-step grid
        n = torch.randint(0, len(self.grid), (b,), generator=generator).to(self.device)
        t = self.grid[n]
        s = (t - self.k).clamp(min=0)
        noise = sample_noise(lb.latents, cfg.data.shared_noise, generator)
        # 2. guidance scale as an input
        w = cfg.w_min + (cfg.w_max - cfg.w_min) * torch.rand((b,), generator=generator)
        w_emb = guidance_embedding(w, cfg.time_cond_proj_dim).to(self.device)  # b d
        w = w.to(self.device).view(-1, 1, 1, 1, 1)
        positions = pins = None
        if cfg.anchors is not None:  # drawn last: with nothing pinned, the same step as without
            layout = anchor_layout(lb, cfg.anchors, self.anchor_stride, self.teacher.config.temporal.max_len, generator)
            lb, positions, pins = layout.batch, layout.positions, layout.pins
            noise = layout.select(noise)  # b 4 f' h w
        x_t = add_noise(lb.latents, noise, ac, t)
        x_t = pin_latents(x_t, lb.latents, pins)  # pinned frames: clean latents, whatever t
        # 3. student consistency function at t
        out_t = self.model(torch.cat([x_t, lb.side], 1), t, lb.audio, timestep_cond=w_emb, positions=positions)
        c_skip_t, c_out_t = boundary_scalings(t)
        pred = c_skip_t * x_t + c_out_t * predicted_x0(out_t, x_t, ac, t, self.kind)
        with torch.no_grad():
            # 4. teacher: CFG with zeroed audio, one DDIM step t -> s
            inp = torch.cat([x_t, lb.side], 1)
            eps_c = self.teacher(inp, t, lb.audio, positions=positions)
            eps_u = self.teacher(inp, t, torch.zeros_like(lb.audio), positions=positions)
            x0_c, x0_u = (predicted_x0(e, x_t, ac, t, self.kind) for e in (eps_c, eps_u))
            x0_g = x0_u + w * (x0_c - x0_u)  # CFG: x0 is affine in eps at fixed x_t, so this is eps-space CFG
            a_t = ac[t].view(-1, 1, 1, 1, 1)
            eps_g = (x_t - a_t.sqrt() * x0_g) / (1 - a_t).sqrt()
            a_s = ac[s].view(-1, 1, 1, 1, 1)
            x_s = a_s.sqrt() * x0_g + (1 - a_s).sqrt() * eps_g
            x_s = pin_latents(x_s, lb.latents, pins)  # still clean at s
            # 5. EMA target at s
            out_s = self.target(torch.cat([x_s, lb.side], 1), s, lb.audio, timestep_cond=w_emb, positions=positions)
            c_skip_s, c_out_s = boundary_scalings(s)
            target = c_skip_s * x_s + c_out_s * predicted_x0(out_s, x_s, ac, s, self.kind)
        if pins is not None:  # 6. only the frames the student decides (the sampler keeps pinned ones clean)
            pred, target = pred[:, :, ~pins], target[:, :, ~pins]
        loss = pseudo_huber(pred, target, cfg.huber_c)
        return {"total": loss, "huber": loss.detach()}

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        cfg = self.cfg
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and cfg.ray.mixed_precision):
            out = self.losses(batch, step)
        clipped_step(self.opt, out["total"], cfg.max_grad_norm)
        with torch.no_grad():  # 6. EMA target
            for p_t, p_s in zip(self.target.parameters(), self.student.parameters()):
                p_t.lerp_(p_s, 1 - cfg.ema_decay)
        return {k: float(v.detach()) for k, v in out.items()}
