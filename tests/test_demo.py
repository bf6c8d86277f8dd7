"""The demo: its dubbing jobs have known answers, ``lsray demo`` dubs and scores them through
the batch job, and the shipped demo bundle beats keeping the source mouth (issue: demo bundle)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lsray.demo import DEMO_BUNDLE


def test_demo_jobs_differ_from_their_oracle_only_at_the_mouth(tmp_path):
    from lsray.catalog import read_catalog
    from lsray.eval.clip import load_frames
    from lsray.eval.video import psnr
    from lsray.demo.catalog import build_demo_catalog

    catalog, clips = build_demo_catalog(tmp_path, clips=2, seed=3)
    table = read_catalog(str(catalog))
    assert [r.clip_id for r in table.rows] == [c.clip_id for c in clips] and not table.invalid
    assert clips[-1].identity.kind == "photo" and clips[0].identity.kind == "cartoon"
    for clip in clips:
        assert clip.source_language != clip.target_language
        src, oracle = load_frames(clip.video), load_frames(clip.oracle)
        assert len(src) == len(oracle) == clip.frames
        geom = clip.geometry()
        inside, outside = [], []
        for k in range(0, clip.frames, 5):
            x0, y0, x1, y1 = geom[k].mouth_box
            a, b = src[k].astype(np.float32), oracle[k].astype(np.float32)
            inside.append(np.abs(a[y0:y1, x0:x1] - b[y0:y1, x0:x1]).mean())
            a[y0:y1, x0:x1] = b[y0:y1, x0:x1] = 0
            outside.append(psnr(a, b))
        assert np.mean(inside) > 3.0  # the mouths say different things
        assert np.median(outside) > 32.0  # and nothing else differs (beyond H.264)


@pytest.mark.slow
def test_lsray_demo_with_the_shipped_bundle(ray_cluster, tmp_path, capsys):
    """The README's main job, on the session cluster: every clip dubbed, scored and reported;
    then issue #7's bar: on held-out faces, sentences and voices the trained demo bundle's mouths
    are closer to the oracle than the source's, and in sync with the dub rather than another's."""
    import yaml

    from lsray.cli import main

    assert (DEMO_BUNDLE / "config.json").is_file(), "the demo bundle is missing: python jobs/train_demo.py"
    stages = tmp_path / "stages.yaml"
    stages.write_text(yaml.safe_dump({"sample": {"num_cpus": 0, "resources": {"accelerator": 1}},
                                      "prepare": {"num_cpus": 0.5}, "render": {"num_cpus": 0.5}}))
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--clips", "3", "--address", ray_cluster.address,
                 "--config", str(stages), "--voice", "builtin", "--quiet"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    summary, clips = report["summary"], report["clips"]
    assert summary["statuses"] == {"done": 3} and summary["scored"] == 3
    page = (out / "report.html").read_text()
    for c in clips:
        assert c["clip_id"] in page and (out / "dubbed" / f"{c['clip_id']}.mp4").is_file()
    assert page.count("data:image/png;base64,") >= 1 + 3 * 3  # the plot + three stills per clip
    printed = capsys.readouterr().out
    assert "report:" in printed
    for key in ("mouth_psnr", "mouth_psnr_keep_source", "lse_c", "lse_c_unsynced", "lse_c_oracle", "flicker"):
        assert summary[key] is not None and np.isfinite(summary[key]), key
    # Issue #7's bar for the bundle: the mouths are closer to the oracle than the source's by over
    # 1 dB, move in step with the dub (mouth PSNR vs the oracle peaks at zero shift), and the learned
    # scorer (the recipe's SyncNet) puts them above another clip's audio (on 80 held-out clips
    # +0.016 +- 0.005 with the bundle's guidance 2.0; these 3: 0.122 vs 0.094).
    assert summary["mouth_psnr_gain_db"] > 1.0, summary
    assert summary["oracle_lag_0"] >= 2, [c["metrics"]["oracle_lag"] for c in clips]
    assert summary["lse_c"] > summary["lse_c_unsynced"], summary
    paired = summary["paired"]["mouth_psnr_vs_keep_source"]  # the same claim clip by clip
    assert paired["n"] == 3 and paired["mean"] == pytest.approx(summary["mouth_psnr_gain_db"], abs=1e-6)
    assert "paired over the clips: mouth PSNR over keeping the source +" in printed
    # upgrade 5: each dub re-voiced towards the on-screen speaker (the catalog's reference voice)
    assert all(c["similarity_before"] is not None for c in clips)
    assert summary["speaker_similarity"] > summary["speaker_similarity_dub"], summary
    assert "voice: speaker similarity" in printed
