"""Shared test fixtures: where the LatentSync parity data lives, a tiny bundle, the test
session's one Ray cluster (every Ray test module uses it), and the live Serve application
(``service``: tiny bundle, small limits, API key ``serving.KEY``) that tests/test_serve.py
exercises over HTTP."""

from __future__ import annotations

import http.server
import os
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from serving import KEY, SECRET, Hooks, free_port

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

    port = free_port()
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


# ----------------------------------------------------------------------------------------------
# the live service (per test module that uses it)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hook_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    from talking import write_dub, write_face_clip

    root = tmp_path_factory.mktemp("serve-inputs")
    d = {"root": root}
    d["video"] = write_face_clip(root / "face.mp4", frames=32)
    d["audio"] = write_dub(root / "dub.wav", 32 / 25)
    d["video16"] = write_face_clip(root / "face16.mp4", frames=16)
    d["audio16"] = write_dub(root / "dub16.wav", 16 / 25)
    d["long_audio"] = write_dub(root / "long.wav", 4.0)
    d["long_video"] = write_face_clip(root / "long.mp4", frames=63, size=(64, 48))  # 2.5 s
    d["big_video"] = write_face_clip(root / "big.mp4", frames=2, size=(800, 600))
    d["text"] = root / "notes.mp4"
    d["text"].write_text("this is not a video\n" * 20)
    d["junk"] = root / "junk.mp4"
    d["junk"].write_bytes(bytes(range(256)) * 8)
    return d


@pytest.fixture(scope="module")
def service(ray_cluster, tiny_bundle, media, hook_server, tmp_path_factory):
    """Serve on 127.0.0.1 from deployments/serve.yaml with test overrides; yields the base URL."""
    import ray
    from ray import serve

    from lsray.serve import deploy

    assert ray.is_initialized()  # the session cluster (conftest.ray_cluster)
    one = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 2}}
    config = deploy.with_overrides(
        deploy.load_config(),
        http={"host": "127.0.0.1", "port": free_port()},
        args={
            "bundle": str(tiny_bundle), "storage_roots": [str(media["root"])], "api_keys": [KEY],
            "output_root": str(tmp_path_factory.mktemp("serve-outputs")), "torch_threads": 1,
            "job_store": {"url": f"sqlite:///{tmp_path_factory.mktemp('serve-jobs') / 'jobs.db'}"},  # this session's own
            "encode_preset": "ultrafast",
            "limits": {"max_upload_bytes": 3_000_000, "max_width": 640, "max_height": 480, "max_duration_s": 3.0,
                       "sync_max_duration_s": 2.0, "max_batch_clips": 3, "max_inflight_dubs": 2,
                       "max_running_jobs": 1, "max_pending_jobs": 2, "retry_after_s": 2},
            "webhooks": {"allowlist": [f"http://127.0.0.1:{hook_server}"], "allow_http": True, "secret": SECRET,
                         "backoff_s": 0.2, "max_attempts": 3},
        },
        deployments={
            "Ingress": {"max_ongoing_requests": 4, "max_queued_requests": 2, **one},
            "PrepareDeployment": one, "AudioDeployment": one, "SampleDeployment": one, "RenderDeployment": one,
        },
    )
    url = deploy.deploy(config)
    yield url
    serve.shutdown()
