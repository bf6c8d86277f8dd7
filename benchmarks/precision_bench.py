"""fp32 against bf16 on the CPU: the sample stage's speed per part, and how far bf16 moves the mouths.

    python -m benchmarks.precision_bench [--clips 10] [--out benchmarks/results/precision_cpu.json]

The shipped demo bundle dubs held-out synthetic clips (``build_demo_catalog(seed=2)``: faces,
sentences and voices the recipe never saw, and not the report's seeds) in-process with its own
sampler (DDIM 4 + CFG, detail transfer), once per precision, same seeds. Reported per precision:
the sample stage's milliseconds per frame split into VAE (encode of the masked and reference
frames, the decodes) and UNet; mouth PSNR against the oracle; and, for bf16, mouth PSNR against
fp32's own output (how far bf16 moves the result; higher = closer).

It also gives the bound this sets on a one-step consistency student (issue 21's ">= 5x the
teacher's sampling speed"): the student pays the same VAE work and one UNet pass without guidance,
so at best it runs in ``vae + unet / passes`` where ``passes`` is the teacher's UNet passes per
frame (steps x 2 with guidance). Speed depends on the CPU: bf16 is fast where the CPU has AMX
(``amx_bf16`` in /proc/cpuinfo, recorded in the result), and emulated, slower, where it does not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16")  # the first is the reference


def cpu_flags() -> list[str]:
    """The CPU features bf16's speed depends on (empty where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f"))


def run(bundle: str, clips: int) -> dict[str, Any]:
    import numpy as np

    from benchmarks.fast_samplers import mouth_scores
    from lsray.bundle import load_bundle
    from lsray.demo.catalog import build_demo_catalog
    from lsray.eval.clip import load_frames
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec

    with tempfile.TemporaryDirectory(prefix="lsray-precision-") as tmp:
        root = Path(tmp)
        _, demo = build_demo_catalog(root / "clips", clips=clips, seed=2, photo=False)
        outputs: dict[str, dict[str, np.ndarray]] = {p: {} for p in PRECISIONS}
        parts = {p: {"vae": 0.0, "unet": 0.0, "anchors": 0.0} for p in PRECISIONS}
        passes = None  # the teacher's UNet passes per frame (steps x 2 with guidance)
        frames = sum(c.frames for c in demo)
        for precision in PRECISIONS:
            flow = ClipFlow(load_bundle(bundle, precision=precision), encode_preset="veryfast")
            for clip in demo:
                out = root / "out" / precision / f"{clip.clip_id}.mp4"
                r = run_clip(flow, ClipSpec(clip.clip_id, clip.video, clip.audio, str(out), DubOptions(seed=0)))
                assert r.status == "done", r.error
                for part in parts[precision]:
                    parts[precision][part] += r.timings.get(part, 0.0)
                if r.sampling is not None:
                    passes = r.sampling["steps"] * (2 if r.sampling["guidance"] > 1 else 1)
                outputs[precision][clip.clip_id] = load_frames(str(out))
                print(f"{clip.clip_id} {precision}: {r.timings.get('unet', 0.0):.1f} s UNet", file=sys.stderr)
        scores = mouth_scores(demo, outputs, PRECISIONS[0])
        rows = []
        for precision in PRECISIONS:
            vs_oracle, vs_ref = scores[precision]
            ms = {part: 1000 * s / frames for part, s in parts[precision].items()}
            total = sum(ms.values())
            student = ms["vae"] + ms["anchors"] / passes + ms["unet"] / passes  # one pass, same VAE work
            rows.append({
                "precision": precision, "ms_per_frame": ms, "sample_ms_per_frame": total,
                "speedup_vs_fp32": None, "mouth_psnr_vs_oracle": vs_oracle, "mouth_psnr_vs_fp32": vs_ref,
                "one_step_student_bound": {"ms_per_frame": student, "speedup_vs_teacher": total / student},
            })
        for r in rows:
            r["speedup_vs_fp32"] = rows[0]["sample_ms_per_frame"] / r["sample_ms_per_frame"]
    return {"bundle": bundle, "cpu_flags": cpu_flags(), "clips": [c.clip_id for c in demo], "frames": frames,
            "teacher_passes_per_frame": passes, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    from lsray.preload import torch_first

    torch_first()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=str(REPO / "lsray" / "demo" / "bundle"))
    p.add_argument("--clips", type=int, default=10)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    result = run(args.bundle, args.clips)
    print(f"CPU: {' '.join(result['cpu_flags']) or 'flags unknown'}; {result['frames']} frames")
    print("| precision | VAE ms / frame | UNet ms / frame | sample ms / frame | speed-up | mouth PSNR vs oracle | "
          "vs fp32's output | one-step student at best |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        ref = "-" if r["mouth_psnr_vs_fp32"] is None else f"{r['mouth_psnr_vs_fp32']:.2f}"
        b = r["one_step_student_bound"]
        print(f"| {r['precision']} | {r['ms_per_frame']['vae']:.1f} | {r['ms_per_frame']['unet']:.1f} | "
              f"{r['sample_ms_per_frame']:.1f} | {r['speedup_vs_fp32']:.2f}x | {r['mouth_psnr_vs_oracle']:.2f} | {ref} | "
              f"{b['speedup_vs_teacher']:.2f}x |")
    if args.out:
        from lsray.storage import write_json

        write_json(str(args.out), result)  # atomic, folders made
    return 0


if __name__ == "__main__":
    sys.exit(main())
