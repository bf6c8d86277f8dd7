"""Attempt ledger: how the job counts retries, sees where each stage ran, and says why a clip was lost.

Every unit of work (a clip at prepare/assemble, a shard at audio/sample/render) calls
:meth:`AttemptLedger.start` before it runs and :meth:`AttemptLedger.finish` after. When Ray
restarts a killed actor and re-runs its call (``BatchConfig.max_attempts`` runs per unit), the
same unit starts again: ``retries`` of a clip = the sum over its units of ``starts - 1``. A unit
that started last is where its clip was lost: :meth:`AttemptLedger.last_seen` gives the driver
the stage, the node, the attempts and whether it finished, for the clip's report row.

The ledger is one small named actor (0 CPUs) per job, on the driver's node (a lost worker node
never takes it along) and restartable: should it die anyway, Ray starts it again and re-sends the
calls, and it counts from then on (the report's counts are a lower bound, never a failure). Its
clients never fail a unit because the ledger is unreachable.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

logger = logging.getLogger(__name__)
#: Stages whose units are a clip's shards (the others work on whole clips).
SHARD_STAGES = ("audio", "sample", "render")
#: How long a unit waits for the ledger to record its start (it may be restarting).
LEDGER_TIMEOUT_S = 60.0


class AttemptLedger:
    """The Ray actor's class (wrapped with ``ray.remote`` by :func:`create_ledger`)."""

    def __init__(self) -> None:
        self.starts: dict[tuple[str, str, int], int] = defaultdict(int)
        self.deaths: dict[tuple[str, str, int], int] = defaultdict(int)  # starts whose worker died under them
        self.running: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.last: dict[str, tuple[str, int, str]] = {}  # clip -> (stage, unit, node) it last started
        self.nodes: dict[str, set[str]] = defaultdict(set)
        self.pids: dict[str, set[int]] = defaultdict(set)

    def start(self, stage: str, clip_id: str, unit: int, node_id: str, pid: int) -> int:
        """Record an attempt; returns how many earlier attempts of this unit died unfinished (a
        re-run after a finished attempt, e.g. another row of its batch died, is no death)."""
        key = (stage, clip_id, unit)
        if key in self.running:
            self.deaths[key] += 1
        self.starts[key] += 1
        self.running[key] = {"pid": pid, "node_id": node_id}
        self.last[clip_id] = (stage, unit, node_id)
        self.nodes[stage].add(node_id)
        self.pids[stage].add(pid)
        return self.deaths[key]

    def finish(self, stage: str, clip_id: str, unit: int) -> None:
        self.running.pop((stage, clip_id, unit), None)

    def last_seen(self) -> dict[str, dict[str, Any]]:
        """clip_id -> the unit of it that started last: {stage, unit, node_id, attempts, finished}.
        For a clip with no result, where it was lost: under a worker that died (not finished), or
        with the output of a finished unit (on a node that left, or in a batch that failed)."""
        out: dict[str, dict[str, Any]] = {}
        for clip_id, (stage, unit, node_id) in self.last.items():
            key = (stage, clip_id, unit)
            out[clip_id] = {"stage": stage, "unit": unit, "node_id": node_id, "attempts": self.starts[key],
                            "finished": key not in self.running}
        return out

    def running_units(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Units started and not finished: stage, clip_id, unit, pid, node_id and which attempt."""
        return [{"stage": s, "clip_id": c, "unit": u, "attempt": self.starts[(s, c, u)], **info}
                for (s, c, u), info in self.running.items() if stage is None or s == stage]

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
    """The job's ledger actor, pinned to this (the driver's) node and restarted if it dies."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(AttemptLedger)
    return cls.options(name=name, lifetime=None, scheduling_strategy=here).remote()


class LedgerClient:
    """What a stage worker holds: the ledger handle, its node id and pid."""

    def __init__(self, name: str | None) -> None:
        import ray

        self.handle = ray.get_actor(name) if name else None
        self.node_id = ray.get_runtime_context().get_node_id()
        self.pid = os.getpid()

    def start(self, stage: str, clip_id: str, unit: int) -> int:
        """Record the attempt before the work runs; returns the unit's earlier deaths (0 when
        the ledger cannot be reached: the work then runs, uncounted)."""
        if self.handle is None:
            return 0
        import ray

        try:  # waited for: the attempt must be on record before the work can die
            return ray.get(self.handle.start.remote(stage, clip_id, unit, self.node_id, self.pid),
                           timeout=LEDGER_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError) as exc:  # bookkeeping only: never fail the work for it
            logger.warning("attempt ledger unreachable (%s); %s of %s not counted", exc, stage, clip_id)
            return 0

    def finish(self, stage: str, clip_id: str, unit: int) -> None:
        if self.handle is not None:
            self.handle.finish.remote(stage, clip_id, unit)


# ---------------------------------------------------------------------------------------------
# what a clip's report row says when it was given up on or lost
# ---------------------------------------------------------------------------------------------
RETRY = "rerun the job to retry this clip"


def unit_name(stage: str, unit: int) -> str:
    return stage + (f" of shard {unit}" if stage in SHARD_STAGES else "")


def given_up(stage: str, unit: int, deaths: int) -> str:
    """The error of a unit whose worker died under it ``deaths`` times (= ``max_attempts``)."""
    return f"{unit_name(stage, unit)} did not finish: its worker died under it {deaths} time(s), the most allowed; {RETRY}"


def lost_reason(unit: dict[str, Any] | None, job_error: str | None, dead_nodes: frozenset[str] = frozenset()) -> str:
    """Why a clip has no result, from the unit of it the ledger saw start last
    (:meth:`AttemptLedger.last_seen`): a node that left with it or with its output, a batch that
    failed with it; or the job's own failure."""
    if unit is None:
        if job_error is not None:
            return f"not finished when the job's pipeline stopped ({job_error}); {RETRY}"
        return f"never started: lost with a batch that failed; {RETRY}"
    what, node = unit_name(unit["stage"], unit["unit"]), unit["node_id"][:12]
    gone = unit["node_id"] in dead_nodes
    if unit["finished"] and gone:
        return f"{what} finished on node {node}, which then left the cluster with its output; {RETRY}"
    if unit["finished"]:
        return f"{what} finished but its output was lost with a batch that failed; {RETRY}"
    if gone:
        return f"{what} was lost with node {node}, which left the cluster ({unit['attempts']} attempt(s)); {RETRY}"
    if job_error is not None:
        return f"{what} was running when the job's pipeline stopped ({job_error}); {RETRY}"
    return f"{what} did not finish ({unit['attempts']} attempt(s), last on node {node}); {RETRY}"
