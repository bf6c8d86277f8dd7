"""Where a clip's output goes, and the done-marker that lets a rerun skip it.

Publication order is what makes skipping safe: the output is published atomically first
(S3: multipart upload carrying the fingerprint as object metadata), then the sidecar
``<output>.json`` holding the fingerprint, also atomically. A marker therefore never exists
without its complete output. On S3 the metadata alone also proves completion, so a worker that
died between the two steps does not force a redo.
"""

from __future__ import annotations

import json
import os
import posixpath
import string
from datetime import datetime, timezone
from typing import Any

from lsray.errors import LsrayError
from lsray.storage.errors import ObjectNotFoundError
from lsray.storage.operations import atomic_upload, exists, metadata, read_bytes, write_bytes
from lsray.storage.s3_config import S3Config
from lsray.storage.uri import is_s3_uri, join

from .row import CatalogRow

DEFAULT_OUTPUT_TEMPLATE = "{clip_id}.mp4"
TEMPLATE_FIELDS = frozenset({"clip_id", "target_language", "fingerprint8"})
UNDETERMINED_LANGUAGE = "und"  # ISO 639-2 "undetermined", used when a row has no target_language
FINGERPRINT_METADATA_KEY = "lsray-fingerprint"
MARKER_SUFFIX = ".json"


class OutputTemplateError(LsrayError, ValueError):
    """An output key template with unknown placeholders or one that escapes the output root."""


def template_fields(template: str) -> set[str]:
    """The placeholder names used by ``template``."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise OutputTemplateError(f"bad output template {template!r}: {e}") from e


def validate_template(template: str) -> None:
    """Refuse templates with unknown placeholders early (before any clip runs)."""
    unknown = template_fields(template) - TEMPLATE_FIELDS
    if unknown:
        raise OutputTemplateError(
            f"output template {template!r} uses unknown placeholders {sorted(unknown)}; allowed: {sorted(TEMPLATE_FIELDS)}"
        )


def output_key(row: CatalogRow, template: str = DEFAULT_OUTPUT_TEMPLATE, fingerprint: str | None = None) -> str:
    """The output's path relative to the output root (may contain '/' for sub-folders)."""
    validate_template(template)
    if "fingerprint8" in template_fields(template) and not fingerprint:
        raise OutputTemplateError(f"output template {template!r} needs the clip's fingerprint")
    key = template.format(
        clip_id=row.clip_id,
        target_language=row.target_language or UNDETERMINED_LANGUAGE,
        fingerprint8=(fingerprint or "")[:8],
    )
    norm = posixpath.normpath(key)
    if key.startswith("/") or norm == "." or norm.startswith("..") or "\\" in key:
        raise OutputTemplateError(f"output template {template!r} gives {key!r}, which is not inside the output root")
    return norm


def output_uri(
    out_root: str, row: CatalogRow, template: str = DEFAULT_OUTPUT_TEMPLATE, fingerprint: str | None = None
) -> str:
    """``out_root`` joined with :func:`output_key` (same form as ``out_root``: path or s3://)."""
    return join(out_root, output_key(row, template, fingerprint))


def done_marker_uri(out_uri: str) -> str:
    """The sidecar marker of an output: ``<output>.json``."""
    return os.fspath(out_uri) + MARKER_SUFFIX


def mark_done(out_uri: str, fingerprint: str, details: dict[str, Any] | None = None, config: S3Config | None = None) -> str:
    """Write the done-marker for an already-published output; return the marker's URI.

    Refuses when the output does not exist: a marker must never precede its output.
    """
    if not exists(out_uri, config):
        raise ObjectNotFoundError(out_uri, "cannot mark as done: the output does not exist")
    body = {
        **(details or {}),
        "fingerprint": fingerprint,
        "output": out_uri,
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    marker = done_marker_uri(out_uri)
    write_bytes(marker, json.dumps(body, indent=2, sort_keys=True, default=str).encode("utf-8"), config)
    return marker


def publish_output(
    local_path: str | os.PathLike[str],
    out_uri: str,
    fingerprint: str,
    details: dict[str, Any] | None = None,
    config: S3Config | None = None,
) -> None:
    """Publish a finished local output atomically, then its done-marker (in that order)."""
    atomic_upload(local_path, out_uri, config, metadata={FINGERPRINT_METADATA_KEY: fingerprint})
    mark_done(out_uri, fingerprint, details, config)


def is_done(out_uri: str, fingerprint: str, config: S3Config | None = None) -> bool:
    """True if ``out_uri`` exists and was made from inputs with this ``fingerprint``.

    The sidecar decides when present; without one, an S3 object's fingerprint metadata does
    (local files carry no metadata). Unreadable markers count as "not done" (redo, don't guess).
    """
    try:
        raw = read_bytes(done_marker_uri(out_uri), config)
    except ObjectNotFoundError:
        raw = None
    if raw is not None:
        try:
            marker_fp = json.loads(raw).get("fingerprint")
        except (json.JSONDecodeError, AttributeError):
            return False
        return marker_fp == fingerprint and exists(out_uri, config)
    if is_s3_uri(out_uri):
        try:
            return metadata(out_uri, config).get(FINGERPRINT_METADATA_KEY) == fingerprint
        except ObjectNotFoundError:
            return False
    return False


__all__ = [
    "DEFAULT_OUTPUT_TEMPLATE",
    "FINGERPRINT_METADATA_KEY",
    "OutputTemplateError",
    "done_marker_uri",
    "is_done",
    "mark_done",
    "output_key",
    "output_uri",
    "publish_output",
    "validate_template",
]
