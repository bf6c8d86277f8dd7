"""``report.html`` in a real headless browser: Debian's Chromium driven by Playwright.

The page is written by ``write_report`` as a run writes it, opened from its file:// URL, and
read back from the rendered DOM: no console errors (the page's Content-Security-Policy turns any
external fetch into one), one table row per clip with its status, failed clips with their
error, a drawn throughput plot, and hostile clip ids shown as text, never run. Nothing is
downloaded: Playwright drives the system Chromium (``scripts/setup.sh`` installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_report import T0, sample_reports

from lsray.report import ClipReport, report_html, summarize, write_report
from lsray.report.html import throughput_points

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"]
HOSTILE_ID = '<img src=x onerror="alert(1)">&amp;"clip"'


def chromium_path() -> str:
    """The system Chromium; a test failure (not a skip) without it, so CI cannot quietly lose the test."""
    path = os.environ.get("LSRAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(f"no Chromium at {path}: run scripts/setup.sh (apt-get install chromium) or set LSRAY_CHROMIUM")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def run_reports() -> list[ClipReport]:
    """The report test's five clips plus one with warnings, sampler and voice, and a hostile id that failed."""
    extra = [
        ClipReport(clip_id="e", status="done", frames=75, duration_seconds=3.0, warnings=["audio 0.4 s shorter than the video"],
                   sampler="lcm", sampling_steps=4, voice="builtin", seconds={"prepare": 0.5, "sample": 4.0},
                   started=T0 + timedelta(seconds=2), finished=T0 + timedelta(seconds=9)),
        ClipReport(clip_id=HOSTILE_ID, status="error", error="RenderError: <script>alert('x')</script> at frame 3",
                   started=T0 + timedelta(seconds=4), finished=T0 + timedelta(seconds=5)),
    ]
    return sample_reports() + extra


def open_report(browser, path: Path):
    """Load the page; return it with the console errors, page errors and dialogs seen."""
    page = browser.new_page()
    seen: dict[str, list[str]] = {"console": [], "pageerror": [], "dialog": [], "requests": []}
    page.on("console", lambda m: seen["console"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["pageerror"].append(str(e)))
    page.on("dialog", lambda d: (seen["dialog"].append(d.message), d.dismiss()))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, seen


def test_report_page_in_chromium(browser, tmp_path: Path) -> None:
    reports = run_reports()
    write_report(str(tmp_path), reports)
    page, seen = open_report(browser, tmp_path / "report.html")
    try:
        assert seen["console"] == [] and seen["pageerror"] == [] and seen["dialog"] == []
        assert seen["requests"] == [(tmp_path / "report.html").as_uri()]  # the page fetched nothing else
        assert page.title() == "lsray dub report"

        rows = page.locator("#clips tbody tr")
        assert rows.count() == len(reports)
        shown = rows.locator("td.clip").all_inner_texts()
        for r, text in zip(reports, shown):
            assert text == (r.clip_id if r.clip_id is not None else f"catalog line {r.line}")
        assert HOSTILE_ID in shown  # the id is text on the page, not markup
        assert page.locator("img, script").count() == 0
        assert page.locator("#clips tbody tr").evaluate_all("rows => rows.map(r => r.dataset.status)") == [
            r.status for r in reports]

        for r in reports:
            if r.status in ("error", "invalid"):
                row = rows.filter(has=page.locator("td.error", has_text=r.error))
                assert row.count() == 1 and row.get_attribute("class") == "failed"
                assert r.error in page.locator("#failed").inner_text()
        headers = page.locator("#clips thead th").all_inner_texts()
        assert {"length s", "frames", "no-face frames", "sampler", "voice", "warnings", "error",
                "prepare s", "sample s", "render s"} <= set(headers)
        row_e = dict(zip(headers, rows.nth(5).locator("td").all_inner_texts()))
        assert row_e["sampler"] == "lcm x4" and row_e["voice"] == "builtin" and row_e["length s"] == "3.00"
        assert row_e["warnings"] == "audio 0.4 s shorter than the video" and row_e["sample s"] == "4.00"

        plot = page.locator("#throughput svg")
        assert plot.count() == 1 and plot.is_visible()
        box = plot.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        assert plot.locator("path").count() > 5  # axes, ticks and the curve were drawn
        assert "20.0 s" in page.locator("dl.summary").inner_text()  # wall time: first start to last finish
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    finally:
        page.close()


def test_report_page_without_timestamps(browser, tmp_path: Path) -> None:
    """A run whose clips were all skipped: still a page with every clip, and no plot instead of a broken one."""
    reports = [ClipReport(clip_id=f"s{i}", status="skipped") for i in range(3)]
    write_report(str(tmp_path), reports)
    page, seen = open_report(browser, tmp_path / "report.html")
    try:
        assert seen["console"] == [] and seen["pageerror"] == []
        assert page.locator("#clips tbody td.clip").all_inner_texts() == ["s0", "s1", "s2"]
        assert page.locator("#throughput svg").count() == 0 and "no throughput plot" in page.inner_text("#throughput")
    finally:
        page.close()


def test_throughput_points_follow_the_finishes() -> None:
    points = throughput_points(run_reports())
    assert points[0] == (0.0, 0)
    times, frames = zip(*points)
    assert list(times) == sorted(times) and list(frames) == sorted(frames)
    assert points[-1] == (20.0, 100 + 50 + 75)  # every clip with a finish time, counted once
    page = report_html(run_reports(), summarize(run_reports()))
    assert HOSTILE_ID not in page and "<script>alert" not in page  # escaped in the source too
