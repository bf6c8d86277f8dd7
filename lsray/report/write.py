"""``write_report``: ``report.parquet`` (one row per clip), ``report.html`` (the same for a person,
with a throughput plot: :mod:`lsray.report.html`) and ``report.json`` (the summary).

All three files are written atomically to a local folder or an s3:// prefix, so a dashboard polling
the output root never reads half a report. The Parquet schema is explicit so an empty or
all-skipped run still produces the same columns; stage times become ``seconds_<stage>`` columns
(the union over clips; a clip that skipped a stage has null there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from lsray.storage.operations import atomic_writer
from lsray.storage.s3_config import S3Config
from lsray.storage.uri import join

from .html import report_html
from .record import CLIP_STATUSES, FAILED_STATUSES, ClipReport, as_utc

REPORT_PARQUET = "report.parquet"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"

_BASE_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("output_uri", pa.string()),
        ("frames", pa.int64()),
        ("no_face_frames", pa.int64()),
        ("duration_seconds", pa.float64()),
        ("warnings", pa.list_(pa.string())),
        ("retries", pa.int64()),
        ("speaker_similarity", pa.float64()),
        ("similarity_before", pa.float64()),
        ("voice", pa.string()),
        ("sampler", pa.string()),
        ("sampling_steps", pa.int64()),
        ("unet_calls_per_window", pa.int64()),
        ("timesteps", pa.list_(pa.int64())),
        ("generated_sha256", pa.string()),
        ("anchor_keyframes", pa.int64()),
        ("fingerprint", pa.string()),
        ("started", pa.timestamp("us", tz="UTC")),
        ("finished", pa.timestamp("us", tz="UTC")),
        ("line", pa.int64()),
        ("seconds_total", pa.float64()),
    ]
)


class FailedClip(BaseModel):
    """A failed clip in the summary."""

    clip_id: str | None
    status: str
    error: str | None
    line: int | None = None


class ReportSummary(BaseModel):
    """The run at a glance (the content of ``report.json``)."""

    clips: int
    counts: dict[str, int] = Field(description="every status, zero included")
    frames: int
    no_face_frames: int
    retries: int
    seconds_per_stage: dict[str, float]
    wall_seconds: float | None
    failed: list[FailedClip]
    generated_at: datetime


def stage_column(stage: str) -> str:
    """``seconds_<stage>`` with the stage name made column-safe."""
    return "seconds_" + re.sub(r"[^A-Za-z0-9_]", "_", stage)


def summarize(reports: Sequence[ClipReport], wall_seconds: float | None = None) -> ReportSummary:
    """Counts by status, totals, and the failed clips; wall time from the earliest start to the
    latest finish unless the caller measured it (it knows about queueing the clips do not)."""
    counts = {s: 0 for s in CLIP_STATUSES}
    stages: dict[str, float] = {}
    for r in reports:
        counts[r.status] += 1
        for stage, s in r.seconds.items():
            stages[stage] = stages.get(stage, 0.0) + float(s)
    if wall_seconds is None:
        starts = [as_utc(r.started) for r in reports if r.started]
        ends = [as_utc(r.finished) for r in reports if r.finished]
        if starts and ends:
            wall_seconds = max(0.0, (max(ends) - min(starts)).total_seconds())  # type: ignore[operator]
    return ReportSummary(
        clips=len(reports),
        counts=counts,
        frames=sum(r.frames for r in reports),
        no_face_frames=sum(r.no_face_frames for r in reports),
        retries=sum(r.retries for r in reports),
        seconds_per_stage=dict(sorted(stages.items())),
        wall_seconds=wall_seconds,
        failed=[FailedClip(clip_id=r.clip_id, status=r.status, error=r.error, line=r.line) for r in reports if r.status in FAILED_STATUSES],
        generated_at=datetime.now(timezone.utc),
    )


def report_table(reports: Sequence[ClipReport]) -> pa.Table:
    """One row per clip, stage seconds flattened into ``seconds_<stage>`` columns."""
    stages = sorted({stage for r in reports for stage in r.seconds})
    columns: dict[str, list] = {name: [] for name in _BASE_SCHEMA.names}
    stage_cols: dict[str, list] = {stage_column(s): [] for s in stages}
    for r in reports:
        columns["clip_id"].append(r.clip_id)
        columns["status"].append(r.status)
        columns["error"].append(r.error)
        columns["output_uri"].append(r.output_uri)
        columns["frames"].append(r.frames)
        columns["no_face_frames"].append(r.no_face_frames)
        columns["duration_seconds"].append(r.duration_seconds)
        columns["warnings"].append(list(r.warnings))
        columns["retries"].append(r.retries)
        columns["speaker_similarity"].append(r.speaker_similarity)
        for name in ("similarity_before", "voice", "sampler", "sampling_steps", "unet_calls_per_window", "timesteps", "generated_sha256",
                     "anchor_keyframes"):
            columns[name].append(getattr(r, name))
        columns["fingerprint"].append(r.fingerprint)
        columns["started"].append(as_utc(r.started))
        columns["finished"].append(as_utc(r.finished))
        columns["line"].append(r.line)
        columns["seconds_total"].append(float(sum(r.seconds.values())))
        for s in stages:
            stage_cols[stage_column(s)].append(r.seconds.get(s))
    schema = _BASE_SCHEMA
    for name in stage_cols:
        schema = schema.append(pa.field(name, pa.float64()))
    return pa.Table.from_pydict({**columns, **stage_cols}, schema=schema)


def write_report(
    out_root: str, reports: Sequence[ClipReport], wall_seconds: float | None = None, config: S3Config | None = None
) -> ReportSummary:
    """Write ``report.parquet``, ``report.html`` and ``report.json`` under ``out_root`` (each
    atomically); return the summary.

    ``report.json`` is written last: its appearing means the whole report is there.
    """
    table = report_table(reports)
    summary = summarize(reports, wall_seconds)
    with atomic_writer(join(out_root, REPORT_PARQUET), config) as tmp:
        pq.write_table(table, tmp)
    with atomic_writer(join(out_root, REPORT_HTML), config) as tmp:
        tmp.write_text(report_html(reports, summary), encoding="utf-8")
    with atomic_writer(join(out_root, REPORT_JSON), config) as tmp:
        tmp.write_text(summary.model_dump_json(indent=2), encoding="utf-8")
    return summary
