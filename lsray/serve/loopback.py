"""Keep Ray Serve's per-replica gRPC server on loopback when the node itself is on loopback.

Ray 2.60 starts an inter-deployment gRPC server in every replica bound to ``[::]:0`` (all
interfaces), whatever the node's address (``ray/serve/_private/replica.py``, ``_on_initialized``).
lsray's local mode must listen on 127.0.0.1 only, so on a node whose IP is loopback the bind
address is rewritten to ``127.0.0.1``. On a real cluster (node IP not loopback) nothing changes:
replicas on other nodes must be able to reach it. Imported by every module that defines a
deployment, so it is in effect in each replica process before its server starts.
"""

from __future__ import annotations

import functools

LOOPBACK = "127.0.0.1"


def keep_replica_grpc_on_loopback() -> None:
    """Patch (once per process) the replica's gRPC port binding; a no-op off loopback."""
    from ray.serve._private import replica

    original = replica.add_port_to_grpc_server
    if getattr(original, "_lsray_loopback", False):
        return

    @functools.wraps(original)
    def bind(server, address: str):
        import ray

        if address.startswith("[::]:") and ray.util.get_node_ip_address() == LOOPBACK:
            address = f"{LOOPBACK}:{address.rsplit(':', 1)[1]}"
        return original(server, address)

    bind._lsray_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bind
