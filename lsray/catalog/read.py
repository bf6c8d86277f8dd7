"""``read_catalog``: raw records -> validated :class:`CatalogRow` s, bad rows reported not fatal.

Where the options of a row come from (later wins over earlier, conflicts are row errors):
the run's ``defaults`` < flat columns named like DubOptions fields < the ``options`` object
(a JSON object, a JSON string in CSV, or a struct in Parquet). A ``face_hint`` that is a speaker
spec sets ``options.speaker``. Unknown columns are ignored and listed in the result, so a
catalog can carry its own bookkeeping columns while typos still get noticed.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from lsray.pipeline.options import DubOptions
from lsray.storage.s3_config import S3Config
from lsray.storage.uri import parent

from .formats import catalog_format, iter_raw_records
from .row import CatalogReadResult, CatalogRow, InvalidRow, is_speaker_spec

ROW_FIELDS = ("clip_id", "video", "audio", "target_language", "voice_reference", "face_hint")
OPTION_FIELDS = tuple(DubOptions.model_fields)


def _is_string_field(name: str) -> bool:
    """Whether a DubOptions field holds text (CSV cells for other fields are parsed as JSON scalars)."""
    ann = DubOptions.model_fields[name].annotation
    if ann is str:
        return True
    args = typing.get_args(ann)
    return typing.get_origin(ann) is typing.Literal and all(isinstance(a, str) for a in args)


_STRING_OPTIONS = frozenset(n for n in OPTION_FIELDS if _is_string_field(n))


def _cell_value(name: str, value: Any, from_text: bool) -> Any:
    """CSV cells are text; turn "256", "true", "1.5" into JSON scalars for non-text options."""
    if not from_text or not isinstance(value, str) or name in _STRING_OPTIONS:
        return value
    try:
        parsed = json.loads(value.strip().lower() if value.strip().lower() in ("true", "false", "null") else value)
    except json.JSONDecodeError:
        return value
    return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value


class RowProblem(ValueError):
    """One row's problem, already worded for the report."""


def _format_validation(e: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in e.errors():
        where = prefix + ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            parts.append(f"missing required field {where!r}")
        elif err["type"] == "extra_forbidden":
            parts.append(f"unknown option {where!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def _options_object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise RowProblem(f"options: malformed JSON ({e.msg})") from e
    if not isinstance(value, dict):
        raise RowProblem(f"options must be an object, got {type(value).__name__}")
    return value


def build_row(
    raw: dict[str, Any], line: int, defaults: DubOptions, base: str | None, from_text: bool = False
) -> CatalogRow:
    """Validate one raw record (raises :class:`RowProblem` with a readable reason)."""
    overrides: dict[str, Any] = {}
    for name in OPTION_FIELDS:
        if raw.get(name) is not None:
            overrides[name] = _cell_value(name, raw[name], from_text)
    nested = _options_object(raw.get("options"))
    for name, value in nested.items():
        if name in overrides and overrides[name] != value:
            raise RowProblem(f"option {name!r} is given both as a column ({overrides[name]!r}) and in options ({value!r})")
        overrides[name] = value
    face_hint = raw.get("face_hint")
    if isinstance(face_hint, str) and is_speaker_spec(face_hint):
        spec = face_hint.strip()
        if "speaker" in overrides and str(overrides["speaker"]).strip() != spec:
            raise RowProblem(f"face_hint {spec!r} conflicts with option speaker={overrides['speaker']!r}")
        overrides["speaker"] = spec
    try:
        options = DubOptions.model_validate({**defaults.model_dump(), **overrides}) if overrides else defaults.model_copy()
    except ValidationError as e:
        raise RowProblem(_format_validation(e, "options.")) from e
    fields = {k: raw.get(k) for k in ROW_FIELDS if raw.get(k) is not None}
    try:
        return CatalogRow.model_validate({**fields, "options": options, "line": line}, context={"base": base})
    except ValidationError as e:
        raise RowProblem(_format_validation(e)) from e


def iter_catalog(
    uri: str, defaults: DubOptions | None = None, config: S3Config | None = None, ignored: set[str] | None = None
) -> Iterator[CatalogRow | InvalidRow]:
    """Stream validated rows and invalid-row reports in catalog order.

    A duplicate ``clip_id`` makes the later row invalid (the first one, valid or not, keeps the id,
    so fixing an earlier bad row never silently changes which row wins). Names of unknown columns
    are added to ``ignored`` when given.
    """
    defaults = defaults or DubOptions()
    base = parent(uri)
    from_text = catalog_format(uri) == "csv"
    known = {*ROW_FIELDS, *OPTION_FIELDS, "options"}
    first_line: dict[str, int] = {}
    for line, raw in iter_raw_records(uri, config):
        if isinstance(raw, str):
            yield InvalidRow(line=line, clip_id=None, reason=raw)
            continue
        if ignored is not None:
            ignored.update(k for k in raw if k not in known)
        clip_id = raw.get("clip_id")
        clip_id = str(clip_id) if isinstance(clip_id, (str, int)) and not isinstance(clip_id, bool) else None
        if clip_id is not None and clip_id in first_line:
            yield InvalidRow(line=line, clip_id=clip_id, reason=f"duplicate clip_id {clip_id!r} (first at line {first_line[clip_id]})")
            continue
        if clip_id is not None:
            first_line[clip_id] = line
        try:
            yield build_row(raw, line, defaults, base, from_text)
        except RowProblem as e:
            yield InvalidRow(line=line, clip_id=clip_id, reason=str(e))


def read_catalog(uri: str, defaults: DubOptions | None = None, config: S3Config | None = None) -> CatalogReadResult:
    """Read a JSONL/CSV/Parquet catalog (local or s3://) into valid rows and reported invalid rows.

    Only whole-catalog problems raise: a missing file (:class:`ObjectNotFoundError`), an unknown
    extension or unreadable Parquet (:class:`CatalogError`), an http(s) URI.
    """
    rows: list[CatalogRow] = []
    invalid: list[InvalidRow] = []
    ignored: set[str] = set()
    for item in iter_catalog(uri, defaults, config, ignored):
        (rows if isinstance(item, CatalogRow) else invalid).append(item)  # type: ignore[arg-type]
    return CatalogReadResult(rows=rows, invalid=invalid, ignored_fields=sorted(ignored))
