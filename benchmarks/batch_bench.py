"""Ray Data catalog job vs the in-process runner on the same clips, measured side by side.

    python benchmarks/batch_bench.py [--model BUNDLE] [--clips 8] [--frames 32] [--steps 1]
        [--size 160x120] [--sample-threads N] [--out bench.json]

Both runs dub the same talking-head clips (speech dubs, so every window goes through the UNet)
with the same bundle and options. Reported:
- frames/s of each (wall time including model loading: the in-process runner loads the bundle
  once, the Ray job starts its actor pools, which load their stage's models) and the ratio;
- the fraction of the Ray job's wall time its UNet (sample stage) is busy:
  sum over clips of the UNet seconds / job wall seconds (one sample actor), and the same for the
  whole sample stage (VAE encode/decode + UNet);
- each runner's seconds per frame by step (unet, vae, face, encode, audio, ...), summed over clips.
How heavy the UNet is next to the CPU steps decides the busy share. With the tiny test bundle at
1 step, --size 1920x1080 gives a ratio like a full-size UNet's (DDIM 20 + CFG) on a GPU against the
CPU steps on a core or two: the frames are what the CPU steps pay for, the mouth crop the UNet sees
is the same size at any resolution. --sample-threads gives the sample actor more torch threads
than its num_cpus (the stage's `threads` setting).
Without --model a tiny test bundle is built from the parity fixtures (../shared/fixtures/latentsync).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_inputs(root: Path, clips: int, frames: int, size: tuple[int, int]) -> list[tuple[str, Path, Path]]:
    sys.path.insert(0, str(REPO / "tests"))
    from talking import write_dub, write_face_clip

    write_face_clip(root / "face.mp4", frames=frames, size=size)
    out = []
    for i in range(clips):
        dub = write_dub(root / f"dub{i}.wav", frames / 25)
        out.append((f"clip{i}", root / "face.mp4", dub))
    return out


def add_seconds(total: dict[str, float], seconds: dict[str, float]) -> None:
    for key, value in seconds.items():
        total[key] = total.get(key, 0.0) + value


def per_frame(total: dict[str, float], frames: float) -> dict[str, float]:
    """Seconds per frame of each step, over all clips."""
    return {key: round(value / frames, 4) for key, value in sorted(total.items())} if frames else {}


def run_local(model: str, inputs, steps: int, out_dir: Path) -> dict:
    from lsray.bundle import load_bundle
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec
    from lsray.pipeline.flow import ClipFlow

    t0 = time.perf_counter()
    flow = ClipFlow(load_bundle(model), encode_preset="veryfast")
    frames = 0.0
    seconds: dict[str, float] = {}
    for cid, video, audio in inputs:
        r = run_clip(flow, ClipSpec(cid, str(video), str(audio), str(out_dir / f"{cid}.mp4"), DubOptions(steps=steps)))
        assert r.status == "done", r.error
        frames += r.frames
        add_seconds(seconds, r.timings)
    wall = time.perf_counter() - t0
    return {"frames": int(frames), "wall_s": wall, "fps": frames / wall, "unet_s": seconds.get("unet", 0.0),
            "s_per_frame": per_frame(seconds, frames)}


def run_ray(model: str, inputs, steps: int, root: Path, num_cpus: int, sample_threads: int | None) -> dict:
    from lsray.batch.config import load_batch_config
    from lsray.batch.job import JobSpec, run_job
    from lsray.pipeline.options import DubOptions

    catalog = root / "catalog.jsonl"
    catalog.write_text("".join(json.dumps({"clip_id": c, "video": str(v), "audio": str(a)}) + "\n" for c, v, a in inputs))
    overrides: dict = {"local_num_cpus": num_cpus}
    if sample_threads:
        overrides["sample"] = {"threads": sample_threads}
    config = load_batch_config(overrides=overrides)
    t0 = time.perf_counter()
    outcome = run_job(JobSpec(catalog=str(catalog), out=str(root / "ray-out"), model=model, config=config,
                              defaults=DubOptions(steps=steps), progress=False))
    wall = time.perf_counter() - t0
    assert all(r.status == "done" for r in outcome.reports), [(r.clip_id, r.error) for r in outcome.reports]
    seconds: dict[str, float] = {}
    for r in outcome.reports:
        add_seconds(seconds, r.seconds)
    unet, vae = seconds.get("unet", 0.0), seconds.get("vae", 0.0)
    return {"frames": outcome.frames, "wall_s": wall, "fps": outcome.frames / wall, "unet_s": unet,
            "unet_busy_fraction": unet / wall, "sample_busy_fraction": (unet + vae) / wall,
            "s_per_frame": per_frame(seconds, outcome.frames)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="bundle (default: a tiny test bundle built from the parity fixtures)")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--size", default="160x120", help="frame size WxH of the synthetic clips")
    p.add_argument("--sample-threads", type=int, default=None,
                   help="torch threads of the sample actor (default: its num_cpus)")
    p.add_argument("--num-cpus", type=int, default=None, help="logical CPUs of the local Ray (default: sized by lsray)")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    with tempfile.TemporaryDirectory(prefix="lsray-bench-") as tmp:
        root = Path(tmp)
        model = args.model
        if model is None:
            sys.path.insert(0, str(REPO / "tests"))
            from bundles import make_tiny_bundle

            fixtures = Path(os.environ.get("LSRAY_PARITY_FIXTURES", REPO.parent / "shared" / "fixtures" / "latentsync"))
            model = str(make_tiny_bundle(root / "tiny", fixtures))
        inputs = make_inputs(root, args.clips, args.frames, (width, height))
        (root / "local-out").mkdir()
        local = run_local(model, inputs, args.steps, root / "local-out")
        from lsray.batch.cluster import local_num_cpus
        from lsray.batch.config import load_batch_config

        ray_fig = run_ray(model, inputs, args.steps, root, args.num_cpus or local_num_cpus(load_batch_config()),
                         args.sample_threads)
    result = {
        "clips": args.clips, "frames_per_clip": args.frames, "steps": args.steps, "cpu_cores": os.cpu_count(),
        "size": f"{width}x{height}", "sample_threads": args.sample_threads,
        "in_process": local, "ray_data": ray_fig, "ray_over_in_process_fps": ray_fig["fps"] / local["fps"],
    }
    print(f"{'runner':<12}{'frames':>8}{'wall s':>10}{'frames/s':>10}{'UNet s':>9}")
    for name, r in (("in-process", local), ("ray data", ray_fig)):
        print(f"{name:<12}{r['frames']:>8}{r['wall_s']:>10.1f}{r['fps']:>10.2f}{r['unet_s']:>9.1f}")
    print(f"ratio (ray / in-process frames/s): {result['ray_over_in_process_fps']:.2f}")
    print(f"UNet busy: {100 * ray_fig['unet_busy_fraction']:.0f}% of the Ray job's wall time "
          f"(sample stage incl. VAE: {100 * ray_fig['sample_busy_fraction']:.0f}%)")
    for name, r in (("in-process", local), ("ray data", ray_fig)):
        steps_line = ", ".join(f"{k} {v:.3f}" for k, v in r["s_per_frame"].items())
        print(f"{name} s/frame: {steps_line}")
    if args.out:
        from lsray.storage import write_json

        write_json(args.out, result)  # atomic, folders made
    return 0


if __name__ == "__main__":
    sys.exit(main())
