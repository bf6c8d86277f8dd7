"""Shared test fixtures: where the LatentSync parity data lives, a tiny bundle, and the test
session's one Ray cluster (every Ray test module uses it)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# lsray's on-disk caches (weight digests, S3 bundles) go to a throw-away folder, never the user's
# ~/.cache/lsray; set at import so Ray nodes the tests start inherit it too.
_CACHE = tempfile.TemporaryDirectory(prefix="lsray-test-cache-")
os.environ.setdefault("LSRAY_CACHE_DIR", _CACHE.name)


def parity_root() -> Path:
    """The upstream parity fixtures, read in place (never copied into the repo)."""
    return Path(os.environ.get("LSRAY_PARITY_FIXTURES", REPO.parent / "shared" / "fixtures" / "latentsync"))


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    root = parity_root()
    if not (root / "unet_small" / "config.json").is_file():
        pytest.fail(f"LatentSync parity fixtures not found at {root} (set LSRAY_PARITY_FIXTURES)")
    return root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, parity_dir: Path) -> Path:
    """A converted lsray bundle of the small parity UNet + Whisper and a tiny random VAE
    (LatentSync's mask), built once per session; load it with ``lsray.models.load_bundle``."""
    from bundles import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny", parity_dir)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """The session's Ray cluster: a head (CPU stages, dashboard for job submission) + an
    'accelerator' node, all on 127.0.0.1; the driver (this process) is connected to it."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # Submitted jobs run `python -m lsray.batch.entrypoint` through the head's PATH: make that the
    # test venv's python, as an activated venv (or a cluster image) would.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    import ray
    from ray.cluster_utils import Cluster

    port = _free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "node_ip_address": "127.0.0.1", "num_cpus": 3, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": port, "object_store_memory": 400 * 1024 * 1024,
    })
    # Its own runtime_env directory, as on a separate machine: two nodes unpacking a job's
    # working_dir into one shared folder replace it under the running driver's feet.
    accel = cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1, resources={"accelerator": 1},
                             object_store_memory=200 * 1024 * 1024, runtime_env_dir_name="runtime_resources_accel")
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    cluster.dashboard_url = f"http://127.0.0.1:{port}"
    cluster.accel_node_id = accel.node_id
    cluster.head_node_id = cluster.head_node.node_id
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
