"""Ray job entrypoint for a catalog dub: ``python -m lsray.batch.entrypoint CATALOG --out URI --model BUNDLE ...``.

Sent by ``lsray submit`` (Ray Job Submission API) and named by the RayJob manifest: a module of the
installed package, so the job needs no file from the repository. Ray sets ``RAY_ADDRESS`` for the
job, so it joins the cluster it was submitted to. Same arguments and same code path as ``lsray dub``,
with one difference: the exit status is 0 once the report is written, even when some clips failed
(``lsray dub`` exits 1 then). A clip's bad input is not a failed Ray job: the dashboard, alerts
and retry policies keyed on job status should fire only when the job itself broke.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from lsray.preload import torch_first

    torch_first()  # before Ray/pyarrow/OpenCV fill the static TLS block (see lsray.preload)
    from lsray.batch.cli import add_job_arguments, run_dub

    parser = argparse.ArgumentParser(prog="python -m lsray.batch.entrypoint", description=__doc__.splitlines()[0])
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    run_dub(args, address=os.environ.get("RAY_ADDRESS") or "auto")
    return 0  # the report is written: the job SUCCEEDED, failed clips are rows in it (and in the log)


if __name__ == "__main__":
    sys.exit(main())
