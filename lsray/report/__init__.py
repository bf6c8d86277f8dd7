"""Per-clip outcomes of a batch run and the run report (Parquet rows, HTML page, JSON summary). No Ray imports."""

from lsray.report.record import CLIP_STATUSES, FAILED_STATUSES, ClipReport, ClipStatus
from lsray.report.html import report_html
from lsray.report.write import (
    REPORT_HTML,
    REPORT_JSON,
    REPORT_PARQUET,
    FailedClip,
    ReportSummary,
    report_table,
    stage_column,
    summarize,
    write_report,
)

__all__ = [
    "CLIP_STATUSES",
    "FAILED_STATUSES",
    "REPORT_HTML",
    "REPORT_JSON",
    "REPORT_PARQUET",
    "ClipReport",
    "ClipStatus",
    "FailedClip",
    "ReportSummary",
    "report_html",
    "report_table",
    "stage_column",
    "summarize",
    "write_report",
]
