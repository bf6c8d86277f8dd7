"""``lsray demo``: the README's main job. Synthetic dubbing jobs with known answers, dubbed by the
batch job on local Ray, scored against their oracles, written up as an HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

from lsray.demo import DEMO_BUNDLE, DEMO_SYNCNET
from lsray.voice_backends import VoiceBackend  # `lsray --help` must not import torch


def demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="lsray-demo", help="output folder (inputs/, dubbed/, report.html)")
    p.add_argument("--model", default=str(DEMO_BUNDLE), help="bundle (default: the demo bundle shipped with lsray)")
    p.add_argument("--syncnet", default=str(DEMO_SYNCNET), help="SyncNet directory for LSE-C / LSE-D")
    p.add_argument("--clips", type=int, default=5, help="dubbing jobs (the last is the photo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the bundle's)")
    # The demo shows every upgrade the bundle has; re-voicing (upgrade 5) needs no weights with
    # builtin, and the demo's catalog gives every clip its speaker's reference voice.
    p.add_argument("--voice", default="builtin", choices=get_args(VoiceBackend),
                   help="re-voice each dub as the on-screen speaker and report the speaker similarity before/after "
                   "(default: builtin, which needs no weights; off keeps the dub's voice)")
    p.add_argument("--address", default=None, help="a Ray cluster (default: local Ray on loopback)")
    p.add_argument("--config", default=None, metavar="YAML", help="per-stage resources (as lsray dub --config)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_demo(args: argparse.Namespace) -> int:
    from lsray.preload import torch_first

    torch_first()
    from lsray.batch.config import load_batch_config
    from lsray.batch.job import JobSpec, run_job, summary_line
    from lsray.demo.catalog import build_demo_catalog
    from lsray.demo.report import score_clips, summarise, write_report
    from lsray.errors import LsrayError
    from lsray.pipeline.options import DubOptions

    out = Path(args.out).resolve()
    if not (Path(args.model) / "config.json").is_file():
        raise LsrayError(f"{args.model}: no bundle here (config.json missing); train one with jobs/train_demo.py")
    print(f"building {args.clips} demo clips in {out / 'inputs'}", file=sys.stderr)
    catalog, clips = build_demo_catalog(out / "inputs", clips=args.clips, seed=args.seed)
    spec = JobSpec(catalog=str(catalog), out=str(out / "dubbed"), model=str(args.model), address=args.address,
                   config=load_batch_config(args.config), defaults=DubOptions(steps=args.steps, voice=args.voice), progress=not args.quiet)
    outcome = run_job(spec)
    print(summary_line(outcome))
    results = {}
    for r in outcome.reports:
        path = out / "dubbed" / f"{r.clip_id}.mp4"
        spf = sum(r.seconds.values()) / r.frames if r.frames else None
        results[r.clip_id] = (r.status, str(path) if path.is_file() else None, r.error, spf)
    scorer = None
    if args.syncnet and (Path(args.syncnet) / "config.json").is_file():
        from lsray.eval import ProjectSyncNetScorer
        from lsray.models.syncnet import SyncNet

        scorer = ProjectSyncNetScorer(SyncNet.from_pretrained(args.syncnet))
    rows = score_clips(clips, results, scorer)
    voices = {r.clip_id: (r.speaker_similarity, r.similarity_before) for r in outcome.reports}
    for row in rows:
        row.speaker_similarity, row.similarity_before = voices.get(row.clip.clip_id, (None, None))
    summary = summarise(rows)
    report = write_report(out, rows, summary, str(args.model))
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"mouth PSNR vs oracle {fmt(summary['mouth_psnr'])} dB (keep source mouth {fmt(summary['mouth_psnr_keep_source'])} dB); "
          f"LSE-C {fmt(summary['lse_c'])} (unsynchronised {fmt(summary['lse_c_unsynced'])}); "
          f"in step with the oracle in {summary['oracle_lag_0']}/{summary['scored']} clips")
    print(f"lips shut on {fmt(summary['bilabial_hit'])} of {summary['bilabial_frames']} bilabial frames (keep source mouth "
          f"{fmt(summary['bilabial_hit_keep_source'])}, oracle {fmt(summary['bilabial_hit_oracle'])}); f/v bite "
          f"{fmt(summary['labiodental_hit'])} of {summary['labiodental_frames']} (keep source {fmt(summary['labiodental_hit_keep_source'])}); "
          f"open vowels {fmt(summary['open_vowel'])} of the oracle's opening (keep source {fmt(summary['open_vowel_keep_source'])})")
    if scorer is not None and summary["scored"] >= 2:
        from lsray.eval.stats import PairedDifference

        goals = {k: PairedDifference(**d) for k, d in summary["paired"].items()}
        print(f"paired over the clips: mouth PSNR over keeping the source {goals['mouth_psnr_vs_keep_source'].describe(2)} dB; "
              f"LSE-C over another clip's audio {goals['lse_c_vs_unsynced'].describe()}, over keeping the source "
              f"{goals['lse_c_vs_keep_source'].describe()}")
    if summary["speaker_similarity"] is not None:
        print(f"voice: speaker similarity to the on-screen speaker {fmt(summary['speaker_similarity'])} "
              f"(the dub as given {fmt(summary['speaker_similarity_dub'])})")
    print(f"report: {report}")
    return 0 if all(r.status == "done" for r in outcome.reports) else 1
