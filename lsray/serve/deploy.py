"""Config file -> running application, the way ``serve run deployments/serve.yaml`` does it.

``lsray/serve/serve.yaml`` (package data, so an installed lsray finds it; ``deployments/serve.yaml``
in the repository is a symlink to it) is the single source of truth, also of the KubeRay
RayService's ``serveConfigV2`` (:mod:`lsray.k8s.serve_config`). ``lsray serve``, the tests and the
benchmark read it, apply a few overrides (bundle path, port, keys, sizes) and hand the validated
``ServeDeploySchema`` to Serve's controller exactly like the ``serve run`` CLI.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

import yaml

# Read by Ray when it is imported and when it starts its services: set before either (the
# importers of this module get loopback-only Ray; see init_local_ray).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

DEFAULT_CONFIG = Path(__file__).resolve().parent / "serve.yaml"
APP_NAME = "lsray"


def load_config(path: str | Path = DEFAULT_CONFIG) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _deep_update(base: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def with_overrides(config: dict[str, Any], *, args: dict | None = None, deployments: dict[str, dict] | None = None,
                   http: dict | None = None) -> dict[str, Any]:
    """A copy of ``config`` with the lsray app's ``args`` and per-deployment options patched."""
    cfg = copy.deepcopy(config)
    app = next(a for a in cfg["applications"] if a["name"] == APP_NAME)
    _deep_update(app.setdefault("args", {}), args or {})
    by_name = {d["name"]: d for d in app.setdefault("deployments", [])}
    for name, patch in (deployments or {}).items():
        if name not in by_name:
            by_name[name] = {"name": name}
            app["deployments"].append(by_name[name])
        _deep_update(by_name[name], patch)
    if http:
        cfg.setdefault("http_options", {}).update(http)
    return cfg


def validate(config: dict[str, Any]):
    from ray.serve.schema import ServeDeploySchema

    return ServeDeploySchema.model_validate(config)


def init_local_ray(num_cpus: int | None = None, object_store_memory: int = 300 * 1024 * 1024) -> None:
    """A new local Ray on loopback only (every service on 127.0.0.1); ``address="local"`` so a
    cluster someone else started on this machine is never joined."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # for the processes Ray spawns
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: ray may have been imported before us
    if not ray.is_initialized():
        ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=num_cpus, object_store_memory=object_store_memory,
                 include_dashboard=False, namespace="serve", log_to_driver=False)


def deploy(config: dict[str, Any], timeout_s: float = 300.0) -> str:
    """Start Serve with the config's http_options and deploy its applications; wait until
    running. Returns the base URL of the lsray application."""
    from ray import serve
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions

    schema = validate(config)
    client = serve_api.serve_start(http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location,
                                   grpc_options=gRPCOptions(**schema.grpc_options.model_dump()))
    client.deploy_apps(schema, _blocking=False)
    deadline = time.monotonic() + timeout_s
    while True:
        status = serve.status().applications.get(APP_NAME)
        if status is not None and status.status == "RUNNING":
            break
        if status is not None and status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise RuntimeError(f"application {APP_NAME} {status.status}: {status.message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"application {APP_NAME} not running after {timeout_s:g} s: {status}")
        time.sleep(0.5)
    app = next(a for a in schema.applications if a.name == APP_NAME)
    http = schema.http_options
    return f"http://{http.host}:{http.port}{(app.route_prefix or '').rstrip('/')}"
