"""``lsray dub-one``: dub a single clip in-process with the same stages the runners use."""

from __future__ import annotations

import argparse
import sys

from lsray.pipeline.options import SYNC_MODES
from lsray.resolution import RESOLUTIONS

#: Stages shown in the time summary, in pipeline order.
SUMMARY_STAGES = ("face", "audio", "unet", "vae", "encode")


def add_dub_options(p: argparse.ArgumentParser) -> None:
    """The per-clip options (DubOptions) as flags; shared by every command that dubs."""
    p.add_argument("--sampler", choices=("ddim", "lcm"), default="ddim")
    p.add_argument("--steps", type=int, help="sampling steps (default: the bundle's)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: the bundle's)")
    p.add_argument("--resolution", type=int, choices=RESOLUTIONS, help="face crop size (default: the bundle's)")
    p.add_argument("--sync-mode", choices=SYNC_MODES, default="video",
                   help="what to do when video and audio lengths differ (default: keep the video's)")
    p.add_argument("--speaker", default="largest", help="largest | auto | X,Y@T (pixel X,Y in the frame at T s)")
    p.add_argument("--no-keep-silent-mouth", action="store_true", help="regenerate the mouth in silences too")
    p.add_argument("--segment-seconds", type=float, default=10.0, help="shard length (memory is bounded by it)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower = better)")
    p.add_argument("--seed", type=int, default=0)


def dub_options(args: argparse.Namespace):
    from lsray.pipeline.options import DubOptions

    return DubOptions(
        sampler=args.sampler, steps=args.steps, guidance=args.guidance, resolution=args.resolution,
        sync_mode=args.sync_mode, speaker=args.speaker, keep_silent_mouth=not args.no_keep_silent_mouth,
        segment_seconds=args.segment_seconds, crf=args.crf, seed=args.seed,
    )


def dub_one_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", metavar="VIDEO", help="source video (any ffmpeg-readable file)")
    p.add_argument("audio", metavar="AUDIO", help="dubbed audio track")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="output video")
    p.add_argument("--model", required=True, metavar="BUNDLE", help="model bundle directory")
    p.add_argument("--face-track", metavar="JSON", help="precomputed face track sidecar (skips detection)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dub_options(p)


def dub_one(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from tqdm import tqdm

    from lsray.errors import LsrayError
    from lsray.bundle import load_bundle
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.records import ClipSpec
    from lsray.pipeline.stages import build_stages

    try:
        options = dub_options(args)
    except ValidationError as exc:
        raise LsrayError(f"invalid option: {exc.errors()[0]['msg']}") from exc
    stages = build_stages(load_bundle(args.model))
    spec = ClipSpec("clip", args.video, args.audio, args.output, options, face_sidecar=args.face_track)
    bar = tqdm(total=0, unit="frame", desc="dubbing", disable=args.quiet, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    result = run_clip(stages, spec, progress)
    bar.close()
    if result.status == "error":
        print(f"error: {result.error}", file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    total = sum(result.timings.values())
    print(f"{result.status}: {result.output} ({result.frames} frames at {result.fps:g} fps, "
          f"{result.no_face_frames} without a face)")
    for stage in SUMMARY_STAGES:
        s = result.timings.get(stage, 0.0)
        print(f"  {stage:<7}{s:8.2f} s  {100 * s / total if total else 0:5.1f}%")
    return 0
