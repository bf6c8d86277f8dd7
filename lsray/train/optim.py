"""What every training job does the same way: wrap its module for data parallelism, set the
step's learning rate, and take one optimiser step with the gradients clipped (each job's ``step``
computes its own losses)."""

from __future__ import annotations

import math

import torch


def data_parallel(module: torch.nn.Module, world: int, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``module`` itself on one worker, else wrapped in DistributedDataParallel. A job whose
    forward skips some parameters on some steps (a mask embedding, an optional pass) needs
    ``find_unused_parameters``, which costs a graph traversal per backward."""
    if world <= 1:
        return module
    return torch.nn.parallel.DistributedDataParallel(module, find_unused_parameters=find_unused_parameters)


def clipped_step(opt: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float) -> float:
    """Backward ``loss`` and step ``opt`` with the gradient norm of its parameters (the trainable
    ones: jobs give the optimiser only those) clipped to ``max_grad_norm``; returns the norm
    before clipping."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in opt.param_groups for p in group["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
    return float(norm)


def warmup_cosine_lr(step: int, lr: float, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """The learning rate at 0-based ``step`` of ``steps``: a linear warm-up to ``lr`` over
    ``warmup_steps``, then a cosine decay towards ``min_lr_ratio * lr``, reached at step ``steps``
    (``min_lr_ratio`` 1.0: constant after the warm-up). A function of the step alone, so a
    resumed run continues the same schedule."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Every parameter group of ``opt`` steps at ``lr`` from now on."""
    for group in opt.param_groups:
        group["lr"] = lr
