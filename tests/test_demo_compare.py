"""benchmarks/demo_compare.py: two demo runs on the same clips compared clip by clip."""

from __future__ import annotations

import json

import pytest

from benchmarks.demo_compare import compare, main


def _run(psnr: list[float], lse_c: list[float], offset: float = 0.0) -> dict:
    clips = [{"clip_id": f"c{i}", "metrics": {"mouth_psnr": p, "lse_c": c, "mouth_sharpness": 0.5, "bilabial_hit": None},
              "lse_c_unsynced": 0.1} for i, (p, c) in enumerate(zip(psnr, lse_c))]
    clips.append({"clip_id": "broken", "metrics": {}, "lse_c_unsynced": None})  # not scored: left out of the pairs
    return {"summary": {"mouth_psnr": sum(psnr) / len(psnr) + offset, "mouth_psnr_keep_source": 18.0}, "clips": clips}


def test_later_runs_are_compared_with_the_first_clip_by_clip(tmp_path, capsys):
    old = _run([18.0, 19.0, 20.0, 21.0, 22.0, 23.0], [0.2] * 6)
    new = _run([18.5, 19.4, 20.6, 21.5, 22.4, 23.6], [0.25] * 6)
    result = compare({"v1": old, "v2": new})
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
