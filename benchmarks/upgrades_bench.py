"""The upgrades, measured side by side on the synthetic test set (held-out faces, sentences, voices).

    python benchmarks/upgrades_bench.py [--work ~/.cache/lsray/demo-recipe] [--steps 150] [--clips 4]
                                        [--phoneme DIR] [--out benchmarks/results/upgrades.json]

Protocol (one run, same data, same seeds, same fine-tuning budget for every trained variant):
the demo bundle (jobs/configs/demo.yaml: hierarchical temporal attention on, Whisper-only audio,
no discriminator, x0 objective) is fine-tuned ``--steps`` more steps on the recipe's shards as

- ``reference``: nothing changed (the control: what the extra steps alone buy);
- ``- hierarchical temporal``: temporal band and global anchors removed (LatentSync's plain
  full-window temporal attention), fine-tuned so the weights can adapt to it;
- ``+ fused audio``: Whisper + 128-d phoneme features (K/V zero-padded at load) from the phoneme
  model ``--phoneme`` (trained by ``jobs/train_phoneme.py``; without one a random Wav2Vec2, and the
  row says so);
- ``+ discriminator``: the multi-scale lip discriminator's adversarial + feature-matching loss
  (and the pixel reconstruction it needs);

and ``consistency`` is the reference distilled into an LCM student for ``--steps`` steps (the
teacher at the bundle's guidance scale), sampled at 1, 2 and 4 steps. Each variant samples as the
bundle does (its DDIM steps, guidance and detail transfer), dubs the same demo clips in-process
(the clip pipeline) and is scored against the oracles: mouth PSNR / SSIM, LSE-C / LSE-D (the recipe's
SyncNet), bilabial / f/v hits and open-vowel opening (lsray.eval.visemes), flicker, boundary jump,
seconds per frame (sampling wall time: the anchor pass, windows and VAE, over frames; this machine). A second table gives each variant
minus the reference clip by clip (:func:`lsray.eval.stats.paired_difference`: mean +- 95 % CI,
Wilcoxon p), which is what says whether an upgrade helped beyond the clips' spread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def finetune(name: str, start: Path, data: dict[str, Any], work: Path, steps: int, **over: Any) -> Path:
    from lsray.train.config import load_job_config
    from lsray.train.runner import train_local

    out = work / name
    if (out / "config.json").is_file():
        return out
    cfg = {"job": "stage2", "bundle": str(start), "out": str(out), "steps": steps, "lr": 2e-4, "trainable": [""],
           "unet_overrides": {}, "recon_weight": 0.0, "smooth_weight": 0.0, "anchor_weight": 0.0, "discriminator": None,
           "data": data}
    cfg.update(over)
    t0 = time.perf_counter()
    train_local(load_job_config(cfg))
    print(f"  {name}: {steps} steps in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


def distill(start: Path, data: dict[str, Any], work: Path, steps: int, w: float) -> Path:
    """``w``: the teacher's guidance scale, the bundle's own, so the student imitates the DDIM rows."""
    from lsray.train.config import load_job_config
    from lsray.train.runner import train_local

    out = work / "consistency"
    if not (out / "config.json").is_file():
        train_local(load_job_config({
            "job": "distill", "teacher": str(start), "out": str(out), "steps": steps, "lr": 2e-4,
            "time_cond_proj_dim": 32, "num_ddim_timesteps": 20, "w_min": w, "w_max": w, "teacher_guidance": w,
            "teacher_steps": 4, "student_steps": 4, "ema_decay": 0.9, "data": data}))
    return out


def evaluate(bundle: Path, clips, scorer, out_dir: Path, precision: str | None = None, **options: Any) -> dict[str, Any]:
    """Dub ``clips`` with ``bundle`` (at ``precision``, None: the bundle's) and DubOptions(``options``),
    in-process; their scores against the oracles, pooled and per clip."""
    from lsray.demo.report import score_clips, summarise
    from lsray.bundle import load_bundle
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec
    from lsray.pipeline.flow import ClipFlow

    flow = ClipFlow(load_bundle(str(bundle), precision=precision), encode_preset="veryfast")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for clip in clips:
        out = out_dir / f"{clip.clip_id}.mp4"
        # the clip's own reference voice, as the demo's catalog gives it: a bundle that converts
        # voices (v2) needs 2 s of the speaker, more than the short source clips hold
        r = run_clip(flow, ClipSpec(clip.clip_id, clip.video, clip.audio, str(out), DubOptions(seed=0, **options),
                                    voice_reference=clip.voice_reference))
        if r.status != "done":  # a variant scored on fewer clips than the others is no comparison
            raise RuntimeError(f"{bundle}: {clip.clip_id} {r.status}: {r.error}")
        sample = r.timings.get("anchors", 0.0) + r.timings.get("unet", 0.0) + r.timings.get("vae", 0.0)
        results[clip.clip_id] = (r.status, str(out) if out.is_file() else None, r.error, sample / max(r.frames, 1))
    scored = score_clips(clips, results, scorer)
    s = summarise(scored)
    keep = ("mouth_psnr", "mouth_psnr_keep_source", "mouth_ssim", "lse_c", "lse_d", "lse_c_unsynced", "flicker",
            "boundary_jump", "seconds_per_frame", "bilabial_hit", "bilabial_hit_keep_source", "bilabial_frames",
            "labiodental_hit", "labiodental_frames", "open_vowel")
    # per clip, for the paired comparisons against the reference (PAIRED)
    per_clip = [{"clip_id": r.clip.clip_id, **{k: r.metrics.get(k) for k, _ in PAIRED}, "lse_c_margin": r.lse_c_margin}
                for r in scored]
    return {**{k: s.get(k) for k in keep}, "per_clip": per_clip}


#: What each variant is compared with the reference on, clip by clip (key, README header).
PAIRED = [("mouth_psnr", "mouth PSNR dB"), ("lse_c_margin", "LSE-C over another clip's audio"),
          ("bilabial_hit", "bilabial hit"), ("open_vowel", "open vowel")]


def paired_table(rows: list[dict[str, Any]]) -> str:
    """Each variant minus the first row (the reference), clip by clip: mean +- 95 % CI (Wilcoxon p)."""
    from lsray.eval.stats import paired_difference

    ref = {c["clip_id"]: c for c in rows[0]["per_clip"]}
    lines = ["| variant vs reference | " + " | ".join(h for _, h in PAIRED) + " |", "|---" * (len(PAIRED) + 1) + "|"]
    for r in rows[1:]:
        cells = []
        for key, _ in PAIRED:
            mine = [c.get(key) for c in r["per_clip"]]
            theirs = [ref.get(c["clip_id"], {}).get(key) for c in r["per_clip"]]
            cells.append(paired_difference(mine, theirs).describe(2 if key == "mouth_psnr" else 3))
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from lsray.preload import torch_first

    torch_first()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="~/.cache/lsray/demo-recipe", help="the demo recipe's work folder (shards)")
    p.add_argument("--bundle", default=str(REPO / "lsray" / "demo" / "bundle"))
    p.add_argument("--syncnet", default=str(REPO / "lsray" / "demo" / "syncnet"))
    p.add_argument("--steps", type=int, default=150, help="fine-tuning / distillation steps per variant")
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--phoneme", default=None, metavar="DIR",
                   help="a trained phoneme-CTC model (python jobs/train_phoneme.py) for + fused audio; "
                        "default: the recipe's own (WORK/phoneme) if it has one, else a random one")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "upgrades.json"))
    args = p.parse_args(argv)

    import torch

    from lsray.demo.catalog import build_demo_catalog
    from lsray.eval import ProjectSyncNetScorer
    from lsray.bundle.config import BundleConfig
    from lsray.models.syncnet import SyncNet
    from lsray.train.recipe import RecipeConfig
    from lsray.train.tiny import tiny_phoneme_encoder

    torch.set_num_threads(2)
    work = Path(args.work).expanduser()
    shards, bench = work / "shards", work / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    _, clips = build_demo_catalog(bench / "clips", clips=args.clips, seed=1)
    scorer = ProjectSyncNetScorer(SyncNet.from_pretrained(args.syncnet))
    start = Path(args.bundle)
    recipe = RecipeConfig.read(work / "recipe.yaml")  # what the bundle was trained on, as the recipe wrote it
    data = {**recipe.stage2.get("data", {}), "shards": str(shards), "image_size": recipe.resolution}

    # the fused variant's phoneme branch: a trained phoneme model (upgrade 1 as intended) or, without
    # one, a random Wav2Vec2 (what the table measured before the phoneme job existed)
    trained = Path(args.phoneme) if args.phoneme else work / "phoneme"
    trained = trained if (trained / "config.json").is_file() else None
    fused_shards = work / ("shards-fused" if trained is None else "shards-fused-trained")
    phoneme_dir = work / "assets" / "phoneme" if trained is None else trained
    fused_name = "+ fused audio" + (" (random phoneme model)" if trained is None else "")
    if not (fused_shards / "index.parquet").is_file():
        from lsray.audio.phoneme import PhonemeEncoder
        from lsray.audio.whisper import WhisperEncoder
        from lsray.train.data import prepare_training

        if trained is None:
            encoder = tiny_phoneme_encoder(seed=0)
            encoder.save_pretrained(phoneme_dir)
        else:
            encoder = PhonemeEncoder.from_pretrained(trained, device=torch.device("cpu"))
        prepare_training(str(work / "world" / "catalog.jsonl"), str(fused_shards),
                         whisper=WhisperEncoder.from_pretrained(str(start / "whisper")), phoneme=encoder,
                         resolutions=(recipe.resolution,))
    start_cfg = BundleConfig.read(start / "config.json")
    whisper_dim = start_cfg.audio.whisper.dim

    rows: list[dict[str, Any]] = []

    def add(name: str, bundle: Path, **options: Any) -> None:
        t0 = time.perf_counter()
        m = evaluate(bundle, clips, scorer, bench / "outputs" / name.replace(" ", "_"), **options)
        rows.append({"variant": name, **m})
        print(f"{name}: {json.dumps(m)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    ref = finetune("reference", start, data, bench, args.steps)
    add("reference (all upgrades of the demo bundle, DDIM 4 steps)", ref)
    add("- hierarchical temporal", finetune("no-temporal", start, data, bench, args.steps,
                                            unet_overrides={"temporal": {"band": None, "anchor_stride": None}}))
    add(fused_name, finetune("fused" if trained is None else "fused-trained", start, {**data, "shards": str(fused_shards)}, bench, args.steps,
                                  phoneme=str(phoneme_dir), unet_overrides={"cross_attention_dim": whisper_dim + 128}))
    add("+ discriminator", finetune("discriminator", start, data, bench, args.steps, recon_weight=1.0,
                                    discriminator={"crop_size": 48, "ndf": 16, "n_layers": 2, "norm_groups": 4},
                                    adv_weight=0.05, adv_warmup_steps=max(1, args.steps // 5)))
    student = distill(ref, data, bench, args.steps, start_cfg.sampler.guidance_scale)
    for n in (1, 2, 4):
        add(f"consistency, {n} step{'s' if n > 1 else ''}", student, sampler="lcm", steps=n)
    result = {"protocol": __doc__, "steps": args.steps, "clips": [c.clip_id for c in clips], "rows": rows}
    from lsray.storage import write_json

    write_json(args.out, result)  # atomic, folders made
    print(markdown_table(rows))
    print(paired_table(rows))
    return 0


COLUMNS = [("mouth_psnr", "mouth PSNR dB", 2), ("mouth_ssim", "mouth SSIM", 3), ("lse_c", "LSE-C", 2),
           ("lse_d", "LSE-D", 2), ("bilabial_hit", "bilabial hit", 2), ("labiodental_hit", "f/v hit", 2),
           ("open_vowel", "open vowel", 2), ("flicker", "flicker", 2), ("boundary_jump", "boundary jump", 2),
           ("seconds_per_frame", "s / frame", 3)]


def markdown_table(rows: list[dict[str, Any]], cols: list[tuple[str, str, int]] = COLUMNS,
                   lead: tuple[str, ...] = ("variant",)) -> str:
    """Rows as a README table: the ``lead`` keys as they are, then ``cols`` (key, header, decimals)."""
    fmt = lambda v, d: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = ["| " + " | ".join([*lead, *(c[1] for c in cols)]) + " |", "|---" * (len(cols) + len(lead)) + "|"]
    for r in rows:
        lines.append("| " + " | ".join([*(str(r[k]) for k in lead), *(fmt(r.get(k), d) for k, _, d in cols)]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
