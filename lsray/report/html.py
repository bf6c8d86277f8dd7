"""``report.html``: the run report a person opens, one self-contained page.

The same clips as ``report.parquet`` (status, length, frames, no-face frames, sampler, voice,
warnings, errors, seconds per stage) under the summary of ``report.json``, plus a plot of frames
finished over wall time. Self-contained on purpose: the page is read from an object store or a
laptop's downloads folder, often offline, so the plot is inline SVG (matplotlib) and there is no
script, font or stylesheet from elsewhere. Every text that came from a catalog or an exception
(clip ids, errors, warnings, URIs) is escaped: a clip id is user input.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .record import FAILED_STATUSES, ClipReport, as_utc

if TYPE_CHECKING:  # write.py imports this module to write the page
    from .write import ReportSummary

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#fdecea}tr.no_face td{background:#fff8e1}
td.error{color:#a00;max-width:40em;white-space:pre-wrap;word-break:break-word}
td.warn{color:#8a6d00;max-width:30em}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dl.summary dt{font-weight:600}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}
""".strip()


def _text(value: object) -> str:
    """Escaped text; '-' for nothing."""
    return "-" if value is None or value == "" else html.escape(str(value))


def _num(value: float | int | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _stages(reports: Sequence[ClipReport]) -> list[str]:
    """Stage names in the order the clips went through them (first seen first)."""
    seen: dict[str, None] = {}
    for r in reports:
        seen.update(dict.fromkeys(r.seconds))
    return list(seen)


def throughput_points(reports: Sequence[ClipReport]) -> list[tuple[float, int]]:
    """(seconds since the first clip started, frames finished so far) at each clip's finish."""
    finishes = sorted((as_utc(r.finished), r.frames) for r in reports if r.finished is not None)
    if not finishes:
        return []
    t0 = min([as_utc(r.started) for r in reports if r.started is not None] + [finishes[0][0]])
    points, total = [(0.0, 0)], 0
    for finished, frames in finishes:
        total += frames
        points.append(((finished - t0).total_seconds(), total))
    return points


def throughput_svg(reports: Sequence[ClipReport]) -> str | None:
    """Frames finished over wall time as an inline ``<svg>`` element; None without timed clips.

    matplotlib's object API (no pyplot): no global figure state in a Ray driver or a thread.
    """
    points = throughput_points(reports)
    if len(points) < 2:
        return None
    from matplotlib.figure import Figure

    xs, ys = zip(*points)
    fig = Figure(figsize=(7.5, 3.0), dpi=96)
    ax = fig.add_subplot()
    ax.step(xs, ys, where="post", color="#2a7", linewidth=1.6)
    ax.fill_between(xs, ys, step="post", color="#2a7", alpha=0.15)
    ax.set_xlabel("wall time since the first clip started (s)")
    ax.set_ylabel("frames finished")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # the page states when it was written, once
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: it is inlined in HTML


def _summary_html(summary: ReportSummary) -> str:
    counts = ", ".join(f"{html.escape(k)} {v}" for k, v in summary.counts.items() if v) or "none"
    fps = summary.frames / summary.wall_seconds if summary.wall_seconds else None
    stages = ", ".join(f"{html.escape(k)} {v:.1f} s" for k, v in summary.seconds_per_stage.items()) or "-"
    items = [
        ("clips", f"{summary.clips} ({counts})"),
        ("frames", f"{summary.frames} ({summary.no_face_frames} without a face)"),
        ("wall time", f"{_num(summary.wall_seconds, 1)} s"),
        ("throughput", f"{_num(fps)} frames/s"),
        ("retries", str(summary.retries)),
        ("seconds per stage", stages),
        ("written", html.escape(summary.generated_at.isoformat(timespec="seconds"))),
    ]
    return '<dl class="summary">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _similarity(r: ClipReport) -> str:
    """After conversion, with the dub as given in brackets: the conversion's gain at a glance."""
    if r.similarity_before is None:
        return _num(r.speaker_similarity)
    return f"{_num(r.speaker_similarity)} ({_num(r.similarity_before)})"


def _row(r: ClipReport, stages: list[str]) -> str:
    started, finished = as_utc(r.started), as_utc(r.finished)
    wall = (finished - started).total_seconds() if started and finished else None
    name = _text(r.clip_id) if r.clip_id is not None else f"<i>catalog line {_text(r.line)}</i>"
    sampler = None if r.sampler is None else f"{r.sampler} x{r.sampling_steps}" if r.sampling_steps else r.sampler
    cells = [
        f'<td class="clip">{name}</td>',
        f'<td class="status">{_text(r.status)}</td>',
        f'<td class="num">{_num(r.duration_seconds)}</td>',
        f'<td class="num">{r.frames}</td>',
        f'<td class="num">{r.no_face_frames}</td>',
        f"<td>{_text(sampler)}</td>",
        f"<td>{_text(r.voice)}</td>",
        f'<td class="num">{_similarity(r)}</td>',
        f'<td class="num">{r.retries}</td>',
        *(f'<td class="num">{_num(r.seconds.get(s))}</td>' for s in stages),
        f'<td class="num">{_num(float(sum(r.seconds.values())) if r.seconds else None)}</td>',
        f'<td class="num">{_num(wall)}</td>',
        f'<td class="warn">{"<br>".join(html.escape(w) for w in r.warnings) or "-"}</td>',
        f'<td class="error">{_text(r.error)}</td>',
        f"<td>{_text(r.output_uri)}</td>",
    ]
    kind = "failed" if r.status in FAILED_STATUSES else r.status
    return f'<tr class="{html.escape(kind)}" data-status="{html.escape(r.status)}">{"".join(cells)}</tr>'


def report_html(reports: Sequence[ClipReport], summary: ReportSummary, title: str = "lsray dub report") -> str:
    """The whole page for ``reports`` (one table row each, in the given order) and their summary."""
    stages = _stages(reports)
    head = ["clip", "status", "length s", "frames", "no-face frames", "sampler", "voice", "speaker sim. (as given)", "retries",
            *(f"{s} s" for s in stages), "stages s", "wall s", "warnings", "error", "output"]
    plot = throughput_svg(reports)
    figure = (f'<figure id="throughput" role="img" aria-label="frames finished over wall time">{plot}'
              "<figcaption>Frames finished over wall time (each step: a clip finished).</figcaption></figure>"
              if plot else '<p id="throughput">No clip has start and finish times: no throughput plot.</p>')
    failed = [r for r in reports if r.status in FAILED_STATUSES]
    failed_list = "".join(
        f"<li><b>{_text(r.clip_id if r.clip_id is not None else f'catalog line {r.line}')}</b>: {_text(r.error)}</li>"
        for r in failed)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
{_summary_html(summary)}
<h2>Throughput</h2>
{figure}
<h2>Failed clips ({len(failed)})</h2>
<ul id="failed">{failed_list or "<li>none</li>"}</ul>
<h2>Clips</h2>
<table id="clips"><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in head)}</tr></thead>
<tbody>{"".join(_row(r, stages) for r in reports)}</tbody></table>
</body></html>
"""
