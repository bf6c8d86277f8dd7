"""``lsray dub`` and ``lsray submit``: the catalog job from the command line.

``lsray dub`` runs :func:`lsray.batch.job.run_job` in this process (a local loopback Ray unless
``--address``); :mod:`lsray.batch.entrypoint` — the entrypoint ``lsray submit`` sends through the Ray
Job Submission API — parses the same arguments and calls the same :func:`run_dub`.
"""

from __future__ import annotations

import argparse
import sys


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    from lsray.pipeline.cli import add_dub_options

    p.add_argument("catalog", metavar="CATALOG", help="catalog (JSONL, CSV or Parquet; path or s3://)")
    p.add_argument("--out", required=True, metavar="URI", help="output root (folder or s3:// prefix)")
    p.add_argument("--model", required=True, metavar="BUNDLE", help="model bundle directory")
    p.add_argument("--config", metavar="YAML", help="per-stage resources (see lsray.batch.config)")
    p.add_argument("--template", default="{clip_id}.mp4",
                   help="output key under --out: {clip_id}, {target_language}, {fingerprint8}")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve the driver's Prometheus metrics on 127.0.0.1:PORT")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_dub_options(p)


def dub_args(p: argparse.ArgumentParser) -> None:
    add_job_arguments(p)
    p.add_argument("--address", metavar="ADDR",
                   help="auto | HOST:PORT | ray://HOST:PORT (connect) | http://HOST:PORT (submit as a Ray job); "
                        "default: a local Ray on 127.0.0.1")


def job_spec(args: argparse.Namespace, address: str | None):
    from pydantic import ValidationError

    from lsray.batch.config import load_batch_config
    from lsray.batch.job import JobSpec
    from lsray.errors import LsrayError
    from lsray.pipeline.cli import dub_options

    try:
        defaults = dub_options(args)
    except ValidationError as exc:
        raise LsrayError(f"invalid option: {exc.errors()[0]['msg']}") from exc
    return JobSpec(
        catalog=args.catalog, out=args.out, model=args.model, address=address, config=load_batch_config(args.config),
        template=args.template, defaults=defaults, progress=not args.quiet, metrics_port=args.metrics_port,
    )


def run_dub(args: argparse.Namespace, address: str | None = None) -> int:
    """The job itself (``lsray dub`` and the submitted entrypoint). Exit 0 when every clip has a
    report row; 1 when some clips failed (the report says which)."""
    from lsray.batch.job import run_job, summary_line

    outcome = run_job(job_spec(args, address))
    print(summary_line(outcome))
    for failed in outcome.summary.failed:
        where = f"line {failed.line}" if failed.line is not None else failed.clip_id
        print(f"  {failed.status}: {where}: {failed.error}", file=sys.stderr)
    return 1 if outcome.summary.failed else 0


def dub(args: argparse.Namespace) -> int:
    from lsray.preload import torch_first

    torch_first()  # see lsray.preload
    if args.address and args.address.startswith(("http://", "https://")):
        from lsray.batch.submit import submit_from_args

        return submit_from_args(args, args.address, wait=True)
    return run_dub(args, args.address)


def submit_args(p: argparse.ArgumentParser) -> None:
    add_job_arguments(p)
    p.add_argument("--address", required=True, metavar="http://HOST:PORT", help="the cluster's dashboard (Job API)")
    p.add_argument("--ship", choices=("source", "none"), default="source",
                   help="source: send this lsray package with the job (runtime_env py_modules); "
                        "none: the cluster image has lsray installed")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return")


def submit(args: argparse.Namespace) -> int:
    from lsray.batch.submit import submit_from_args

    return submit_from_args(args, args.address, wait=not args.no_wait, ship=args.ship)
