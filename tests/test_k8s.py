"""k8s/: rendering, offline validation (KubeRay CRDs + core kinds), GPU placement, serveConfigV2,
RayJob entrypoints, the Grafana dashboard and the Dockerfile."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import re
import shlex
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from lsray.k8s import K8S_DIR, OVERLAYS, kustomize, serve_config, validate

REPO = Path(__file__).resolve().parents[1]
GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, kustomize.render(K8S_DIR / "overlays" / request.param)


def _cluster_specs(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    return {"RayCluster": [spec], "RayService": [spec.get("rayClusterConfig")],
            "RayJob": [spec.get("rayClusterSpec")]}.get(doc["kind"], [])


def _walk(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path + (k,), k, v
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))


# ------------------------------------------------------------------------------------------ validation
def test_the_shipped_crds_are_the_projects_kuberay_crds():
    """validate.CRD_DIR is package data (an installed lsray has no ../shared beside it); it must
    hold the same KubeRay CRDs as the project's ../shared/k8s-schemas, byte for byte."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "k8s-schemas"
    assert validate.CRD_DIR.is_relative_to(Path(validate.__file__).parent)
    for name in (*validate.CRD_FILES.values(), "SOURCE.txt"):
        assert (validate.CRD_DIR / name).read_bytes() == (shared / name).read_bytes(), name


def test_every_manifest_validates(rendered):
    overlay, docs = rendered
    kinds = {d["kind"] for d in docs}
    assert {"RayCluster", "RayService", "RayJob", "ServiceAccount", "ConfigMap", "PersistentVolumeClaim",
            "PodMonitor"} <= kinds
    problems = [e for d in docs for e in validate.errors(d)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where", [
    ("spec",), ("spec", "headGroupSpec"), ("spec", "workerGroupSpecs", 0),
    ("spec", "headGroupSpec", "template", "spec", "containers", 0),
    ("spec", "headGroupSpec", "template", "spec", "containers", 0, "resources"),
    ("spec", "autoscalerOptions"), ("metadata",),
])
def test_unknown_fields_are_rejected(where):
    (cluster,) = [d for d in kustomize.render(K8S_DIR / "overlays" / "prod") if d["kind"] == "RayCluster"]
    doc = copy.deepcopy(cluster)
    node = doc
    for key in where:
        node = node[key]
    node["notAField"] = 1
    assert any("notAField" in e for e in validate.errors(doc))


def test_core_kinds_reject_unknown_fields_and_wrong_types():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}}
    assert validate.errors(secret) == []
    assert validate.errors({**secret, "strngData": {}})
    assert validate.errors({**secret, "stringData": {"a": 1}})
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    assert validate.errors(pvc) == []
    assert validate.errors({**pvc, "spec": {"accessMode": "ReadWriteOnce"}})
    pm = next(d for d in kustomize.render(K8S_DIR / "base") if d["kind"] == "PodMonitor")
    bad = copy.deepcopy(pm)
    bad["spec"]["podMetricsEndpoints"][0]["targetPortt"] = 8080
    assert validate.errors(pm) == [] and validate.errors(bad)


def test_crd_conversion_honours_preserve_unknown_fields_and_int_or_string():
    schema = validate.crd_to_jsonschema({"type": "object", "properties": {
        "strict": {"type": "object", "properties": {"a": {"type": "string"}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "port": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}}}})
    import jsonschema

    v = jsonschema.Draft202012Validator(schema)
    assert v.is_valid({"strict": {"a": "x"}, "free": {"anything": {"goes": 1}}, "port": 80, "labels": {"k": "v"}})
    assert v.is_valid({"port": "http"})
    assert not v.is_valid({"strict": {"b": 1}})
    assert not v.is_valid({"extra": 1})
    assert not v.is_valid({"labels": {"k": 1}})
    # the real CRD: preserve-unknown-fields is where KubeRay says (e.g. pod template metadata is strict)
    crd = validate.crd_schema("RayCluster")
    assert crd["properties"]["spec"]["additionalProperties"] is False


# ------------------------------------------------------------------------------------------ GPUs, autoscaling
def test_gpu_requests_only_in_gpu_groups(rendered):
    overlay, docs = rendered
    hits = [(d["kind"], d["metadata"]["name"], path) for d in docs for path, key, _ in _walk(d) if key == GPU]
    if overlay == "dev":
        assert hits == []
        return
    assert hits, "prod has GPU groups"
    for kind, name, path in hits:
        assert "workerGroupSpecs" in path, (kind, name, path)
    gpu_groups = 0
    for doc in docs:
        for spec in _cluster_specs(doc):
            if spec is None:
                continue
            head = spec["headGroupSpec"]["template"]["spec"]
            assert GPU not in json.dumps(head)
            for group in spec["workerGroupSpecs"]:
                pod = group["template"]["spec"]
                has_gpu = GPU in json.dumps(group)
                assert has_gpu == group["groupName"].startswith("gpu"), (doc["metadata"]["name"], group["groupName"])
                if has_gpu:
                    gpu_groups += 1
                    res = pod["containers"][0]["resources"]
                    assert res["requests"][GPU] == res["limits"][GPU] >= 1
                    assert any(t["key"] == GPU for t in pod["tolerations"])
                    assert pod["nodeSelector"]
    kinds_with_gpu = {d["kind"] for d in docs if GPU in json.dumps(d)}
    assert kinds_with_gpu == {"RayCluster", "RayService", "RayJob"}
    assert gpu_groups >= 5  # cluster, service, three training jobs


def test_autoscaling_and_replicas(rendered):
    _, docs = rendered
    specs = [s for d in docs for s in _cluster_specs(d) if s is not None]
    assert specs
    for spec in specs:
        assert spec["enableInTreeAutoscaling"] is True
        assert spec["autoscalerOptions"]["version"] == "v2"
        for group in spec["workerGroupSpecs"]:
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_pods_get_s3_credentials_and_the_bundle_cache(rendered):
    overlay, docs = rendered
    for doc in docs:
        for spec in _cluster_specs(doc):
            if spec is None:
                continue
            groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
            for group in groups:
                pod = group["template"]["spec"]
                assert pod["serviceAccountName"] == "lsray"
                (init,) = pod["initContainers"]
                assert init["command"][:2] == ["lsray", "fetch-bundle"]
                assert {"secretRef": {"name": "lsray-s3", "optional": True}} in init["envFrom"]
                mount = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
                assert mount["bundle-cache"] == "/models"
                assert "bundle-cache" in {v["name"] for v in pod["volumes"]}
                ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
                assert ports["metrics"] == 8080 == int(group["rayStartParams"]["metrics-export-port"])
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    if overlay == "prod":
        assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"] and not secrets
    else:
        assert "lsray-s3" in secrets


# ------------------------------------------------------------------------------------------ serveConfigV2
def test_serve_config_is_generated_from_serve_yaml(rendered):
    overlay, docs = rendered
    assert serve_config.stale_files() == [], "run `lsray k8s generate`"
    (service,) = [d for d in docs if d["kind"] == "RayService"]
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(config)
    serve_config.validate_serve_config(config)
    assert config == serve_config.build_serve_config(serve_config.layers_for(overlay))
    source = yaml.safe_load(serve_config.SERVE_YAML.read_text())
    names = lambda c: [d["name"] for d in c["applications"][0]["deployments"]]  # noqa: E731
    assert names(config) == names(source)
    assert config["applications"][0]["import_path"] == source["applications"][0]["import_path"]
    assert config["http_options"]["host"] == "0.0.0.0"
    sample = next(d for d in config["applications"][0]["deployments"] if d["name"] == "SampleDeployment")
    assert (sample["ray_actor_options"].get("num_gpus", 0) > 0) == (overlay == "prod")


def test_generator_follows_serve_yaml(tmp_path):
    source = yaml.safe_load(serve_config.SERVE_YAML.read_text())
    source["applications"][0]["args"]["encode_preset"] = "slow"
    source["applications"][0]["deployments"][0]["max_ongoing_requests"] = 3
    edited = tmp_path / "serve.yaml"
    edited.write_text(yaml.safe_dump(source))
    config = serve_config.build_serve_config(serve_config.layers_for("prod"), serve_yaml=edited)
    assert config["applications"][0]["args"]["encode_preset"] == "slow"
    assert config["applications"][0]["deployments"][0]["max_ongoing_requests"] == 3
    bad = tmp_path / "over.yaml"
    bad.write_text("deployments: {NoSuchDeployment: {num_replicas: 2}}\n")
    with pytest.raises(serve_config.ServeConfigError, match="NoSuchDeployment"):
        serve_config.build_serve_config([bad])


# ------------------------------------------------------------------------------------------ RayJobs
def test_rayjob_entrypoints_exist_and_parse():
    docs = kustomize.render(K8S_DIR / "overlays" / "prod")
    jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "RayJob"}
    assert set(jobs) == {"lsray-dub-catalog", "lsray-train-stage2", "lsray-distill-lcm", "lsray-train-syncnet"}
    import argparse

    from lsray.batch.cli import add_job_arguments

    for name, job in jobs.items():
        argv = shlex.split(job["spec"]["entrypoint"])
        yaml.safe_load(job["spec"]["runtimeEnvYAML"])
        if name == "lsray-dub-catalog":  # a module of the installed package, as `lsray submit` sends it
            assert argv[:3] == ["python", "-m", "lsray.batch.entrypoint"]
            assert importlib.util.find_spec(argv[2]) is not None
            p = argparse.ArgumentParser()
            add_job_arguments(p)
            args = p.parse_args(argv[3:])
            assert args.model == "/models/lsray/bundle" and args.config == "/etc/lsray/stages.yaml"
            assert job["spec"]["clusterSelector"] == {"ray.io/cluster": "lsray"}
        else:
            assert argv[0] == "python" and argv[1].startswith("/app/jobs/")
            assert (REPO / argv[1].removeprefix("/app/")).is_file()
            cfg = yaml.safe_load((REPO / argv[argv.index("--config") + 1].removeprefix("/app/")).read_text())
            (group,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
            assert group["replicas"] == cfg["ray"]["num_workers"]
            assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_stage_configs_in_configmaps_load(tmp_path):
    from lsray.batch.config import load_batch_config

    for overlay in OVERLAYS:
        docs = kustomize.render(K8S_DIR / "overlays" / overlay)
        stages = next(d for d in docs if d["metadata"]["name"] == "lsray-stages")["data"]["stages.yaml"]
        path = tmp_path / f"stages-{overlay}.yaml"
        path.write_text(stages)
        cfg = load_batch_config(path)
        assert (cfg.sample.num_gpus > 0) == (overlay == "prod")


# ------------------------------------------------------------------------------------------ CLI, kustomize subset
def test_cli_render_prints_multidoc_yaml():
    from lsray.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["k8s", "render", "--overlay", "prod"]) == 0
    docs = [d for d in yaml.safe_load_all(out.getvalue()) if d]
    assert docs == kustomize.render(K8S_DIR / "overlays" / "prod")
    assert all(d["metadata"].get("namespace") == "lsray" for d in docs)


def test_kustomizations_are_plain_kustomize():
    for kfile in K8S_DIR.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kfile.read_text())
        assert spec["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and spec["kind"] == "Kustomization"
        assert set(spec) <= kustomize.SUPPORTED_KEYS
        for patch in spec.get("patches", []):
            assert isinstance(yaml.safe_load((kfile.parent / patch["path"]).read_text()), list)


def test_json_patch_ops():
    doc = {"a": {"b": [1, 2], "c/d": 1}}
    kustomize.apply_json_patch(doc, [{"op": "add", "path": "/a/b/-", "value": 3},
                                     {"op": "add", "path": "/a/b/0", "value": 0},
                                     {"op": "replace", "path": "/a/c~1d", "value": 2},
                                     {"op": "remove", "path": "/a/b/1"},
                                     {"op": "test", "path": "/a/b", "value": [0, 2, 3]}])
    assert doc == {"a": {"b": [0, 2, 3], "c/d": 2}}
    with pytest.raises(kustomize.KustomizeError):
        kustomize.apply_json_patch(doc, [{"op": "replace", "path": "/a/missing", "value": 1}])
    with pytest.raises(kustomize.KustomizeError):
        kustomize.apply_json_patch(doc, [{"op": "move", "from": "/a", "path": "/b"}])


# ------------------------------------------------------------------------------------------ monitoring
def _code_metric_names() -> set[str]:
    from lsray.batch.metrics import METRIC_NAMES
    from lsray.serve.api import REGISTRY

    return {_base(n) for n in METRIC_NAMES} | {_base(m.name) for m in REGISTRY.collect()}


def _base(name: str) -> str:
    name = re.sub(r"^ray_", "", name)
    name = re.sub(r"_(bucket|sum|count)$", "", name)
    return re.sub(r"_total$", "", name)


def test_dashboard_metrics_exist_in_code():
    dash = json.loads((K8S_DIR / "grafana" / "lsray-dashboard.json").read_text())
    known = _code_metric_names()
    used = set()
    for panel in dash["panels"]:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, panel["title"]
        names = {n for e in exprs for n in re.findall(r"\b(?:ray_)?lsray_\w+", e)}
        assert names, panel["title"]
        for n in names:
            assert _base(n) in known, f"{panel['title']}: {n} is not a metric lsray exports"
        used |= {_base(n) for n in names}
    assert {"lsray_batch_frames", "lsray_batch_stage_seconds", "lsray_http_requests", "lsray_dub_seconds"} <= used


# ------------------------------------------------------------------------------------------ Dockerfile
def test_dockerfile_structure():
    text = (REPO / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0].startswith("FROM python:3.11-slim")
    assert re.search(r"pip install .*(/app|\.)\[?", text) or "scripts/setup.sh" in text
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] not in ("root", "0")
    exposed = {int(p) for ln in lines if ln.startswith("EXPOSE") for p in ln.split()[1:]}
    assert {8000, 8265, 8080} <= exposed
    assert not re.search(r"\.(safetensors|pt|ckpt|bin)\b", text)  # no weights baked in
    assert "wget" in text  # KubeRay's probes
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignore and "**/*.safetensors" in ignore
