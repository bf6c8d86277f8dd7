"""Model bundles on S3, synchronised to a local cache directory.

``lsray fetch-bundle s3://bucket/bundles/name DIR`` (the pods' initContainer) and the ``s3``
resolver of :func:`lsray.bundle.resolve_bundle` both call :func:`sync_bundle`: every object
under the prefix is copied to ``DIR`` keeping its relative path. The copy is made in
``DIR.partial-<pid>`` and renamed onto ``DIR`` when complete, so a reader sees the whole bundle
or none. ``DIR/.lsray-source.json`` records the objects' identities (ETag + size): when they are
unchanged, a second sync downloads nothing (a restarted pod with a persistent cache starts fast).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from lsray.storage.digest import cache_root
from lsray.storage.errors import ObjectNotFoundError
from lsray.storage.operations import identity, list_prefix
from lsray.storage.s3_config import S3Config, default_s3_config
from lsray.storage.uri import is_s3_uri, parse_uri

MANIFEST = ".lsray-source.json"


def default_cache_root() -> Path:
    """``$LSRAY_BUNDLE_CACHE``, else ``bundles/`` in lsray's cache root (``$LSRAY_CACHE_DIR``, ``~/.cache/lsray``)."""
    return Path(os.environ.get("LSRAY_BUNDLE_CACHE") or cache_root() / "bundles")


def cache_dir_for(uri: str, root: Path | None = None) -> Path:
    loc = parse_uri(uri)
    return (root or default_cache_root()) / loc.bucket / loc.key.strip("/")


def sync_bundle(uri: str, dest: str | os.PathLike[str], config: S3Config | None = None) -> Path:
    """Copy every object under the S3 prefix ``uri`` into ``dest``; return ``dest``."""
    if not is_s3_uri(uri):
        raise ObjectNotFoundError(uri, "fetch-bundle takes an s3:// prefix")
    config = config or default_s3_config()
    prefix = uri.rstrip("/") + "/"
    objects = list_prefix(prefix, config)
    if not objects:
        raise ObjectNotFoundError(uri, "no objects under this prefix (is it a bundle?)")
    wanted = {o[len(prefix):]: identity(o, config) for o in objects}
    wanted = {rel: {"etag": ident.get("etag"), "size": ident.get("size")} for rel, ident in wanted.items()}
    dest = Path(dest)
    manifest = dest / MANIFEST
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text()) == {"source": uri, "objects": wanted}:
                return dest
        except ValueError:
            pass
    partial = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    loc = parse_uri(prefix)
    client = config.client()
    try:
        for rel in sorted(wanted):
            target = partial / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(loc.bucket, loc.key + rel, str(target))
        (partial / MANIFEST).write_text(json.dumps({"source": uri, "objects": wanted}, indent=1, sort_keys=True))
        if dest.exists():  # replace the stale copy (an emptyDir mount point itself is kept: swap its content)
            old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
            try:
                dest.rename(old)
            except OSError:  # a mount point cannot be renamed: empty it and move the new files in
                for child in dest.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
                for child in partial.iterdir():
                    child.rename(dest / child.name)
                partial.rmdir()
                return dest
            partial.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial.rename(dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dest


def resolve_s3_bundle(uri: str) -> Path:
    """The ``s3`` resolver of :func:`lsray.bundle.resolve_bundle`: sync into the cache."""
    return sync_bundle(uri, cache_dir_for(uri))
