"""Kubernetes operations: KubeRay manifests rendered from ``manifests/`` (a kustomize base + overlays).

The manifests are package data (``lsray/k8s/manifests``; the repository's ``k8s/`` is a symlink to
it), so ``lsray k8s render`` works from an installed wheel as well as from a checkout.

- :mod:`lsray.k8s.kustomize`    the subset of kustomize that ``lsray k8s render`` implements
                                (kubectl kustomize renders the same directories identically);
- :mod:`lsray.k8s.serve_config` the RayService ``serveConfigV2``, generated from
                                ``lsray/serve/serve.yaml`` (the single source of truth);
- :mod:`lsray.k8s.validate`     offline validation: KubeRay CRD openAPIV3Schemas and core kinds;
- :mod:`lsray.k8s.cli`          ``lsray k8s render``, ``lsray k8s generate``, ``lsray fetch-bundle``.

No Ray import anywhere here: rendering is text work.
"""

from pathlib import Path

#: The manifests (base, overlays, training, grafana); ``k8s/`` in the repository links here.
K8S_DIR = Path(__file__).resolve().parent / "manifests"
OVERLAYS = ("dev", "prod")
