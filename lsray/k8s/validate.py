"""Offline validation of rendered manifests.

KubeRay kinds (RayCluster, RayJob, RayService) are checked against the ``openAPIV3Schema`` of the
CRDs (default: ``crds/`` beside this module: KubeRay's Apache-2.0 CRD files, shipped as package
data so an installed lsray validates without a checkout; ``crds/SOURCE.txt`` names the KubeRay
commit, and a test keeps them equal to the project's ``../shared/k8s-schemas``), converted to JSON Schema the way the API server
reads a structural schema: an object accepts only its declared ``properties`` (plus
``additionalProperties`` when given) unless it says ``x-kubernetes-preserve-unknown-fields:
true``; ``x-kubernetes-int-or-string`` accepts an integer or a string; ``x-kubernetes-embedded-
resource`` objects may carry apiVersion/kind/metadata. ``metadata`` itself (free-form in a CRD)
is checked against ObjectMeta.

Core kinds (Secret, ServiceAccount, PersistentVolumeClaim, ConfigMap, Service, and ObjectMeta
everywhere) are checked against JSON Schemas derived from the ``kubernetes`` Python client's
model classes (``openapi_types`` + ``attribute_map``: every field with its type, unknown fields
rejected; required fields from the OpenAPI spec below). PodMonitor (``monitoring.coreos.com/v1``,
not in the client) has a small hand-written schema covering the fields prometheus-operator
documents for it; unknown fields are rejected there too.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

CRD_DIR = Path(__file__).resolve().parent / "crds"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml",
             "RayService": "ray.io_rayservices.yaml"}
CORE_KINDS = {("v1", "Secret"): "V1Secret", ("v1", "ServiceAccount"): "V1ServiceAccount",
              ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim", ("v1", "ConfigMap"): "V1ConfigMap",
              ("v1", "Service"): "V1Service", ("v1", "Namespace"): "V1Namespace"}
#: Required fields the client's models do not expose (from the Kubernetes OpenAPI spec).
REQUIRED = {"V1ServicePort": ["port"], "V1Container": ["name"], "V1KeyToPath": ["key", "path"],
            "V1EnvVar": ["name"], "V1Volume": ["name"], "V1VolumeMount": ["name", "mountPath"],
            "V1ContainerPort": ["containerPort"], "V1SecretKeySelector": ["key"], "V1Toleration": []}


# ---------------------------------------------------------------------------------------------
# CRD openAPIV3Schema -> JSON Schema
# ---------------------------------------------------------------------------------------------
def crd_to_jsonschema(node: Any) -> Any:
    """Structural OpenAPI v3 schema -> Draft 2020-12 JSON Schema with unknown fields rejected."""
    if isinstance(node, list):
        return [crd_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "example", "externalDocs", "nullable"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: crd_to_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = crd_to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [crd_to_jsonschema(v) for v in value]
        else:
            out[key] = value
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if node.get("type") == "object" and not preserve:
        if node.get("x-kubernetes-embedded-resource"):
            props = out.setdefault("properties", {})
            for field in ("apiVersion", "kind"):
                props.setdefault(field, {"type": "string"})
            props.setdefault("metadata", {"type": "object"})
        if "additionalProperties" not in out:
            out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_schema(kind: str, version: str = "v1", crd_dir: str = str(CRD_DIR)) -> dict[str, Any]:
    path = Path(crd_dir) / CRD_FILES[kind]
    with open(path, encoding="utf-8") as fh:
        crd = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (spec,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = crd_to_jsonschema(spec["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"$ref": "#/$defs/V1ObjectMeta"}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version}"}
    schema["properties"]["kind"] = {"const": kind}
    schema["$defs"] = core_defs()
    return schema


# ---------------------------------------------------------------------------------------------
# core kinds from the kubernetes client's models
# ---------------------------------------------------------------------------------------------
_PRIMITIVES = {"str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"},
               "bool": {"type": "boolean"}, "datetime": {"type": "string"}, "date": {"type": "string"},
               "object": {}, "bytearray": {"type": "string"}, "bytes": {"type": "string"}}


def _type_schema(type_name: str, defs: dict[str, Any]) -> dict[str, Any]:
    m = re.fullmatch(r"(?:list|List)\[(.+)\]", type_name)
    if m:
        return {"type": "array", "items": _type_schema(m.group(1), defs)}
    m = re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name)
    if m:
        return {"type": "object", "additionalProperties": _type_schema(m.group(1) or m.group(2), defs)}
    if type_name in _PRIMITIVES:
        return dict(_PRIMITIVES[type_name])
    _model_schema(type_name, defs)
    return {"$ref": f"#/$defs/{type_name}"}


def _model_schema(name: str, defs: dict[str, Any]) -> None:
    if name in defs:
        return
    import kubernetes.client.models as models

    cls = getattr(models, name)
    defs[name] = {}  # placeholder against recursion (JSONSchemaProps refers to itself)
    props = {cls.attribute_map[attr]: _type_schema(t, defs) for attr, t in cls.openapi_types.items()}
    if "IntOrString" in name or name in ("V1IntOrString",):
        defs[name] = {"type": ["integer", "string"]}
        return
    defs[name] = {"type": "object", "properties": props, "additionalProperties": False}
    if REQUIRED.get(name):
        defs[name]["required"] = REQUIRED[name]


def _fix_int_or_string(defs: dict[str, Any]) -> None:
    # The client types IntOrString fields (port names/numbers, quantities) as "object"/"str".
    for model, field in (("V1ServicePort", "targetPort"), ("V1HTTPGetAction", "port"), ("V1TCPSocketAction", "port")):
        if model in defs:
            defs[model]["properties"][field] = {"type": ["integer", "string"]}
    for model in ("V1ResourceRequirements", "V1VolumeResourceRequirements"):
        if model in defs:
            for field in ("limits", "requests"):
                defs[model]["properties"][field] = {"type": "object",
                                                    "additionalProperties": {"type": ["integer", "string"]}}


@functools.lru_cache(maxsize=1)
def core_defs() -> dict[str, Any]:
    """JSON Schemas of the core models lsray's manifests use (and everything they reference)."""
    defs: dict[str, Any] = {}
    for model in {*CORE_KINDS.values(), "V1ObjectMeta"}:
        _model_schema(model, defs)
    _model_schema("V1PodTemplateSpec", defs)
    _fix_int_or_string(defs)
    defs["V1ObjectMeta"]["required"] = ["name"]
    return defs


def core_schema(api_version: str, kind: str) -> dict[str, Any]:
    name = CORE_KINDS[(api_version, kind)]
    schema = {"$ref": f"#/$defs/{name}", "$defs": core_defs()}
    return schema


# ---------------------------------------------------------------------------------------------
# PodMonitor (monitoring.coreos.com/v1): the documented fields lsray uses and their neighbours
# ---------------------------------------------------------------------------------------------
_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                    "required": ["key", "operator"], "properties": {
                                                        "key": {"type": "string"},
                                                        "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                                        "values": {"type": "array", "items": {"type": "string"}}}}}}}
_SECRET_REF = {"type": "object", "additionalProperties": False, "required": ["key"],
               "properties": {"key": {"type": "string"}, "name": {"type": "string"}, "optional": {"type": "boolean"}}}
_RELABEL = {"type": "object", "additionalProperties": False, "properties": {
    "action": {"type": "string"}, "modulus": {"type": "integer"}, "regex": {"type": "string"},
    "replacement": {"type": "string"}, "separator": {"type": "string"},
    "sourceLabels": {"type": "array", "items": {"type": "string"}}, "targetLabel": {"type": "string"}}}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
PODMONITOR_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"},
        "metadata": {"$ref": "#/$defs/V1ObjectMeta"},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector"], "properties": {
            "jobLabel": {"type": "string"},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "sampleLimit": {"type": "integer"},
            "selector": _SELECTOR,
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "podMetricsEndpoints": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                               "properties": {
                "port": {"type": "string"}, "portNumber": {"type": "integer"},
                "path": {"type": "string"}, "scheme": {"enum": ["http", "https"]},
                "interval": _DURATION, "scrapeTimeout": _DURATION, "honorLabels": {"type": "boolean"},
                "params": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                "authorization": {"type": "object", "additionalProperties": False, "properties": {
                    "type": {"type": "string"}, "credentials": _SECRET_REF}},
                "relabelings": {"type": "array", "items": _RELABEL},
                "metricRelabelings": {"type": "array", "items": _RELABEL}}}}}}}}


def podmonitor_schema() -> dict[str, Any]:
    return {**PODMONITOR_SCHEMA, "$defs": core_defs()}


# ---------------------------------------------------------------------------------------------
def schema_for(doc: dict[str, Any], crd_dir: str | Path = CRD_DIR) -> dict[str, Any]:
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if kind in CRD_FILES and str(api).startswith("ray.io/"):
        return crd_schema(kind, str(api).split("/", 1)[1], str(crd_dir))
    if (api, kind) in CORE_KINDS:
        return core_schema(api, kind)
    if (api, kind) == ("monitoring.coreos.com/v1", "PodMonitor"):
        return podmonitor_schema()
    raise KeyError(f"no schema for {api} {kind}")


def errors(doc: dict[str, Any], crd_dir: str | Path = CRD_DIR) -> list[str]:
    """Validation errors of one manifest (empty: valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema_for(doc, crd_dir))
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    return [f"{name}: /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
