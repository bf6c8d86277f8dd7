"""A model bundle's identity: what catalog fingerprints say a finished clip was made with.

It must change whenever the bundle would dub differently and only then, so it hashes the
*content* of every file the bundle is made of: ``config.json``, the UNet and teacher weights,
``whisper/``, ``phoneme/``, ``vae/`` (weights and their configs), the mask, any voice model folder,
whatever the format (safetensors, ``.pt``/``.pth``/``.bin``, JSON, PNG). Every file under the folder
counts, rather than a list of known kinds, so a file added later to the bundle layout cannot be
forgotten here; names starting with ``.`` (the S3 sync's ``.lsray-source.json``, ``.DS_Store``)
are bookkeeping and do not count. Files the config names outside the folder (an absolute
``voice.model_dir``, ``mask.file`` or ``lcm.teacher_unet``) count too.

Sizes or mtimes would not do: retrained weights of the same shape keep their size (finished clips
would be wrongly skipped), and a bundle synced into a fresh pod gets new mtimes (every clip would
be dubbed again). Hashing is paid once per file version thanks to :mod:`lsray.storage.digest`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator

from lsray.bundle.config import CONFIG_FILE, BundleConfig
from lsray.errors import MissingWeightError

MISSING = "missing"  # in place of a digest: a named path that is absent (its arrival changes the id)


def _walk(folder: Path) -> Iterator[tuple[str, Path]]:
    """(posix path relative to ``folder``, path) of every non-hidden file below it, links followed."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree: already walked
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and path.is_file():
                yield path.relative_to(folder).as_posix(), path


def _named_outside(config: BundleConfig, root: Path) -> dict[str, Path]:
    """Paths ``config.json`` names that lie outside the bundle folder (inside ones are walked anyway)."""
    named = {"voice.model_dir": config.voice.model_dir, "mask.file": config.mask.file,
             "lcm.teacher_unet": config.lcm.teacher_unet if config.lcm else None}
    inside = root.resolve()
    outside = {}
    for label, value in named.items():
        if value:
            path = (root / value).resolve()  # absolute values stay as they are
            if not path.is_relative_to(inside):
                outside[label] = path
    return outside


def identity_files(root: Path) -> dict[str, Path | None]:
    """label -> file whose content is part of the bundle's identity (None: a named path that is absent)."""
    config = BundleConfig.read(root / CONFIG_FILE)  # a clear error now rather than in every worker
    files: dict[str, Path | None] = dict(_walk(root))
    for label, path in _named_outside(config, root).items():
        if path.is_dir():
            files.update({f"<{label}>/{rel}": p for rel, p in _walk(path)})
        else:
            files[f"<{label}>"] = path if path.is_file() else None
    return files


def bundle_digest(root: Path) -> str:
    """sha256 hex over the (label, content sha256) of every identity file, in label order."""
    from lsray.storage.digest import file_digests

    files = identity_files(root)
    labels = sorted(files)
    present = [label for label in labels if files[label] is not None]
    digests = dict(zip(present, file_digests(files[label] for label in present)))
    h = hashlib.sha256()
    for label in labels:
        h.update(f"{label}\0{digests.get(label, MISSING)}\n".encode("utf-8"))
    return h.hexdigest()


def model_id(bundle: str | os.PathLike[str]) -> str:
    """``<folder name>:<16 hex of the content digest>``: the bundle's identity for fingerprints.

    Two copies of a bundle (another path, another pod) have the same id; changing one weight
    changes it. ``bundle`` is anything :func:`lsray.bundle.resolve_bundle` takes.
    """
    from lsray.bundle.load import resolve_bundle

    root = resolve_bundle(bundle)
    if not root.is_dir():
        raise MissingWeightError(root, "model bundle directory")
    return f"{root.name}:{bundle_digest(root)[:16]}"


__all__ = ["bundle_digest", "identity_files", "model_id"]
