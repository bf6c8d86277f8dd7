"""Training-free fast samplers against 20-step DDIM on the same weights: speed, and how far the mouths move.

    python benchmarks/fast_samplers.py [--clips 4] [--out benchmarks/results/fast_samplers.json]

The shipped demo bundle (undistilled DDIM weights, guidance as the bundle ships it) dubs held-out
synthetic clips (``build_demo_catalog(seed=1)``, faces, sentences and voices the recipe never saw)
with each sampler in turn, in-process, same seeds:

- DDIM 20 + CFG (upstream LatentSync's default), the reference;
- DPM-Solver++ 10 + CFG (diffusers' ``DPMSolverMultistepScheduler``);
- DDIM 20 + CFG with DeepCache (the whole UNet one step in 3, the others reuse its deep features);
- DDIM 4 + CFG, what the demo bundle ships with, for scale.

Reported per sampler: sampling seconds per frame (UNet + VAE, this machine), the UNet's alone, and
the speed-ups over DDIM 20; mouth PSNR against the oracle; mouth PSNR against DDIM 20's own output (how far the
sampler moves the result; higher = closer).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: (name, DubOptions fields); the first is the reference.
SAMPLERS = (
    ("DDIM 20 + CFG", {"sampler": "ddim", "steps": 20}),
    ("DPM-Solver++ 10 + CFG", {"sampler": "dpmsolver", "steps": 10}),
    ("DDIM 20 + CFG, DeepCache 3", {"sampler": "ddim", "steps": 20, "deep_cache": 3}),
    ("DDIM 4 + CFG (the demo bundle's)", {"sampler": "ddim", "steps": 4}),
)


def run(bundle: str, clips: int) -> dict[str, Any]:
    import numpy as np

    from lsray.bundle import load_bundle
    from lsray.demo.catalog import build_demo_catalog
    from lsray.eval.clip import load_frames
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec

    flow = ClipFlow(load_bundle(bundle), encode_preset="veryfast")
    with tempfile.TemporaryDirectory(prefix="lsray-fast-samplers-") as tmp:
        root = Path(tmp)
        _, demo = build_demo_catalog(root / "clips", clips=clips, seed=1, photo=False)
        outputs: dict[str, dict[str, np.ndarray]] = {name: {} for name, _ in SAMPLERS}
        seconds = {name: 0.0 for name, _ in SAMPLERS}  # UNet + VAE
        unet = {name: 0.0 for name, _ in SAMPLERS}
        frames = 0
        for clip in demo:
            frames += clip.frames
            for name, options in SAMPLERS:
                out = root / "out" / name.replace(" ", "_").replace("/", "") / f"{clip.clip_id}.mp4"
                r = run_clip(flow, ClipSpec(clip.clip_id, clip.video, clip.audio, str(out), DubOptions(seed=0, **options)))
                assert r.status == "done", r.error
                seconds[name] += r.timings.get("unet", 0.0) + r.timings.get("vae", 0.0)
                unet[name] += r.timings.get("unet", 0.0)
                outputs[name][clip.clip_id] = load_frames(str(out))
                print(f"{clip.clip_id} {name}: {r.timings.get('unet', 0.0):.1f} s UNet", file=sys.stderr)
        reference = SAMPLERS[0][0]
        scores = mouth_scores(demo, outputs, reference)
        rows = []
        for name, options in SAMPLERS:
            vs_oracle, vs_ref = scores[name]
            rows.append({
                "sampler": name, "options": options, "seconds_per_frame": seconds[name] / frames,
                "speedup_vs_ddim20": seconds[reference] / seconds[name],
                "unet_seconds_per_frame": unet[name] / frames, "unet_speedup_vs_ddim20": unet[reference] / unet[name],
                "mouth_psnr_vs_oracle": vs_oracle, "mouth_psnr_vs_ddim20": vs_ref,
            })
    return {"bundle": bundle, "clips": [c.clip_id for c in demo], "frames": frames, "rows": rows}


def mouth_scores(demo, outputs: dict[str, dict[str, Any]], reference: str) -> dict[str, tuple[float, float | None]]:
    """Per variant of ``outputs`` (variant -> clip id -> decoded frames): its mean mouth PSNR
    against the oracles, and against the ``reference`` variant's own outputs (None for that one)."""
    import numpy as np

    from lsray.eval import video as vm
    from lsray.eval.clip import load_frames

    oracles = {clip.clip_id: load_frames(clip.oracle) for clip in demo}
    scores = {}
    for name, frames in outputs.items():
        vs_oracle, vs_ref = [], []
        for clip in demo:
            boxes = [g.mouth_box for g in clip.geometry()]
            vs_oracle.append(vm.mouth_psnr(frames[clip.clip_id], oracles[clip.clip_id], boxes))
            if name != reference:
                vs_ref.append(vm.mouth_psnr(frames[clip.clip_id], outputs[reference][clip.clip_id], boxes))
        scores[name] = (float(np.mean(vs_oracle)), float(np.mean(vs_ref)) if vs_ref else None)
    return scores


def main(argv: list[str] | None = None) -> int:
    from lsray.preload import torch_first

    torch_first()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=str(REPO / "lsray" / "demo" / "bundle"))
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    result = run(args.bundle, args.clips)
    print("| sampler | s / frame (UNet + VAE) | speed-up | UNet speed-up | mouth PSNR vs oracle | mouth PSNR vs DDIM 20 |")
    print("|---|---|---|---|---|---|")
    for r in result["rows"]:
        ref = "-" if r["mouth_psnr_vs_ddim20"] is None else f"{r['mouth_psnr_vs_ddim20']:.2f}"
        print(f"| {r['sampler']} | {r['seconds_per_frame']:.3f} | {r['speedup_vs_ddim20']:.2f}x | "
              f"{r['unet_speedup_vs_ddim20']:.2f}x | "
              f"{r['mouth_psnr_vs_oracle']:.2f} | {ref} |")
    if args.out:
        from lsray.storage import write_json

        write_json(str(args.out), result)  # atomic, folders made
    return 0


if __name__ == "__main__":
    sys.exit(main())
