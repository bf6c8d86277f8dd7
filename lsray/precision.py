"""Inference precision: one name per choice, one place it becomes a torch dtype.

``auto`` is half precision (fp16) on CUDA, where tensor cores make it ~2x faster and upstream
LatentSync runs its UNet that way, and fp32 on the CPU, where fp16 kernels are slow; bf16 is
available on both (on a CPU with AMX it halves the sample stage's time: README, Benchmarks,
``precision_bench``). It applies to the UNet (and an LCM bundle's teacher) and to the VAE, except
that in fp16 a VAE whose config asks to be upcast stays fp32 (SD's VAE overflows in fp16; bf16
has fp32's range). The audio encoders stay fp32: they cost ~1% of a window and their tokens feed
every step. Latents and the scheduler's arithmetic stay fp32 (``lsray.sampling.window``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # configs name a precision without importing torch
    import torch

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def torch_dtype(precision: Precision, device: "torch.device | str") -> "torch.dtype":
    """The dtype ``precision`` means on ``device``."""
    import torch

    if precision == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    try:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}: one of {', '.join(PRECISIONS)}") from None
