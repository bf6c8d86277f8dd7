"""``lsray dub-one``: dub a single clip in-process with the same stages the runners use."""

from __future__ import annotations

import argparse
import sys

from lsray.precision import PRECISIONS


#: Stages shown in the time summary, in pipeline order.
SUMMARY_STAGES = ("face", "audio", "anchors", "unet", "vae", "encode")  # anchors: the anchor pass's UNet


def add_dub_options(p: argparse.ArgumentParser) -> None:
    """The per-clip options (DubOptions' fields) as flags; shared by every command that dubs."""
    from lsray.pipeline.options import add_option_flags

    add_option_flags(p)


def dub_options(args: argparse.Namespace):
    from lsray.pipeline.options import options_from_flags

    return options_from_flags(args)


def dub_one_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", metavar="VIDEO", help="source video (any ffmpeg-readable file)")
    p.add_argument("audio", metavar="AUDIO", help="dubbed audio track")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="output video")
    p.add_argument("--model", required=True, metavar="BUNDLE", help="model bundle directory")
    p.add_argument("--face-track", metavar="JSON", help="precomputed face track sidecar (skips detection)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--precision", choices=PRECISIONS, help="inference precision (default: the bundle's; auto = fp16 "
                   "on CUDA, fp32 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (the first window pays the "
                   "compile; pays off on long clips)")
    p.add_argument("--windows-per-call", type=int, default=4, metavar="N",
                   help="windows denoised per UNet call (results do not depend on it)")
    add_dub_options(p)


def dub_one(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from tqdm import tqdm

    from lsray.bundle import load_bundle
    from lsray.errors import LsrayError
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.records import ClipSpec

    try:
        options = dub_options(args)
    except ValidationError as exc:
        raise LsrayError(f"invalid option: {exc.errors()[0]['msg']}") from exc
    flow = ClipFlow(load_bundle(args.model, precision=args.precision, compile_unet=args.compile))
    spec = ClipSpec("clip", args.video, args.audio, args.output, options, face_sidecar=args.face_track)
    bar = tqdm(total=0, unit="frame", desc="dubbing", disable=args.quiet, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    result = run_clip(flow, spec, progress, windows_per_call=args.windows_per_call)
    bar.close()
    if result.status == "error":
        print(f"error: {result.error}", file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    total = sum(result.timings.values())
    print(f"{result.status}: {result.output} ({result.frames} frames at {result.fps:g} fps, "
          f"{result.no_face_frames} without a face)")
    if result.sampling:
        t = result.sampling
        print(f"  sampler {t['sampler']}, {t['steps']} steps, {t['unet_calls_per_window']} UNet calls per window "
              f"at timesteps {t['timesteps']}; voice {result.voice}; mouths sha256 {t['generated_sha256'][:16]}")
        if t.get("anchors"):
            a = t["anchors"]
            print(f"  anchors: {a['keyframes']} keyframes (every {a['stride']}th frame) sampled first, in "
                  f"{a['sequences']} sequences of {a['sequence']}")
    for stage in SUMMARY_STAGES:
        if stage == "anchors" and stage not in result.timings:
            continue  # anchors off
        s = result.timings.get(stage, 0.0)
        print(f"  {stage:<7}{s:8.2f} s  {100 * s / total if total else 0:5.1f}%")
    return 0
