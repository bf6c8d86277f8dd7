"""``lsray submit``: the same job, sent to a cluster through the Ray Job Submission API.

The entrypoint is ``python jobs/dub_catalog.py <the dub arguments>``. With ``ship="source"`` the
runtime_env carries the code: ``py_modules`` = this ``lsray`` package, ``working_dir`` = a
folder holding ``jobs/dub_catalog.py``. With ``ship="none"`` nothing is sent: the cluster's image
has lsray installed and ``jobs/`` in the working directory of the job. ``python`` is whatever the
head's PATH gives the job driver (the image's interpreter; on a dev cluster, the activated venv's).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import lsray

PACKAGE_DIR = Path(lsray.__file__).resolve().parent
ENTRYPOINT = Path(__file__).resolve().parents[2] / "jobs" / "dub_catalog.py"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
#: Environment passed on to the job (S3 endpoint and region; credentials stay with the cluster).
FORWARDED_ENV = ("LSRAY_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")


def job_arguments(args: argparse.Namespace) -> list[str]:
    """The dub arguments as a command line for the entrypoint."""
    from lsray.pipeline.options import option_flags, options_from_flags

    argv = [args.catalog, "--out", args.out, "--model", args.model, "--template", args.template, "--quiet"]
    if args.config:
        argv += ["--config", args.config]
    argv += option_flags(options_from_flags(args))
    return argv


def runtime_env(ship: str, staging: Path) -> dict:
    env_vars = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env_vars.update({k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)})
    if ship == "none":
        return {"env_vars": env_vars}
    (staging / "jobs").mkdir(parents=True)
    shutil.copy2(ENTRYPOINT, staging / "jobs" / "dub_catalog.py")
    return {"working_dir": str(staging), "py_modules": [str(PACKAGE_DIR)], "env_vars": env_vars,
            "excludes": ["__pycache__", "*.pyc"]}


def submit(address: str, argv: list[str], *, ship: str = "source", wait: bool = True, timeout: float = 3600.0,
           echo: bool = True) -> tuple[str, str, str]:
    """Submit; return ``(job id, final status, logs)`` (status ``PENDING``/``RUNNING`` without wait)."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    with tempfile.TemporaryDirectory(prefix="lsray-submit-") as tmp:
        env = runtime_env(ship, Path(tmp))
        give_up = time.monotonic() + 120
        while True:  # a freshly started head's job agent may not be up yet: wait for it
            try:
                job_id = client.submit_job(entrypoint="python jobs/dub_catalog.py " + shlex.join(argv), runtime_env=env)
                break
            except RuntimeError as exc:
                if "No available agent" not in str(exc) or time.monotonic() > give_up:
                    raise
                time.sleep(2.0)
    if echo:
        print(f"submitted {job_id} to {address}", file=sys.stderr)
    if not wait:
        return job_id, str(client.get_job_status(job_id)), ""
    deadline = time.monotonic() + timeout
    status = str(client.get_job_status(job_id))
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(1.0)
        status = str(client.get_job_status(job_id))
    logs = client.get_job_logs(job_id)
    return job_id, status, logs


def submit_from_args(args: argparse.Namespace, address: str, *, wait: bool, ship: str = "source") -> int:
    job_id, status, logs = submit(address, job_arguments(args), ship=ship, wait=wait)
    if not wait:
        print(job_id)
        return 0
    print(logs.rstrip())
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1
