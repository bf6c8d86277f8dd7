"""Clip fingerprints: what a finished output was made from, so reruns can skip finished clips.

The fingerprint hashes cheap identities of the inputs (local: absolute path + size + mtime_ns;
S3: ETag + size from ``head_object``; the bytes are never read) with the resolved options, the
model id and the run's settings. Any change to an input file, an option, the model or a setting
changes it; nothing else does. The model id is the one identity made from content
(:func:`lsray.bundle.identity.model_id`): retrained weights keep their size, and a bundle copied
into a fresh pod gets new mtimes.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from lsray.storage.operations import identity
from lsray.storage.s3_config import S3Config

from .row import CatalogRow

# Bump when the payload's layout or meaning changes, so old markers stop matching.
# 2: model_id hashes the bundle's file contents (1 hashed config.json + weight sizes only).
FINGERPRINT_VERSION = 2


def _json_default(value: Any) -> Any:
    """Settings may hold paths, enums or pydantic models; anything else must not be stringified
    blindly (``repr`` of an object can embed a memory address and make fingerprints unstable)."""
    if isinstance(value, (PurePath, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"fingerprint settings must be JSON-serialisable, got {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Stable JSON (sorted keys, no whitespace) for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default, ensure_ascii=False)


def clip_inputs_identity(row: CatalogRow, config: S3Config | None = None) -> dict[str, Any]:
    """Identities of every file the clip reads (raises ObjectNotFoundError for a missing input)."""
    inputs: dict[str, Any] = {"video": identity(row.video, config), "audio": identity(row.audio, config)}
    if row.voice_reference:
        inputs["voice_reference"] = identity(row.voice_reference, config)
    if row.face_sidecar:
        inputs["face_sidecar"] = identity(row.face_sidecar, config)
    return inputs


def clip_fingerprint(row: CatalogRow, model_id: str, settings: dict[str, Any], config: S3Config | None = None) -> str:
    """sha256 hex over the clip's input identities, resolved options, model id and settings."""
    payload = {
        "version": FINGERPRINT_VERSION,
        "clip_id": row.clip_id,
        "target_language": row.target_language,
        "inputs": clip_inputs_identity(row, config),
        "options": row.options.model_dump(mode="json"),
        "model_id": model_id,
        "settings": settings,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
