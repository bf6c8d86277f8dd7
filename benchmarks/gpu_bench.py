"""Sampling speed of one 16-frame window: samplers, precision and windows per UNet call.

On a CUDA machine: LatentSync's full-size stage-2 UNet (block widths 320/640/1280/1280, random
weights: speed does not depend on them) at 256 and 512 crops, for DDIM 20 + CFG (upstream's
default), DPM-Solver++ 10 + CFG, DDIM 20 + CFG with DeepCache (full UNet one step in 3), LCM 4
and LCM 1, in fp32 and fp16, with 1 / 4 / 8 windows per UNet call: frames/s and peak GPU memory;
and ``torch.compile`` of the UNet (``--compile`` in lsray) against eager for DDIM 20 + CFG and LCM 1
at one window per call (``compile_s``: the first call's extra seconds, what a worker pays once).

Without CUDA it runs the same code on a small config on the CPU (fp32 and bf16), says that no
GPU was measured, and finishes in a minute: the CPU table of the README (speed ratios between
samplers are the same on any device: they are counts of UNet calls of known batch size) and a
test run that keeps this script from rotting.

    python benchmarks/gpu_bench.py [--out benchmarks/results/gpu_bench.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

FRAMES = 16
#: (name, sampler, steps, guidance, deep_cache)
SAMPLERS = (
    ("ddim20+cfg", "ddim", 20, 1.5, 1),
    ("dpmsolver10+cfg", "dpmsolver", 10, 1.5, 1),
    ("ddim20+cfg+deepcache3", "ddim", 20, 1.5, 3),
    ("lcm4", "lcm", 4, 1.5, 1),
    ("lcm1", "lcm", 1, 1.5, 1),
)
#: A small LatentSync-topology UNet for CPU runs (same blocks, narrower, fewer heads).
SMALL = {"block_out_channels": (32, 64, 64, 64), "norm_num_groups": 16, "attention_head_dim": 4,
         "cross_attention_dim": 384, "sample_size": 16}


def build_unet(full: bool, device: torch.device, dtype: torch.dtype, lcm: bool):
    from lsray.models.config import UNetConfig
    from lsray.models.unet import LipSyncUNet

    cfg = UNetConfig(**({} if full else SMALL), time_cond_proj_dim=256 if lcm else None)
    torch.manual_seed(0)
    return LipSyncUNet(cfg).to(device=device, dtype=dtype).eval()


def time_window(unet, sampler: str, steps: int, guidance: float, deep_cache: int, size: int, windows: int,
                device: torch.device, repeats: int) -> dict:
    from lsray.sampling.window import WindowConditioning, denoise_window

    h = size // 8
    g = torch.Generator().manual_seed(0)
    cond = WindowConditioning(
        mask=torch.ones(windows, 1, FRAMES, h, h, device=device),
        masked=torch.randn(windows, 4, FRAMES, h, h, generator=g).to(device),
        ref=torch.randn(windows, 4, FRAMES, h, h, generator=g).to(device),
        audio=torch.randn(windows * FRAMES, 50, 384, generator=g).to(device),
    )
    noise = torch.randn(windows, 4, FRAMES, h, h, generator=g).to(device)

    def once() -> None:
        denoise_window(unet, noise.clone(), cond, sampler=sampler, steps=steps, guidance=guidance,
                       deep_cache=deep_cache, lcm_grid=50 if sampler == "lcm" else None)

    once()  # warm-up (allocator, kernels, lazy inits)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(repeats):
        once()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / repeats
    out = {"seconds_per_call": seconds, "frames_per_s": windows * FRAMES / seconds}
    if device.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run(quick: bool) -> dict:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sizes = (256, 512) if cuda else ((64,) if quick else (128,))
    precisions = ("fp32", "fp16") if cuda else ("fp32", "bf16")
    windows_list = (1, 4, 8) if cuda else (1, 4)
    repeats = 3 if cuda else 1
    samplers = SAMPLERS if not quick else (SAMPLERS[0], SAMPLERS[3], SAMPLERS[4])
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    rows = []
    for size in sizes:
        for precision in precisions if not quick else precisions[:1]:
            for lcm in (False, True):
                unet = build_unet(cuda, device, dtypes[precision], lcm)
                for name, sampler, steps, guidance, deep_cache in samplers:
                    if (sampler == "lcm") != lcm:
                        continue
                    for windows in windows_list if not quick else (1,):
                        r = time_window(unet, sampler, steps, guidance, deep_cache, size, windows, device, repeats)
                        rows.append({"size": size, "precision": precision, "sampler": name, "windows_per_call": windows, **r})
                        print(f"{size:4d} {precision:5s} {name:24s} x{windows}: {r['frames_per_s']:8.2f} frames/s"
                              + (f", {r['peak_gpu_mib']:.0f} MiB" if "peak_gpu_mib" in r else ""), file=sys.stderr)
                if not quick:
                    rows += compiled_rows(unet, samplers, lcm, size, precision, device, repeats)
                del unet
    return {
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "measured": "CUDA, full-size stage-2 UNet" if cuda else
                    "no GPU measured: the small LatentSync-topology UNet on the CPU (sampler ratios only)",
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "rows": rows, "speedups_vs_ddim20_cfg": speedups(rows),
    }


def compiled_rows(unet, samplers, lcm: bool, size: int, precision: str, device: torch.device,
                  repeats: int) -> list[dict]:
    """DDIM 20 + CFG (or LCM 1 on a student) with the UNet under torch.compile, one window per
    call; ``compile_s`` is the first call's time over a warm eager call's."""
    name, sampler, steps, guidance, deep_cache = next(s for s in samplers if s[0] == ("lcm1" if lcm else "ddim20+cfg"))
    torch._dynamo.reset()
    unet.compile()
    t0 = time.perf_counter()
    r = time_window(unet, sampler, steps, guidance, deep_cache, size, 1, device, repeats)
    first = time.perf_counter() - t0 - repeats * r["seconds_per_call"]  # the warm-up call, compile included
    r["compile_s"] = first - r["seconds_per_call"]
    print(f"{size:4d} {precision:5s} {name + '+compile':24s} x1: {r['frames_per_s']:8.2f} frames/s, "
          f"compiled in {r['compile_s']:.0f} s", file=sys.stderr)
    return [{"size": size, "precision": precision, "sampler": name + "+compile", "windows_per_call": 1, **r}]


def speedups(rows: list[dict]) -> dict:
    """Per (size, precision, windows): each sampler's frames/s over DDIM 20 + CFG's."""
    base = {(r["size"], r["precision"], r["windows_per_call"]): r["frames_per_s"] for r in rows if r["sampler"] == "ddim20+cfg"}
    out: dict[str, float] = {}
    for r in rows:
        key = (r["size"], r["precision"], r["windows_per_call"])
        if key in base and r["sampler"] != "ddim20+cfg":
            out[f"{r['size']}/{r['precision']}/x{r['windows_per_call']}/{r['sampler']}"] = r["frames_per_s"] / base[key]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--quick", action="store_true", help="fewest cases (the test's run)")
    args = p.parse_args(argv)
    result = run(args.quick)
    if result["gpu"] is None:
        print("no CUDA device: measured no GPU (small config on the CPU)", file=sys.stderr)
    if args.out:
        from lsray.storage import write_json

        write_json(str(args.out), result)  # atomic, folders made
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
