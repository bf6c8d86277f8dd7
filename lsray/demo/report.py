"""Scoring the demo's dubbed clips against their oracles, and the HTML report.

Per clip: mouth PSNR / SSIM of the output vs the oracle, and of "keep the source mouth" (the
source video itself) vs the oracle, the baseline any lip-sync must beat; LSE-C / LSE-D of the
output with its dub, and LSE-C of the same output with another clip's dub ("unsynchronised"),
the floor a synchronised mouth must rise above; flicker, boundary jump, identity drift; per viseme
class (:mod:`lsray.eval.visemes`, from the dub's viseme track): bilabial closures hit, f/v bites
hit and open-vowel opening, for the output, the source and the oracle itself (~1: the check on
the measurement).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from lsray.demo.catalog import FPS, DemoClip

if TYPE_CHECKING:
    from lsray.eval.stats import PairedDifference


def lse_c_margin(lse_c: float | None, unsynced: float | None) -> float | None:
    """LSE-C with the clip's own dub minus with another clip's: the sync the scorer credits to
    this audio rather than to any talking mouth (None where either was not scored)."""
    return None if lse_c is None or unsynced is None else lse_c - unsynced


@dataclass
class DemoRow:
    clip: DemoClip
    status: str
    error: str | None = None
    output: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # output vs oracle (ClipMetrics fields)
    baseline: dict[str, Any] = field(default_factory=dict)  # source (keep the mouth) vs oracle
    lse_c_unsynced: float | None = None
    lse_c_oracle: float | None = None
    oracle_visemes: dict[str, Any] = field(default_factory=dict)  # the oracle's own viseme scores
    seconds_per_frame: float | None = None
    # voice conversion (the bundle's voice setting): the output's and the dub's speaker similarity
    # to the on-screen speaker, as the voice stage measured them (None: not converted)
    speaker_similarity: float | None = None
    similarity_before: float | None = None

    @property
    def lse_c_margin(self) -> float | None:
        return lse_c_margin(self.metrics.get("lse_c"), self.lse_c_unsynced)


def sync_faces(frames: np.ndarray, fallback_boxes) -> np.ndarray:
    """The faces SyncNet was trained on (aligned crops, as prepare_training stores them); the
    face boxes' square crops for any clip where a frame has no tracked face."""
    from lsray.eval.clip import face_crops
    from lsray.face import aligned_face_crops

    crops, indices = aligned_face_crops(frames, FPS, 128)
    return crops if len(indices) == len(frames) else face_crops(frames, fallback_boxes)


def unsynced_dub(clips: Sequence[DemoClip], i: int, dub: np.ndarray) -> np.ndarray:
    """The wrong audio for clip ``i``: the next clip's dub (16 kHz) at ``dub``'s length, or with a
    single clip its own dub a second late."""
    from lsray.eval.clip import load_audio_16k

    other = load_audio_16k(clips[(i + 1) % len(clips)].audio) if len(clips) > 1 else np.roll(dub, 16000)
    return np.pad(other, (0, max(0, len(dub) - len(other))))[: len(dub)]


def score_clips(clips: Sequence[DemoClip], outputs: dict[str, tuple[str, str | None, str | None, float | None]],
                scorer=None) -> list[DemoRow]:
    """``outputs``: clip id -> (status, output path or None, error, seconds per frame)."""
    from dataclasses import asdict

    from lsray.eval import evaluate_clip
    from lsray.eval.clip import load_audio_16k, load_frames
    from lsray.eval.lse import lse
    from lsray.eval.visemes import viseme_scores

    rows: list[DemoRow] = []
    for i, clip in enumerate(clips):
        status, path, error, spf = outputs.get(clip.clip_id, ("missing", None, "no report row", None))
        row = DemoRow(clip=clip, status=status, error=error, output=path, seconds_per_frame=spf)
        rows.append(row)
        if path is None or not Path(path).is_file():
            continue
        geom = clip.geometry()
        boxes = {"mouth_boxes": [g.mouth_box for g in geom], "face_boxes": [g.face_box for g in geom]}
        out_frames, oracle, source = load_frames(path), load_frames(clip.oracle), load_frames(clip.video)
        row.metrics = evaluate_clip(out_frames, oracle, name=clip.clip_id, visemes=clip.visemes, **boxes).model_dump()
        row.baseline = evaluate_clip(source, oracle, name=clip.clip_id, visemes=clip.visemes, **boxes).model_dump()
        if clip.visemes is not None:
            row.oracle_visemes = asdict(viseme_scores(oracle, oracle, boxes["mouth_boxes"], clip.visemes))
        if scorer is None:
            continue
        dub = load_audio_16k(clip.audio)
        other = unsynced_dub(clips, i, dub)
        faces = sync_faces(out_frames, boxes["face_boxes"])
        r = lse(scorer, faces, dub)
        row.metrics.update(lse_c=r.lse_c, lse_d=r.lse_d, av_offset=r.offset)
        row.lse_c_unsynced = lse(scorer, faces, other).lse_c
        row.lse_c_oracle = lse(scorer, sync_faces(oracle, boxes["face_boxes"]), dub).lse_c
        b = lse(scorer, sync_faces(source, boxes["face_boxes"]), dub)
        row.baseline.update(lse_c=b.lse_c, lse_d=b.lse_d, av_offset=b.offset)
    return rows


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def summarise(rows: Sequence[DemoRow]) -> dict[str, Any]:
    from lsray.eval.visemes import VISEME_METRICS, pooled

    scored = [r for r in rows if r.metrics]
    out: dict[str, Any] = {
        "clips": len(rows), "scored": len(scored),
        "statuses": {s: sum(r.status == s for r in rows) for s in sorted({r.status for r in rows})},
        "mouth_psnr": _mean(r.metrics.get("mouth_psnr") for r in scored),
        "mouth_psnr_keep_source": _mean(r.baseline.get("mouth_psnr") for r in scored),
        "mouth_ssim": _mean(r.metrics.get("mouth_ssim") for r in scored),
        "mouth_ssim_keep_source": _mean(r.baseline.get("mouth_ssim") for r in scored),
        "mouth_sharpness": _mean(r.metrics.get("mouth_sharpness") for r in scored),
        "mouth_sharpness_keep_source": _mean(r.baseline.get("mouth_sharpness") for r in scored),
        # clips whose mouth moves in step with the oracle's (no learned scorer involved)
        "oracle_lag_0": sum(r.metrics.get("oracle_lag") == 0 for r in scored),
        "oracle_lag_0_keep_source": sum(r.baseline.get("oracle_lag") == 0 for r in scored),
        "lse_c": _mean(r.metrics.get("lse_c") for r in scored),
        "lse_d": _mean(r.metrics.get("lse_d") for r in scored),
        "lse_c_unsynced": _mean(r.lse_c_unsynced for r in scored),
        "lse_c_oracle": _mean(r.lse_c_oracle for r in scored),
        "lse_c_keep_source": _mean(r.baseline.get("lse_c") for r in scored),
        "flicker": _mean(r.metrics.get("flicker") for r in scored),
        "boundary_jump": _mean(r.metrics.get("boundary_jump") for r in scored),
        "identity_drift": _mean(r.metrics.get("identity_drift") for r in scored),
        "seconds_per_frame": _mean(r.seconds_per_frame for r in rows),
        "speaker_similarity": _mean(r.speaker_similarity for r in scored),
        "speaker_similarity_dub": _mean(r.similarity_before for r in scored),
    }
    for key, frames in VISEME_METRICS.items():  # over all the clips' frames of the class together
        out[key] = pooled([r.metrics for r in scored], key)
        out[f"{key}_keep_source"] = pooled([r.baseline for r in scored], key)
        out[f"{key}_oracle"] = pooled([r.oracle_visemes for r in scored], key)
        out[frames] = sum(r.metrics.get(frames) or 0 for r in scored if r.metrics.get(key) is not None)
    if out["mouth_psnr"] is not None and out["mouth_psnr_keep_source"] is not None:
        out["mouth_psnr_gain_db"] = out["mouth_psnr"] - out["mouth_psnr_keep_source"]
    out["paired"] = {name: d.as_dict() for name, d in paired_goals(scored).items()}
    return out


def paired_goals(rows: Sequence[DemoRow]) -> dict[str, PairedDifference]:
    """The demo's claims as paired per-clip differences (:func:`lsray.eval.stats.paired_difference`):
    the output's mouth PSNR over keeping the source mouth, and its LSE-C over another clip's audio
    and over keeping the source mouth (the issue's goals: positive, p < 0.05 on 40 clips)."""
    from lsray.eval.stats import paired_difference

    m = lambda key: [r.metrics.get(key) for r in rows]  # noqa: E731
    b = lambda key: [r.baseline.get(key) for r in rows]  # noqa: E731
    return {"mouth_psnr_vs_keep_source": paired_difference(m("mouth_psnr"), b("mouth_psnr")),
            "lse_c_vs_unsynced": paired_difference(m("lse_c"), [r.lse_c_unsynced for r in rows]),
            "lse_c_vs_keep_source": paired_difference(m("lse_c"), b("lse_c"))}


def _png(image: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def _stills(row: DemoRow, size: int = 192) -> str:
    """Source | output | oracle at three moments, cropped around the face."""
    import cv2

    from lsray.eval.clip import load_frames

    frames = {k: load_frames(p) for k, p in (("source", row.clip.video), ("dubbed", row.output), ("oracle", row.clip.oracle))}
    n = min(len(v) for v in frames.values())
    geom = row.clip.geometry()
    cells = []
    for k in (n // 4, n // 2, 3 * n // 4):
        x0, y0, x1, y1 = geom[k].face_box
        tiles = []
        for name in ("source", "dubbed", "oracle"):
            crop = frames[name][k][y0:y1, x0:x1]
            tiles.append(cv2.resize(crop, (size, int(size * crop.shape[0] / max(crop.shape[1], 1)))))
        h = min(t.shape[0] for t in tiles)
        cells.append(f'<img src="{_png(np.concatenate([t[:h] for t in tiles], axis=1))}" alt="frame {k}">'
                     f"<div class=cap>frame {k}: source | dubbed | oracle</div>")
    return "".join(f"<div class=still>{c}</div>" for c in cells)


def _plot(rows: Sequence[DemoRow]) -> str:
    """Bar chart of mouth PSNR per clip: dubbed vs keep-the-source-mouth (PNG data URI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r.metrics]
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    x = np.arange(len(scored))
    ax.bar(x - 0.2, [r.baseline.get("mouth_psnr") or 0 for r in scored], 0.4, label="keep source mouth", color="#bbb")
    ax.bar(x + 0.2, [r.metrics.get("mouth_psnr") or 0 for r in scored], 0.4, label="lsray", color="#2a7")
    ax.set_xticks(x, [r.clip.clip_id for r in scored], rotation=20, fontsize=7)
    ax.set_ylabel("mouth PSNR vs oracle (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.{digits}f}"
    return html.escape(str(v))


def _viseme_cell(m: dict[str, Any], b: dict[str, Any], key: str) -> str:
    """``output (keep source)`` over ``n`` frames of the class, or ``-`` when the clip has none."""
    from lsray.eval.visemes import VISEME_METRICS

    if m.get(key) is None:
        return "-"
    return f"{_fmt(m.get(key))} ({_fmt(b.get(key))})<br><small>{m.get(VISEME_METRICS[key])} frames</small>"


def write_report(out_dir: str | Path, rows: Sequence[DemoRow], summary: dict[str, Any], bundle: str) -> Path:
    """``out_dir/report.html`` (self-contained: images inline) and ``out_dir/metrics.json``."""
    from lsray.media.atomic import atomic_output

    out_dir = Path(out_dir)
    with atomic_output(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps({"summary": summary, "clips": [
            {"clip_id": r.clip.clip_id, "status": r.status, "error": r.error, "output": r.output, "metrics": r.metrics,
             "keep_source": r.baseline, "lse_c_unsynced": r.lse_c_unsynced, "lse_c_oracle": r.lse_c_oracle,
             "oracle_visemes": r.oracle_visemes, "seconds_per_frame": r.seconds_per_frame,
             "speaker_similarity": r.speaker_similarity, "similarity_before": r.similarity_before} for r in rows]}, indent=2, default=str))
    head = ("clip", "languages", "status", "frames", "mouth PSNR dB", "keep-source PSNR dB", "mouth SSIM", "oracle lag", "LSE-C",
            "LSE-C unsynced", "LSE-C oracle", "LSE-D", "bilabial hit (keep source)", "f/v hit (keep source)",
            "open vowel (keep source)", "flicker", "boundary jump", "s / frame")
    body = []
    for r in rows:
        m, b = r.metrics, r.baseline
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            html.escape(r.clip.clip_id), f"{r.clip.source_language} &rarr; {r.clip.target_language}",
            html.escape(r.status) + (f"<br><small>{html.escape(r.error or '')}</small>" if r.error else ""),
            r.clip.frames, _fmt(m.get("mouth_psnr")), _fmt(b.get("mouth_psnr")), _fmt(m.get("mouth_ssim"), 3),
            _fmt(m.get("oracle_lag")), _fmt(m.get("lse_c")), _fmt(r.lse_c_unsynced), _fmt(r.lse_c_oracle), _fmt(m.get("lse_d")),
            *(_viseme_cell(m, b, key) for key in ("bilabial_hit", "labiodental_hit", "open_vowel")),
            _fmt(m.get("flicker")), _fmt(m.get("boundary_jump")), _fmt(r.seconds_per_frame, 3))) + "</tr>")
    stills = "".join(f"<h3>{html.escape(r.clip.clip_id)}</h3>{_stills(r)}" for r in rows if r.metrics)
    videos = "".join(f'<li><a href="{html.escape(Path(r.output).relative_to(out_dir).as_posix())}">{html.escape(r.clip.clip_id)}</a></li>'
                     for r in rows if r.output and Path(r.output).is_relative_to(out_dir))
    s = summary
    headline = (f"Mouth PSNR vs oracle <b>{_fmt(s.get('mouth_psnr'))} dB</b> against {_fmt(s.get('mouth_psnr_keep_source'))} dB "
                f"for keeping the source mouth ({_fmt(s.get('mouth_psnr_gain_db'))} dB); LSE-C <b>{_fmt(s.get('lse_c'))}</b> "
                f"against {_fmt(s.get('lse_c_unsynced'))} with unsynchronised audio (oracle {_fmt(s.get('lse_c_oracle'))}); "
                f"mouth in step with the oracle's (lag 0) in {s.get('oracle_lag_0')} of {s.get('scored')} clips "
                f"({s.get('oracle_lag_0_keep_source')} keeping the source mouth). Lips shut on "
                f"<b>{_fmt(s.get('bilabial_hit'))}</b> of the {s.get('bilabial_frames')} frames where the oracle closes them for "
                f"/p b m/ ({_fmt(s.get('bilabial_hit_keep_source'))} keeping the source mouth, {_fmt(s.get('bilabial_hit_oracle'))} "
                f"the oracle); f/v bite on {_fmt(s.get('labiodental_hit'))} of {s.get('labiodental_frames')} frames "
                f"({_fmt(s.get('labiodental_hit_keep_source'))}); open vowels {_fmt(s.get('open_vowel'))} as wide as the "
                f"oracle's ({_fmt(s.get('open_vowel_keep_source'))}).")
    if s.get("speaker_similarity") is not None:
        headline += (f" Voice: the dub re-voiced as the on-screen speaker, speaker similarity <b>"
                     f"{_fmt(s['speaker_similarity'])}</b> (the dub as given {_fmt(s.get('speaker_similarity_dub'))}).")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lsray demo report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:4px 6px;text-align:right}}td:first-child{{text-align:left}}
.still{{display:inline-block;margin:4px}}.cap{{font-size:11px;color:#555}}</style></head><body>
<h1>lsray demo</h1>
<p>{len(rows)} held-out synthetic dubbing jobs (faces, sentences and voices never seen in training; the last is a
photo), dubbed by the batch job on local Ray with the bundle <code>{html.escape(bundle)}</code>.</p>
<p>{headline}</p>
<img src="{_plot(rows)}" alt="mouth PSNR per clip">
<h2>Per clip</h2><table><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{"".join(body)}</table>
<h2>Videos</h2><ul>{videos}</ul>
<h2>Before / after</h2>{stills}
</body></html>
"""
    path = out_dir / "report.html"
    with atomic_output(path) as tmp:
        tmp.write_text(page)
    return path
