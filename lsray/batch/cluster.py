"""Connecting the driver to Ray: a local loopback cluster by default, a given cluster when asked."""

from __future__ import annotations

import math
import os

from lsray.batch.config import POOL_STAGES, BatchConfig

LOOPBACK = "127.0.0.1"


def local_num_cpus(config: BatchConfig) -> int:
    """The machine's cores, but never fewer logical CPUs than the pools' minimum actors need
    (CPUs are scheduling tokens: on a 2-core laptop every pool still starts)."""
    need = sum(config.stage(s).num_cpus * config.stage(s).min_size for s in (*POOL_STAGES, "shard")) + config.assemble.num_cpus
    return int(config.local_num_cpus or max(os.cpu_count() or 1, math.ceil(need)))


def connect(address: str | None, config: BatchConfig) -> bool:
    """Make sure this process is a Ray driver; True if a local cluster was started here (the
    caller shuts it down). ``address``: None = local on 127.0.0.1 with the object store capped;
    ``auto`` / ``host:port`` / ``ray://host:port`` = that cluster."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray service on loopback
    import ray

    from lsray.console import quiet_native_stderr

    if ray.is_initialized():
        return False
    with quiet_native_stderr():  # Ray's start-up notes (token auth default, C++ log level); lsray --verbose shows them
        if address is None:
            ray.init(  # "local": a new cluster even when another one on this machine is discoverable
                address="local", _node_ip_address=LOOPBACK, num_cpus=local_num_cpus(config),
                object_store_memory=config.object_store_memory, include_dashboard=False, log_to_driver=False,
                configure_logging=False,
            )
            return True
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        return False
