"""The small subset of kustomize that ``lsray k8s render`` implements (no Go binary needed).

A kustomization directory is rendered exactly as ``kubectl kustomize DIR`` renders it, for the
fields this repository uses — anything else in a ``kustomization.yaml`` is an error, never
silently ignored:

- ``resources``: YAML files (multi-document) or directories holding a ``kustomization.yaml``
  (rendered recursively, in order);
- ``namespace``: set on every namespaced object (cluster-scoped kinds are left alone);
- ``labels`` (``pairs`` + ``includeSelectors: false``): added to every object's metadata.labels;
- ``images``: ``name`` -> ``newName`` / ``newTag`` on every ``image:`` field of any container;
- ``patches``: ``path`` + ``target`` (``kind``/``name``), the patch file being an RFC 6902 JSON
  patch (a YAML list of ``add``/``replace``/``remove``/``test`` ops). JSON 6902 only, on purpose:
  strategic-merge patches merge lists by key only for built-in kinds, and on custom resources
  (RayCluster's ``workerGroupSpecs``) kustomize replaces whole lists — a JSON patch means the
  same thing to both renderers.

Order of operations follows kustomize: resources, then patches, then namespace/labels/images.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from lsray.errors import LsrayError

KUSTOMIZATION = "kustomization.yaml"
SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
                  "StorageClass", "PriorityClass"}


class KustomizeError(LsrayError):
    """A kustomization this renderer cannot render (or a patch that does not apply)."""


Manifest = dict[str, Any]


def load_documents(path: Path) -> list[Manifest]:
    with open(path, encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


def render(directory: str | Path) -> list[Manifest]:
    """The manifests of the kustomization in ``directory``."""
    root = Path(directory)
    kfile = root / KUSTOMIZATION
    if not kfile.is_file():
        raise KustomizeError(f"{root}: no {KUSTOMIZATION}")
    spec = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)} (see lsray.k8s.kustomize)")
    docs: list[Manifest] = []
    for entry in spec.get("resources", []):
        target = (root / entry).resolve()
        docs.extend(render(target) if target.is_dir() else load_documents(target))
    for patch in spec.get("patches", []):
        _apply_patch_entry(root, patch, docs)
    if "namespace" in spec:
        for doc in docs:
            if doc.get("kind") not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for label_set in spec.get("labels", []):
        if label_set.get("includeSelectors"):
            raise KustomizeError(f"{kfile}: labels.includeSelectors is not supported")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label_set.get("pairs", {}))
    for image in spec.get("images", []):
        for doc in docs:
            _set_images(doc, image)
    _check_unique(docs, kfile)
    return docs


def _check_unique(docs: list[Manifest], where: Path) -> None:
    seen = set()
    for doc in docs:
        key = (doc.get("kind"), doc.get("metadata", {}).get("namespace"), doc.get("metadata", {}).get("name"))
        if key in seen:
            raise KustomizeError(f"{where}: duplicate resource {key}")
        seen.add(key)


def _apply_patch_entry(root: Path, entry: dict[str, Any], docs: list[Manifest]) -> None:
    if set(entry) - {"path", "target"} or "path" not in entry or "target" not in entry:
        raise KustomizeError(f"{root}: patches need exactly 'path' and 'target' (JSON 6902), got {sorted(entry)}")
    ops = yaml.safe_load((root / entry["path"]).read_text(encoding="utf-8"))
    if not isinstance(ops, list):
        raise KustomizeError(f"{root / entry['path']}: a JSON 6902 patch is a list of operations")
    target = entry["target"]
    if set(target) - {"kind", "name", "group", "version"}:
        raise KustomizeError(f"{root}: patch target supports kind/name/group/version only")
    matched = [d for d in docs if d.get("kind") == target.get("kind", d.get("kind"))
               and d.get("metadata", {}).get("name") == target.get("name", d.get("metadata", {}).get("name"))]
    if not matched:
        raise KustomizeError(f"{root / entry['path']}: target {target} matches no resource")
    for doc in matched:
        apply_json_patch(doc, ops)


# ---------------------------------------------------------------------------------------------
# RFC 6902
# ---------------------------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list, token: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit():
        raise KustomizeError(f"bad list index {token!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not for_add):
        raise KustomizeError(f"list index {i} out of range")
    return i


def _walk(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise KustomizeError(f"path /{'/'.join(tokens)} does not exist")
    return node


def apply_json_patch(doc: Manifest, ops: list[dict[str, Any]]) -> None:
    """Apply RFC 6902 ``add``/``replace``/``remove``/``test`` operations in place."""
    for op in ops:
        kind, tokens = op.get("op"), _pointer(op.get("path", ""))
        if not tokens:
            raise KustomizeError("patching the document root is not supported")
        parent, last = _walk(doc, tokens[:-1]), tokens[-1]
        if kind == "add":
            value = copy.deepcopy(op["value"])
            if isinstance(parent, list):
                parent.insert(_index(parent, last, for_add=True), value)
            else:
                parent[last] = value
        elif kind == "replace":
            _walk(doc, tokens)  # must exist
            if isinstance(parent, list):
                parent[_index(parent, last, for_add=False)] = copy.deepcopy(op["value"])
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            _walk(doc, tokens)
            if isinstance(parent, list):
                del parent[_index(parent, last, for_add=False)]
            else:
                del parent[last]
        elif kind == "test":
            if _walk(doc, tokens) != op["value"]:
                raise KustomizeError(f"test failed at {op['path']}")
        else:
            raise KustomizeError(f"unsupported JSON patch op {kind!r}")


def _set_images(node: Any, image: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str) and _image_name(value) == image["name"]:
                name = image.get("newName", image["name"])
                tag = image.get("newTag", value[len(_image_name(value)) + 1:] if ":" in value.rsplit("/", 1)[-1] else "")
                node[key] = f"{name}:{tag}" if tag else name
            else:
                _set_images(value, image)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, image)


def _image_name(ref: str) -> str:
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def to_yaml(docs: list[Manifest]) -> str:
    """Multi-document YAML, keys in the order written (like kubectl kustomize's output, unsorted)."""
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False, width=120) for d in docs)
