"""The typed records of a catalog: one valid :class:`CatalogRow`, one :class:`InvalidRow`, the result."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from lsray.errors import LsrayError
from lsray.pipeline.options import DubOptions
from lsray.storage.uri import resolve_reference

CLIP_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
LANGUAGE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,35}$")


class CatalogError(LsrayError):
    """The catalog as a whole cannot be read (unknown format, unreadable file). Bad rows are not errors."""


def is_speaker_spec(text: str) -> bool:
    """True if ``text`` is a speaker selection (``largest``, ``auto``, ``X,Y@T``) rather than a path."""
    # Ask DubOptions itself, so the catalog accepts exactly the speaker grammar the pipeline does.
    try:
        DubOptions(speaker=text)
    except ValidationError:
        return False
    return True


class CatalogRow(BaseModel):
    """One clip to dub: its inputs (URIs, resolved against the catalog's folder) and its options.

    Validate with ``context={"base": folder_uri}`` to resolve relative paths; without a base they
    stay relative to the working directory.
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    clip_id: str = Field(description="unique in the catalog; safe as a file name")
    video: str
    audio: str
    target_language: str | None = None
    voice_reference: str | None = None
    face_hint: str | None = Field(default=None, description="speaker spec (largest|auto|X,Y@T) or a face-track sidecar path")
    options: DubOptions = Field(default_factory=DubOptions)
    line: int | None = Field(default=None, description="1-based line in the catalog (Parquet: row index + 1)")

    @field_validator("clip_id")
    @classmethod
    def _clip_id(cls, v: str) -> str:
        # Used as an output file name: no separators, no traversal, bounded length.
        if not CLIP_ID_PATTERN.match(v) or v in (".", ".."):
            raise ValueError(
                f"clip_id must be 1-200 characters of letters, digits, '-', '_' or '.', got {v[:60]!r}"
            )
        return v

    @field_validator("target_language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        # Used in output key templates, so it must be path-safe too.
        if v is not None and not LANGUAGE_PATTERN.match(v):
            raise ValueError(f"target_language must be a language tag like 'es' or 'pt-BR', got {v[:40]!r}")
        return v

    @field_validator("video", "audio", "voice_reference")
    @classmethod
    def _uri(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        if not v.strip():
            raise ValueError("must not be empty")
        base = (info.context or {}).get("base")
        return resolve_reference(v.strip(), base)  # refuses http(s) and unknown schemes

    @field_validator("face_hint")
    @classmethod
    def _face_hint(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or is_speaker_spec(v):
            return v.strip() if v else v
        return resolve_reference(v.strip(), (info.context or {}).get("base"))

    @property
    def face_speaker(self) -> str | None:
        """The face hint when it is a speaker spec (also applied to ``options.speaker``)."""
        return self.face_hint if self.face_hint and is_speaker_spec(self.face_hint) else None

    @property
    def face_sidecar(self) -> str | None:
        """The face hint when it is a face-track sidecar URI."""
        return self.face_hint if self.face_hint and not is_speaker_spec(self.face_hint) else None


class InvalidRow(BaseModel):
    """A catalog row that could not be used, with where it is and why (reported, never fatal)."""

    line: int
    clip_id: str | None = None
    reason: str


class CatalogReadResult(BaseModel):
    """Valid rows in catalog order, invalid rows with reasons, and columns that were ignored."""

    rows: list[CatalogRow]
    invalid: list[InvalidRow]
    ignored_fields: list[str] = Field(default_factory=list, description="unknown columns/keys (typos show up here)")

    def summary(self) -> dict[str, Any]:
        """Counts for logs: valid, invalid, ignored field names."""
        return {"valid": len(self.rows), "invalid": len(self.invalid), "ignored_fields": self.ignored_fields}
