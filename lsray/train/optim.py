"""What every training job does the same way: wrap its module for data parallelism, and take one
optimiser step with the gradients clipped (each job's ``step`` computes its own losses)."""

from __future__ import annotations

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
