"""``lsray k8s render``, ``lsray k8s generate`` and ``lsray fetch-bundle``."""

from __future__ import annotations

import argparse
import sys

from lsray.errors import LsrayError


def render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overlay", required=True, choices=("dev", "prod"),
                   help="an overlay of the packaged manifests (k8s/overlays/<overlay> in the repo)")
    p.add_argument("--validate", action="store_true",
                   help="also validate every manifest offline (KubeRay CRDs shipped with lsray, core kinds)")
    p.add_argument("--crds", metavar="DIR", help="folder holding other KubeRay CRD yamls (for --validate; default: the ones lsray ships)")


def render(args: argparse.Namespace) -> int:
    from lsray.k8s import K8S_DIR, kustomize, serve_config

    stale = serve_config.stale_files()
    if stale:
        raise LsrayError("generated serveConfigV2 is stale (deployments/serve.yaml or serve-overrides.yaml changed): "
                         f"{', '.join(map(str, stale))}; run `lsray k8s generate`")
    docs = kustomize.render(K8S_DIR / "overlays" / args.overlay)
    if args.validate:
        from lsray.k8s import validate

        problems = [e for d in docs for e in validate.errors(d, args.crds or validate.CRD_DIR)]
        if problems:
            raise LsrayError("invalid manifests:\n  " + "\n  ".join(problems))
    sys.stdout.write(kustomize.to_yaml(docs))
    return 0


def generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale, write nothing")


def generate(args: argparse.Namespace) -> int:
    from lsray.k8s import serve_config

    if args.check:
        stale = serve_config.stale_files()
        for path in stale:
            print(f"stale: {path}")
        return 1 if stale else 0
    for path in serve_config.write_generated():
        print(f"wrote {path}")
    return 0


def fetch_bundle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", metavar="URI", help="s3://bucket/prefix of a model bundle")
    p.add_argument("dest", metavar="DIR", help="local directory to fill (replaced atomically; kept when up to date)")


def fetch_bundle(args: argparse.Namespace) -> int:
    from lsray.storage.bundle_cache import sync_bundle

    print(f"bundle {args.uri} -> {sync_bundle(args.uri, args.dest)}")
    return 0
