"""CPU cost of the clip flow's CPU steps on a 1080p 25 fps talking head, in ms per frame per core.

The steps that must keep a GPU's sample stage fed (issue "GPU-ready speed", goal <= 20 ms per
frame per core in all): ``prepare`` (decode + face detection on keyframes + tracking between
them), ``shard`` (decode again + alignment of every face frame), ``render`` (decode + paste-back +
H.264 encode) and ``assemble`` (concat + mux). Each step is run through :class:`ClipFlow` exactly
as the runners call it, on a tiny random bundle (no step here touches the UNet; the generated
mouths are the aligned crops themselves). A decode-only pass is the reference row.

CPU time counts this process's threads and the ffmpeg children it waited for (``getrusage``), so
"per core" holds whatever the number of threads each library chose; wall time is reported too.

    .venv/bin/python -m benchmarks.cpu_stages [--seconds 8] [--face 480] [--out benchmarks/results/cpu_stages.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the talking-head frame and speech writers shared with the tests

WIDTH, HEIGHT, FPS = 1920, 1080, 25
GOAL_MS = 20.0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its waited-for children (ffmpeg)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def measured(into: dict, name: str, frames: int) -> Iterator[None]:
    c0, t0 = cpu_seconds(), time.perf_counter()
    yield
    cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
    into[name] = {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                  "ms_per_frame_per_core": round(1000 * cpu / frames, 2),
                  "ms_per_frame_wall": round(1000 * wall / frames, 2)}
    print(f"{name:10s} {1000 * cpu / frames:7.2f} ms/frame/core   {1000 * wall / frames:7.2f} ms/frame wall",
          file=sys.stderr)


def write_clip(root: Path, seconds: float, face: int) -> tuple[Path, Path, int]:
    """A 1080p talking head whose face is ``face`` px tall (a close-up is 400-600 px), and a dub."""
    from talking import face_frame, write_dub

    from lsray.media import VideoWriter

    frames = int(seconds * FPS)
    audio = write_dub(root / "dub.wav", seconds)
    video = root / "face-1080p.mp4"
    with VideoWriter(video, FPS, crf=18, preset="ultrafast") as writer:
        for i in range(frames):
            writer.write(face_frame(i, (WIDTH, HEIGHT), scale=face / 240))
    return video, audio, frames


def run_steps(flow, spec, steps: dict, frames: int) -> None:
    """The flow's CPU steps on one clip as the runners call them, each measured into ``steps``."""
    with measured(steps, "prepare", frames):
        plan = flow.prepare(spec)
    with measured(steps, "shard", frames):
        shards = list(flow.shard(plan))
    for shard in shards:
        shard.generated = shard.crops  # the mouths the sample stage would give (not measured here)
    with measured(steps, "render", frames):
        segments = [flow.render(shard) for shard in shards]
    with measured(steps, "assemble", frames):
        result = flow.assemble(plan, segments)
    assert result.status == "done" and result.no_face_frames == 0, (result.status, result.no_face_frames)


def run(seconds: float, face: int, preset: str, track_height: int | None = None) -> dict:
    """The steps' costs; ``track_height`` replaces the flow's (None: its default, TRACK_HEIGHT)."""
    from lsray.media import iter_frames
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.prepare import PrepareStage
    from lsray.pipeline.records import ClipSpec
    from lsray.train.tiny import make_tiny_bundle

    with tempfile.TemporaryDirectory(prefix="lsray-cpu-stages-") as tmp:
        root = Path(tmp)
        video, audio, frames = write_clip(root, seconds, face)
        flow = ClipFlow(make_tiny_bundle(root / "bundle"), staging_root=str(root / "staging"), encode_preset=preset)
        spec = ClipSpec("bench", str(video), str(audio), str(root / "out.mp4"), DubOptions(voice="off"))
        flow.bundle.mask  # load outside the timed steps
        if track_height is not None:
            flow.prepare_stage = PrepareStage(track_height=track_height)
        # a 1 s clip through every step first: imports and lazy set-up (librosa, mediapipe's
        # graphs, the mask's blender) are paid once per worker, not per frame of a catalog
        (root / "warm").mkdir()
        warm_video, warm_audio, warm_frames = write_clip(root / "warm", 1.0, face)
        run_steps(flow, ClipSpec("warm", str(warm_video), str(warm_audio), str(root / "warm" / "out.mp4"),
                                 DubOptions(voice="off")), {}, warm_frames)
        steps: dict[str, dict] = {}
        with measured(steps, "decode", frames):
            for _ in iter_frames(str(video)):
                pass
        run_steps(flow, spec, steps, frames)
        flow_steps = ("prepare", "shard", "render", "assemble")
        total = sum(steps[s]["ms_per_frame_per_core"] for s in flow_steps)
    return {
        "clip": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "frames": frames, "face_px": face},
        "encode_preset": preset, "steps": steps,
        "cpu_steps_ms_per_frame_per_core": round(total, 2), "goal_ms": GOAL_MS, "goal_met": total <= GOAL_MS,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0, help="clip length")
    p.add_argument("--face", type=int, default=480, help="face height in pixels")
    p.add_argument("--preset", default="medium", help="x264 preset of the rendered segments (the flow's default)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    result = run(args.seconds, args.face, args.preset)
    # side by side: tracking on the source's full-size frames (as before TRACK_HEIGHT)
    result["prepare_tracking_full_size"] = run(args.seconds, args.face, args.preset, track_height=HEIGHT)["steps"]["prepare"]
    print(f"prepare with tracking at full size: {result['prepare_tracking_full_size']['ms_per_frame_per_core']:.2f} "
          "ms/frame/core", file=sys.stderr)
    print(f"CPU steps: {result['cpu_steps_ms_per_frame_per_core']:.1f} ms per frame per core (goal <= {GOAL_MS:g})",
          file=sys.stderr)
    if args.out:
        from lsray.storage import write_json

        write_json(str(args.out), result)  # atomic, folders made
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
