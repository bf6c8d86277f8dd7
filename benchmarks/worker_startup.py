"""What a stage worker pays to start: seconds and peak RSS to build its stage in a fresh interpreter.

Each batch actor and Serve replica builds one stage of the clip flow when it starts
(``ClipFlow.build``) and imports only what that stage runs. Each row here is a new Python process
that does exactly that on the given bundle and reports its wall time, its peak RSS and which model
libraries it imported. The reference row, run in the same way and the same run, imports every
stage's module without building anything: what each worker paid before stages were imported where
they are built.

    .venv/bin/python -m benchmarks.worker_startup [--bundle lsray/demo/bundle] [--repeats 3]
        [--out benchmarks/results/worker_startup.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "shard", "audio", "sample", "render")
LIBRARIES = ("torch", "diffusers", "transformers", "mediapipe", "cv2")
ALL_STAGE_MODULES = "anchors audio prepare render sample voice"

#: One worker's start in a fresh interpreter; argv: stage ("every module" for the reference row), bundle.
_CHILD = f"""
import json, resource, sys, time
t0 = time.perf_counter()
from lsray.pipeline.flow import ClipFlow
stage, bundle = sys.argv[1:3]
flow = ClipFlow(bundle)
if stage == "every module":
    import importlib
    for name in "{ALL_STAGE_MODULES}".split():
        importlib.import_module("lsray.pipeline." + name)
else:
    flow.build(stage)
    if stage + "_stage" not in vars(flow):
        sys.exit("stage " + stage + " did not build")
print(json.dumps({{"seconds": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "imports": [m for m in {LIBRARIES!r} if m in sys.modules]}}))
"""


def start(stage: str, bundle: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", _CHILD, stage, str(bundle)], capture_output=True, text=True,
                         timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"{stage}: {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=REPO / "lsray" / "demo" / "bundle")
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per row (the median is reported)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "worker_startup.json")
    args = p.parse_args(argv)

    rows = {}
    for stage in ("every module", *STAGES):
        runs = [start(stage, args.bundle) for _ in range(args.repeats)]
        rows[stage] = {"seconds": round(statistics.median(r["seconds"] for r in runs), 2),
                       "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs)),
                       "imports": runs[0]["imports"]}
        row = rows[stage]
        print(f"{stage:13s} {row['seconds']:5.2f} s  {row['peak_rss_mb']:5d} MB  {', '.join(row['imports'])}")
    from lsray.storage import write_json

    write_json(str(args.out), {"bundle": str(args.bundle.relative_to(REPO) if args.bundle.is_relative_to(REPO)
                                             else args.bundle),
                               "repeats": args.repeats, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
