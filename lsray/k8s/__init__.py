"""Kubernetes operations: KubeRay manifests rendered from ``k8s/`` (a kustomize base + overlays).

- :mod:`lsray.k8s.kustomize`    the subset of kustomize that ``lsray k8s render`` implements
                                (kubectl kustomize renders the same directories identically);
- :mod:`lsray.k8s.serve_config` the RayService ``serveConfigV2``, generated from
                                ``deployments/serve.yaml`` (the single source of truth);
- :mod:`lsray.k8s.validate`     offline validation: KubeRay CRD openAPIV3Schemas and core kinds;
- :mod:`lsray.k8s.cli`          ``lsray k8s render``, ``lsray k8s generate``, ``lsray fetch-bundle``.

No Ray import anywhere here: rendering is text work.
"""

from pathlib import Path

#: The repository's k8s/ folder (base, overlays, training, grafana).
K8S_DIR = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = ("dev", "prod")
