"""Catalogs of clips to dub (JSONL, CSV, Parquet; local or s3://), fingerprints and output keys.

Bad rows are reported with their line and reason and never stop the others. No Ray imports.
"""

from lsray.catalog.fingerprint import canonical_json, clip_fingerprint, clip_inputs_identity
from lsray.catalog.formats import catalog_format
from lsray.catalog.output import (
    DEFAULT_OUTPUT_TEMPLATE,
    FINGERPRINT_METADATA_KEY,
    OutputTemplateError,
    done_marker_uri,
    is_done,
    mark_done,
    output_key,
    output_uri,
    publish_output,
    validate_template,
)
from lsray.catalog.read import iter_catalog, read_catalog
from lsray.catalog.row import CatalogError, CatalogReadResult, CatalogRow, InvalidRow, is_speaker_spec

__all__ = [
    "DEFAULT_OUTPUT_TEMPLATE",
    "FINGERPRINT_METADATA_KEY",
    "CatalogError",
    "CatalogReadResult",
    "CatalogRow",
    "InvalidRow",
    "OutputTemplateError",
    "canonical_json",
    "catalog_format",
    "clip_fingerprint",
    "clip_inputs_identity",
    "done_marker_uri",
    "is_done",
    "is_speaker_spec",
    "iter_catalog",
    "mark_done",
    "output_key",
    "output_uri",
    "publish_output",
    "read_catalog",
    "validate_template",
]
