"""A consistency student against its own teacher: which step count to ship, and what it costs.

    python -m benchmarks.student_steps [--bundle lsray/demo/bundle] [--clips 10] [--seed 2] [--precision bf16]
                                       [--out benchmarks/results/student_steps.json]

The bundle must be an LCM student that carries its teacher (``jobs/configs/demo_v2.yaml`` makes
one). On the same demo clips and seeds, in-process (the clip pipeline, as upgrades_bench does),
it dubs with the teacher (``--sampler ddim``: the teacher's steps and guidance) and with the
student at 1, 2 and 4 steps, and scores each against the oracles. Use a ``--seed`` the reported
runs do not (``lsray demo`` uses 0 and 1), so picking the steps does not fit the report's clips.
The issue's bar: the shipped steps within 0.3 dB of the teacher's mouth PSNR at >= 5x its
sampling speed (seconds per frame of the anchor pass, windows and VAE).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from lsray.preload import torch_first

    torch_first()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=str(REPO / "lsray" / "demo" / "bundle"))
    p.add_argument("--syncnet", default=str(REPO / "lsray" / "demo" / "syncnet"))
    p.add_argument("--clips", type=int, default=10)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), help="both teacher and student (default: the bundle's)")
    p.add_argument("--work", default="~/.cache/lsray/student-steps", help="clips and outputs")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "student_steps.json"))
    args = p.parse_args(argv)

    import torch

    from benchmarks.upgrades_bench import COLUMNS, evaluate, markdown_table
    from lsray.demo.catalog import build_demo_catalog
    from lsray.eval import ProjectSyncNetScorer
    from lsray.models.syncnet import SyncNet

    torch.set_num_threads(2)
    work = Path(args.work).expanduser()
    _, clips = build_demo_catalog(work / "clips", clips=args.clips, seed=args.seed)
    scorer = ProjectSyncNetScorer(SyncNet.from_pretrained(args.syncnet))
    bundle = Path(args.bundle)
    rows = []
    for name, options in [("teacher (DDIM, its steps and guidance)", {"sampler": "ddim"}),
                          *((f"student, {n} step{'s' if n > 1 else ''}", {"sampler": "lcm", "steps": n}) for n in (1, 2, 4))]:
        m = evaluate(bundle, clips, scorer, work / "outputs" / f"{name.split(' ')[0]}{options.get('steps', '')}",
                     precision=args.precision, **options)
        rows.append({"variant": name, **m})
        print(f"{name}: {json.dumps({k: m[k] for k in ('mouth_psnr', 'lse_c', 'seconds_per_frame')})}", file=sys.stderr)
    teacher = rows[0]
    for r in rows:
        r["psnr_vs_teacher"] = r["mouth_psnr"] - teacher["mouth_psnr"]
        r["speedup_vs_teacher"] = teacher["seconds_per_frame"] / r["seconds_per_frame"]
    from lsray.storage import write_json

    write_json(args.out, {"protocol": __doc__, "bundle": str(bundle), "seed": args.seed, "precision": args.precision,
                          "clips": [c.clip_id for c in clips], "rows": rows})
    print(markdown_table(rows, [*COLUMNS, ("psnr_vs_teacher", "PSNR vs teacher", 2), ("speedup_vs_teacher", "speed-up", 2)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
