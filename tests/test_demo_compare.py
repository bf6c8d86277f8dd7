"""benchmarks/demo_compare.py: two demo runs on the same clips compared clip by clip."""

from __future__ import annotations

import json

import pytest

from benchmarks.demo_compare import compare, from_demo, main


def _run(psnr: list[float], lse_c: list[float], offset: float = 0.0) -> dict:
    clips = [{"clip_id": f"c{i}", "metrics": {"mouth_psnr": p, "lse_c": c, "mouth_sharpness": 0.5, "bilabial_hit": None},
              "lse_c_unsynced": 0.1} for i, (p, c) in enumerate(zip(psnr, lse_c))]
    clips.append({"clip_id": "broken", "metrics": {}, "lse_c_unsynced": None})  # not scored: left out of the pairs
    return {"summary": {"mouth_psnr": sum(psnr) / len(psnr) + offset, "mouth_psnr_keep_source": 18.0}, "clips": clips}


def test_later_runs_are_compared_with_the_first_clip_by_clip(tmp_path, capsys):
    old = _run([18.0, 19.0, 20.0, 21.0, 22.0, 23.0], [0.2] * 6)
    new = _run([18.5, 19.4, 20.6, 21.5, 22.4, 23.6], [0.25] * 6)
    result = compare({"v1": from_demo(old), "v2": from_demo(new)})
    assert [r["run"] for r in result["summary"]] == ["keep the source mouth", "v1", "v2"]
    assert result["summary"][0]["mouth_psnr"] == 18.0
    d = result["paired_vs_first"]["v2"]
    assert d["mouth_psnr"]["n"] == 6 and d["mouth_psnr"]["mean"] == pytest.approx(0.5) and d["mouth_psnr"]["wins"] == 6
    assert d["lse_c_margin"]["mean"] == pytest.approx(0.05)
    assert d["mouth_sharpness"]["mean"] == 0.0 and d["bilabial_hit"]["n"] == 0
    # each run's clips are kept, so a later variant can be paired with these runs
    assert result["per_clip"]["v2"]["c0"]["mouth_psnr"] == 18.5
    assert result["per_clip"]["v1"]["c5"]["lse_c_margin"] == pytest.approx(0.1)

    for name, run in (("a", old), ("b", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(run))
    assert main([f"v1={tmp_path / 'a'}", f"v2={tmp_path / 'b'}", "--out", str(tmp_path / "c.json")]) == 0
    printed = capsys.readouterr().out
    assert "| v2 | +0.50 +- " in printed and json.loads((tmp_path / "c.json").read_text())["runs"] == ["v1", "v2"]


def test_a_new_run_is_paired_with_a_run_stored_in_an_earlier_comparison(tmp_path, capsys):
    """``NAME=FILE.json@RUN`` stands for a run whose output folder is gone: the pairs and the
    summary rows are what the folders themselves would give."""
    old = _run([18.0, 19.0, 20.0, 21.0, 22.0, 23.0], [0.2] * 6)
    new = _run([18.5, 19.4, 20.6, 21.5, 22.4, 23.6], [0.25] * 6)
    for name, run in (("a", old), ("b", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(run))
    stored = tmp_path / "earlier.json"
    assert main([f"v1 (stored)={tmp_path / 'a'}", f"x={tmp_path / 'a'}", "--out", str(stored)]) == 0
    assert main([f"v1={stored}@v1 (stored)", f"v2={tmp_path / 'b'}", "--out", str(tmp_path / "later.json")]) == 0
    assert main([f"v1={tmp_path / 'a'}", f"v2={tmp_path / 'b'}", "--out", str(tmp_path / "direct.json")]) == 0
    later, direct = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("later", "direct"))
    assert later == direct
    assert later["paired_vs_first"]["v2"]["mouth_psnr"]["mean"] == pytest.approx(0.5)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([f"v1={stored}@v9", f"v2={tmp_path / 'b'}"])
    assert "no run 'v9' stored there; it holds 'v1 (stored)', 'x'" in capsys.readouterr().err
