"""Ray job entrypoint for a catalog dub: ``python jobs/dub_catalog.py CATALOG --out URI --model BUNDLE ...``.

Sent by ``lsray submit`` (Ray Job Submission API): Ray sets ``RAY_ADDRESS`` for the job, so it
joins the cluster it was submitted to. Same arguments and same code path as ``lsray dub``.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from lsray.batch.cli import add_job_arguments, run_dub

    parser = argparse.ArgumentParser(prog="dub_catalog.py", description=__doc__.splitlines()[0])
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    return run_dub(args, address=os.environ.get("RAY_ADDRESS") or "auto")


if __name__ == "__main__":
    sys.exit(main())
