"""Shared driver code of the training jobs: arguments, Ray connection, the result summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(default_config: str, description: str) -> int:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default=str(Path(__file__).parent / "configs" / default_config),
                   help="job config yaml (see jobs/configs/)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local loopback cluster)")
    p.add_argument("--steps", type=int, help="override steps")
    p.add_argument("--num-workers", type=int, help="override ray.num_workers")
    p.add_argument("--out", help="override the output location")
    args = p.parse_args()

    import ray
    import yaml

    from lsray.train.config import load_job_config
    from lsray.train.runner import fit

    data = yaml.safe_load(Path(args.config).read_text())
    if args.num_workers:
        data.setdefault("ray", {})["num_workers"] = args.num_workers
    cfg = load_job_config(data, steps=args.steps, out=args.out)
    address = args.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:  # a new local cluster that listens on loopback only
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Logical CPUs for every worker plus one for Ray Data's reading tasks (else they starve).
        need = int(cfg.ray.num_workers * cfg.ray.cpus_per_worker) + 1
        ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=max(os.cpu_count() or 1, need))
    result = fit(cfg)
    print(json.dumps({"metrics": result.metrics, "checkpoint": str(result.checkpoint.path) if result.checkpoint else None,
                      "out": cfg.out}, indent=2, default=str))
    return 0 if result.error is None else 1
