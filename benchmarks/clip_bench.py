"""Memory and time of ``lsray dub-one`` on a long clip vs a short one (issue: clip pipeline).

Runs ``lsray dub-one`` as a child process on a 10-second and a 10-minute 25 fps talking-head clip
with the same small random bundle, side by side in one run, and reports each child's peak RSS
(``wait4``'s ru_maxrss), the ratio, and the per-stage time breakdown with the UNet's share.
LatentSync holds the whole video in memory (users report 64 GB gone on a 3-minute clip); lsray's
memory is bounded by one shard, so the ratio should stay near 1.

    .venv/bin/python -m benchmarks.clip_bench --out bench-clip.json [--long-seconds 600]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the talking-head clip writer shared with the tests

#: A small UNet (LatentSync's layout, narrower, no spatial attention at the full latent
#: resolution) so a 10-minute clip is minutes, not hours, on a CPU. The memory behaviour under
#: test does not depend on the model's size.
BENCH_UNET = {
    "block_out_channels": [8, 16, 16, 16],
    "norm_num_groups": 8,
    "cross_attention_dim": 384,
    "down_block_types": ["DownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "UpBlock3D"],
    "motion_module_kwargs": {"norm_num_groups": 8},
}


def build_bundle(root: Path) -> Path:
    from lsray.bundle.convert import convert_latentsync
    from lsray.models.random import random_latentsync_unet, random_openai_whisper, random_vae

    src = root / "src"
    random_latentsync_unet(src / "latentsync_unet.pt", BENCH_UNET)
    (src / "config.json").write_text(json.dumps(BENCH_UNET))
    random_openai_whisper(src / "whisper" / "tiny.pt")
    random_vae(src / "vae", channels=(4, 4, 4, 4))
    return convert_latentsync(src, root / "bundle")


def make_clip(root: Path, seconds: float, fps: int = 25) -> tuple[Path, Path]:
    from talking import face_frame, write_dub

    from lsray.media import VideoWriter

    video = root / f"clip-{int(seconds)}s.mp4"
    with VideoWriter(video, fps, crf=20, preset="ultrafast") as writer:
        for i in range(int(seconds * fps)):
            writer.write(face_frame(i % 200))  # 200 distinct frames, looped: cheap to make
    return video, write_dub(root / f"dub-{int(seconds)}s.wav", seconds, sample_rate=44100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short-seconds", type=float, default=10.0)
    ap.add_argument("--long-seconds", type=float, default=600.0)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="lsray-clip-bench-"))
    bundle = build_bundle(root)
    results = {}
    for label, seconds in (("short", args.short_seconds), ("long", args.long_seconds)):
        video, audio = make_clip(root, seconds)
        results[label] = measure(bundle, video, audio, root / f"out-{label}.mp4", args.steps)
        results[label]["seconds"] = seconds
        print(f"{label}: {seconds:g} s clip, peak RSS {results[label]['peak_rss_mb']:.0f} MB, "
              f"wall {results[label]['wall_s']:.1f} s", flush=True)
    ratio = results["long"]["peak_rss_mb"] / results["short"]["peak_rss_mb"]
    long_stages = results["long"]["stages_s"]
    unet_share = long_stages.get("unet", 0.0) / results["long"]["wall_s"]
    print(f"\npeak RSS long/short: {ratio:.3f}  (target <= 1.2)")
    print("per-stage seconds (long clip):")
    for stage, s in long_stages.items():
        print(f"  {stage:<7}{s:9.1f} s  {100 * s / results['long']['wall_s']:5.1f}% of wall")
    print(f"UNet share of wall time: {100 * unet_share:.1f}%")
    summary = {"rss_ratio": ratio, "unet_share_of_wall": unet_share, "runs": results, "unet_config": BENCH_UNET}
    if args.out:
        from lsray.storage import write_json

        write_json(str(args.out), summary)  # atomic, folders made


def measure(bundle: Path, video: Path, audio: Path, out: Path, steps: int) -> dict:
    """Run dub-one through the tiny ``peak_rss`` launcher and collect its own peak RSS (this
    process built the inputs, so its high-water mark must not leak into the child's)."""
    cmd = [sys.executable, "-m", "benchmarks.peak_rss", sys.executable, "-m", "lsray", "dub-one", str(video), str(audio),
           "-o", str(out), "--model", str(bundle), "--steps", str(steps), "--guidance", "1.0", "--quiet"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"dub-one failed: {done.stderr[-2000:]}")
    peak = json.loads(done.stderr.strip().splitlines()[-1])["peak_rss_mb"]
    stages = {m[1]: float(m[2]) for m in re.finditer(r"^\s+(\w+)\s+([\d.]+) s", done.stdout, re.M)}
    return {"wall_s": wall, "peak_rss_mb": peak, "stages_s": stages, "summary": done.stdout.strip()}


if __name__ == "__main__":
    main()
