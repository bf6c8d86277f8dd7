"""Attempt ledger: how the job counts retries and sees where each stage ran.

Every unit of work (a clip at prepare/assemble, a shard at audio/sample/render) calls
:meth:`AttemptLedger.start` before it runs and :meth:`AttemptLedger.finish` after. When Ray
restarts a killed actor and re-runs its call (Ray Data's actor fault tolerance; the assemble
task's ``max_task_retries``), the same unit starts a second time: ``retries`` of a clip = the sum over its units of
``starts - 1``. The ledger is one small named actor (0 CPUs) per job; the counts reach the
report's ``retries`` column and ``lsray_batch_retries_total``. It also records the node each
stage ran on, so a multi-node run can prove that placement followed the resource requests.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any


class AttemptLedger:
    """The Ray actor's class (wrapped with ``ray.remote`` by :func:`create_ledger`)."""

    def __init__(self) -> None:
        self.starts: dict[tuple[str, str, int], int] = defaultdict(int)
        self.running: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.nodes: dict[str, set[str]] = defaultdict(set)
        self.pids: dict[str, set[int]] = defaultdict(set)

    def start(self, stage: str, clip_id: str, unit: int, node_id: str, pid: int) -> int:
        key = (stage, clip_id, unit)
        self.starts[key] += 1
        self.running[key] = {"pid": pid, "node_id": node_id}
        self.nodes[stage].add(node_id)
        self.pids[stage].add(pid)
        return self.starts[key]

    def finish(self, stage: str, clip_id: str, unit: int) -> None:
        self.running.pop((stage, clip_id, unit), None)

    def running_units(self, stage: str | None = None) -> list[dict[str, Any]]:
        return [{"stage": s, "clip_id": c, "unit": u, **info} for (s, c, u), info in self.running.items()
                if stage is None or s == stage]

    def retries(self) -> dict[str, dict[str, int]]:
        """clip_id -> {stage: re-attempts}."""
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for (stage, clip_id, _), n in self.starts.items():
            if n > 1:
                out[clip_id][stage] = out[clip_id].get(stage, 0) + n - 1
        return dict(out)

    def placement(self) -> dict[str, list[str]]:
        return {stage: sorted(nodes) for stage, nodes in self.nodes.items()}

    def stage_pids(self) -> dict[str, list[int]]:
        return {stage: sorted(p) for stage, p in self.pids.items()}


def create_ledger(name: str) -> Any:
    import ray

    cls = ray.remote(num_cpus=0, max_restarts=0)(AttemptLedger)
    return cls.options(name=name, lifetime=None).remote()


class LedgerClient:
    """What a stage worker holds: the ledger handle, its node id and pid."""

    def __init__(self, name: str | None) -> None:
        import ray

        self.handle = ray.get_actor(name) if name else None
        self.node_id = ray.get_runtime_context().get_node_id()
        self.pid = os.getpid()

    def start(self, stage: str, clip_id: str, unit: int) -> None:
        if self.handle is not None:
            import ray

            # Waited for: the attempt must be on record before the work can die.
            ray.get(self.handle.start.remote(stage, clip_id, unit, self.node_id, self.pid))

    def finish(self, stage: str, clip_id: str, unit: int) -> None:
        if self.handle is not None:
            self.handle.finish.remote(stage, clip_id, unit)
