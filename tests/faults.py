"""Faults injected into running batch jobs (tests and the durability benchmark share them)."""

from __future__ import annotations

import threading
import time


def remove_node_while_rendering(cluster, node, job_id: str, job: threading.Thread, timeout_s: float = 300.0,
                                poll_s: float = 0.1) -> float | None:
    """Remove ``node`` from the ``ray.cluster_utils.Cluster`` without warning as soon as the job's
    ledger shows a render unit running on it; -> seconds until then, or None if the job ended
    (or ``timeout_s`` passed) first."""
    import ray

    t0 = time.monotonic()
    while job.is_alive() and time.monotonic() - t0 < timeout_s:
        time.sleep(poll_s)
        try:
            running = ray.get(ray.get_actor(f"{job_id}-ledger").running_units.remote("render"), timeout=10)
        except Exception:  # noqa: BLE001 - the ledger is not there yet
            continue
        if any(u["node_id"] == node.node_id for u in running):
            cluster.remove_node(node, allow_graceful=False)  # the node is gone, mid-render
            return time.monotonic() - t0
    return None
