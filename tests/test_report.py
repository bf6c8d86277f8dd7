"""Run reports: Parquet rows with flattened stage times, JSON summary counts, local and S3."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from s3 import moto_s3, s3_bucket  # noqa: F401  (fixtures)

from lsray import storage
from lsray.catalog import InvalidRow
from lsray.report import CLIP_STATUSES, ClipReport, write_report
from lsray.storage import S3Config

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def sample_reports() -> list[ClipReport]:
    bad = InvalidRow(line=7, clip_id=None, reason="malformed JSON")
    return [
        ClipReport(clip_id="a", status="done", output_uri="/o/a.mp4", frames=100, no_face_frames=3,
                   seconds={"prepare": 1.5, "sample": 10.0, "render": 2.0}, retries=1, speaker_similarity=0.83, similarity_before=0.61,
                   fingerprint="f" * 64, started=T0, finished=T0 + timedelta(seconds=14)),
        ClipReport(clip_id="b", status="skipped", output_uri="/o/b.mp4", fingerprint="e" * 64),
        ClipReport(clip_id="c", status="error", error="MediaError: /in/c.mp4: no video stream",
                   seconds={"prepare": 0.5}, started=T0 + timedelta(seconds=1), finished=T0 + timedelta(seconds=2)),
        ClipReport(clip_id="d", status="no_face", frames=50, no_face_frames=50, seconds={"prepare": 1.0},
                   started=T0 + timedelta(seconds=3), finished=T0 + timedelta(seconds=20)),
        ClipReport.for_invalid_row(bad.line, bad.clip_id, bad.reason),
    ]


def check_outputs(table, summary: dict) -> None:
    assert table.num_rows == 5
    assert table.column("clip_id").to_pylist() == ["a", "b", "c", "d", None]
    assert {"seconds_prepare", "seconds_sample", "seconds_render", "seconds_total"} <= set(table.column_names)
    assert table.column("seconds_sample").to_pylist() == [10.0, None, None, None, None]
    assert table.column("seconds_total").to_pylist()[0] == pytest.approx(13.5)
    assert table.column("line").to_pylist()[4] == 7
    assert table.column("similarity_before").to_pylist()[:2] == [0.61, None]  # voice conversion: before / after
    assert table.column("speaker_similarity").to_pylist()[:2] == [0.83, None]
    assert table.column("warnings").to_pylist() == [[]] * 5 and table.column("duration_seconds").null_count == 5
    assert summary["counts"] == {"done": 1, "skipped": 1, "error": 1, "no_face": 1, "invalid": 1}
    assert set(summary["counts"]) == set(CLIP_STATUSES)
    assert summary["clips"] == 5 and summary["frames"] == 150 and summary["no_face_frames"] == 53
    assert summary["seconds_per_stage"] == {"prepare": 3.0, "render": 2.0, "sample": 10.0}
    assert summary["wall_seconds"] == pytest.approx(20.0)  # earliest start -> latest finish
    assert [(f["clip_id"], f["status"]) for f in summary["failed"]] == [("c", "error"), (None, "invalid")]
    assert summary["failed"][0]["error"].startswith("MediaError")
    assert summary["failed"][1]["line"] == 7


def test_write_report_local(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = write_report(str(out), sample_reports())
    assert summary.counts["done"] == 1
    check_outputs(pq.read_table(out / "report.parquet"), json.loads((out / "report.json").read_text()))
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.parquet"]  # no temp leftovers
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "MediaError: /in/c.mp4: no video stream" in page and "<svg" in page
    assert '<td class="num">0.83 (0.61)</td>' in page  # after conversion (the dub as given)  # the browser test reads it properly


def test_write_report_s3(moto_s3: S3Config, s3_bucket: str) -> None:
    root = f"s3://{s3_bucket}/runs/1"
    write_report(root, sample_reports(), config=moto_s3)
    table = pq.read_table(io.BytesIO(storage.read_bytes(f"{root}/report.parquet", moto_s3)))
    check_outputs(table, json.loads(storage.read_bytes(f"{root}/report.json", moto_s3)))
    assert b'<td class="clip">a</td>' in storage.read_bytes(f"{root}/report.html", moto_s3)
    assert sorted(u.rsplit("/", 1)[-1] for u in storage.list_prefix(root, moto_s3)) == [
        "report.html", "report.json", "report.parquet"]


def test_empty_report_and_explicit_wall_time(tmp_path: Path) -> None:
    summary = write_report(str(tmp_path), [], wall_seconds=3.25)
    table = pq.read_table(tmp_path / "report.parquet")
    assert table.num_rows == 0 and "clip_id" in table.column_names and "seconds_total" in table.column_names
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["clips"] == 0 and data["wall_seconds"] == 3.25 and data["failed"] == []
    assert summary.counts == {s: 0 for s in CLIP_STATUSES}


def test_clip_report_rejects_unknown_status() -> None:
    with pytest.raises(ValueError):
        ClipReport(clip_id="a", status="finished")  # type: ignore[arg-type]


def test_record_result_copies_warnings_and_length() -> None:
    from lsray.pipeline.records import ClipResult

    result = ClipResult(clip_id="a", status="done", frames=50, no_face_frames=2, fps=25.0, warnings=["dub is longer"],
                        voice="builtin", sampling={"sampler": "lcm", "steps": 4})
    report = ClipReport(clip_id="a", status="done", frames=50)
    report.record_result(result)
    assert report.warnings == ["dub is longer"] and report.duration_seconds == pytest.approx(2.0)
    assert (report.no_face_frames, report.voice, report.sampler, report.sampling_steps) == (2, "builtin", "lcm", 4)
