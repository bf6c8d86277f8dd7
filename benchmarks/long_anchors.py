"""Long clips, side by side: full-window attention, in-window hierarchical attention, long-range anchors.

    python benchmarks/long_anchors.py [--work ~/.cache/lsray/long-anchors] [--steps 150] [--world 48]
                                      [--seconds 30 60] [--out benchmarks/results/long_anchors.json]

Protocol (one run, same data, same seeds, same fine-tuning budget for every variant): a small
synthetic world (``--world`` train-split clips) is prepared into shards with the demo bundle's
Whisper, and the demo bundle (two-level UNet, 128 px, hierarchical temporal attention, trained on
8-frame sequences) is fine-tuned ``--steps`` stage-2 steps on 64-frame sequences as

- (a) ``full-window``: LatentSync's temporal attention (no band, no anchor branch), anchors off;
- (b) ``hierarchical``: band +-2 and the in-window anchor branch, anchors off (today's sampling);
- (c) ``long-range anchors``: (b) trained to follow pinned keyframes (``anchors`` in the stage-2
  config), sampled with the anchor pass (keyframes every 8th frame, sequences of 8, overlap 1).

Each variant dubs the same held-out long clips (``--seconds``: a test identity saying many test
sentences, dubbed into another language; the synthetic world renders each clip's oracle) through
the clip pipeline in-process, 10 s shards, and is scored:

- boundary jump: mean mouth-region frame-to-frame change at window and shard boundaries over the
  mean change inside windows (raw: the issue's definition; and against the oracle's own changes);
- mouth texture consistency: the output's mouth colour minus the oracle's, averaged per window;
  the standard deviation of that residual across windows (mean colour and contrast), in grey levels;
- drift, first 5 s vs last 5 s: the face descriptor's cosine distance (identity), and the change of
  the mouth's colour residual (grey levels);
- mouth PSNR vs the oracle, LSE-C (the demo's SyncNet), flicker;
- cost: UNet seconds of the anchor pass over the windows' (this machine, 2 cores; on CPU the anchor
  pass runs on one thread, see ``lsray.device.single_thread``, and its sequences are not batched),
  and UNet frame-passes of the anchor pass over the windows' (independent of threads and batching).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FPS, SIZE = 25, 256


def world_shards(work: Path, clips: int, whisper: Path) -> Path:
    """Train-split clips of the synthetic world, each saying four sentences (~6-9 s, so that
    64-frame training sequences fit), prepared into training shards at 128 px."""
    from lsray.audio.whisper import WhisperEncoder
    from lsray.media.atomic import atomic_output
    from lsray.synth import world
    from lsray.synth.render import write_clip, write_speech_wav
    from lsray.synth.speech import synthesize
    from lsray.train.data import INDEX_FILE, prepare_training

    out, root = work / "shards", work / "world"
    if (out / INDEX_FILE).is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    train = world.sentences("train")
    rows = []
    for i, pair in enumerate(world.sample_pairs(7, clips, "train")):
        same = [t for la, t in train if la == pair.language and t != pair.text]
        text = " ".join([pair.text, *(same[int(j)] for j in rng.choice(len(same), min(3, len(same)), replace=False))])
        speech = synthesize(text, pair.voice)
        video = write_clip(root / f"w{i:04d}.mp4", pair.identity, speech, fps=FPS, size=SIZE)
        rows.append({"clip_id": f"w{i:04d}", "video": str(video), "audio": str(write_speech_wav(root / f"w{i:04d}.wav", speech))})
    catalog = root / "catalog.jsonl"
    with atomic_output(catalog) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prepare_training(str(catalog), str(out), whisper=WhisperEncoder.from_pretrained(str(whisper)), resolutions=(128,))
    return out


def long_clip(root: Path, seconds: float, seed: int):
    """A held-out long dubbing job and its oracle: a test identity's source speech in one
    language, the dub (many test sentences, another voice) in another, both ``seconds`` long."""
    import soundfile as sf

    from lsray.demo.catalog import DemoClip, _fit
    from lsray.media import VideoWriter
    from lsray.synth import world
    from lsray.synth.render import render_frames
    from lsray.synth.speech import synthesize
    from lsray.synth.visemes import viseme_track

    cid = f"long{int(seconds)}s"
    rng = np.random.default_rng([31415, seed])
    sentences = world.sentences("test")
    langs = sorted({lang for lang, _ in sentences})
    src_lang, dub_lang = (str(x) for x in rng.choice(langs, 2, replace=False))
    ident = world.identity("test", int(rng.integers(1000)))
    frames = int(seconds * FPS)

    def speech(lang: str):
        texts = [t for la, t in sentences if la == lang]
        voices = world.voices("test", lang)
        voice = voices[int(rng.integers(len(voices)))]
        order = rng.permutation(len(texts))
        picked, said = [], None
        while said is None or said.duration_s < seconds:  # whole sentences until it is long enough
            picked.append(texts[int(order[len(picked) % len(order)])])
            if len(picked) % 4 == 0 or len(picked) >= 2 * len(texts):
                said = synthesize(" ".join(picked), voice)
        return said

    root.mkdir(parents=True, exist_ok=True)
    paths = {"oracle": root / f"{cid}.oracle.mp4", "source": root / f"{cid}.source.mp4"}
    dub_wav, src_wav = root / f"{cid}.dub.wav", root / f"{cid}.source.wav"
    if not all(p.is_file() for p in (*paths.values(), dub_wav)):
        dub, src = speech(dub_lang), speech(src_lang)
        sf.write(str(dub_wav), _fit(dub.samples, int(round(seconds * dub.sr))), dub.sr, subtype="PCM_16")
        sf.write(str(src_wav), _fit(src.samples, int(round(seconds * src.sr))), src.sr, subtype="PCM_16")
        tracks = {"source": (viseme_track(src.phonemes, seconds, FPS)[:frames], src_wav),
                  "oracle": (viseme_track(dub.phonemes, seconds, FPS)[:frames], dub_wav)}
        for kind, (params, audio) in tracks.items():
            with VideoWriter(paths[kind], FPS, crf=14, preset="veryfast", audio=audio) as writer:
                for frame in render_frames(ident, params, FPS, SIZE):
                    writer.write(frame)
    return DemoClip(clip_id=cid, video=str(paths["source"]), audio=str(dub_wav), oracle=str(paths["oracle"]),
                    source_language=src_lang, target_language=dub_lang, frames=frames, identity=ident)


def mouth_stats(frames: np.ndarray, boxes) -> np.ndarray:
    """(n, 2): mean and standard deviation of each frame's mouth crop (grey levels)."""
    from lsray.eval.video import mouth_crops

    crops = mouth_crops(frames, boxes).astype(np.float32)  # n h w 3
    return np.stack([crops.mean(axis=(1, 2, 3)), crops.std(axis=(1, 2, 3))], axis=1)


def long_metrics(out: np.ndarray, oracle: np.ndarray, clip, shard_starts: list[int]) -> dict[str, float]:
    from lsray.eval import video as vm

    n = min(len(out), len(oracle))
    out, oracle = out[:n], oracle[:n]
    geom = clip.geometry()[:n]
    mouth = [g.mouth_box for g in geom]
    face = [g.face_box for g in geom]
    residual = mouth_stats(out, mouth) - mouth_stats(oracle, mouth)  # n 2
    windows = [residual[a : a + 16].mean(axis=0) for a in range(0, n - 15, 16)]
    per_window = np.stack(windows)  # W 2
    k = min(5 * FPS, n // 3)  # 5 s (shorter smoke-test clips: a third)

    def descriptor(frames, idx):
        return np.mean([vm.face_descriptor(frames[i], face[i], mouth[i]) for i in idx], axis=0)

    first, last = range(0, k, 5), range(n - k, n, 5)

    def cos_dist(frames):
        a, b = descriptor(frames, first), descriptor(frames, last)
        return float(1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    return {
        "boundary_jump": vm.boundary_jump(out, None, mouth, 16, shard_starts),
        "boundary_jump_vs_oracle": vm.boundary_jump(out, oracle, mouth, 16, shard_starts),
        "oracle_boundary_jump": vm.boundary_jump(oracle, None, mouth, 16, shard_starts),
        "texture_colour_std": float(per_window[:, 0].std()),
        "texture_contrast_std": float(per_window[:, 1].std()),
        "identity_drift_5s": cos_dist(out) - cos_dist(oracle),
        "mouth_colour_drift_5s": float(abs(residual[-k:, 0].mean() - residual[:k, 0].mean())),
        "mouth_psnr": vm.mouth_psnr(out, oracle, mouth),
        "flicker": vm.flicker(out, oracle, mouth),
    }


def dub(bundle: Path, clip, out_dir: Path, scorer, **options: Any) -> dict[str, Any]:
    from lsray.bundle import load_bundle
    from lsray.eval.clip import load_audio_16k, load_frames
    from lsray.eval.lse import lse
    from lsray.demo.report import sync_faces
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{clip.clip_id}.mp4"
    flow = ClipFlow(load_bundle(str(bundle)), encode_preset="veryfast")
    opts = DubOptions(seed=0, **options)
    t0 = time.perf_counter()
    result = run_clip(flow, ClipSpec(clip.clip_id, clip.video, clip.audio, str(out), opts))
    wall = time.perf_counter() - t0
    if result.status != "done":
        raise RuntimeError(f"{clip.clip_id}: {result.status} {result.error}")
    plan_shards = [a for a in range(0, result.frames, max(1, round(opts.segment_seconds * FPS / 16)) * 16)][1:]
    frames, oracle = load_frames(out), load_frames(clip.oracle)
    m = long_metrics(frames, oracle, clip, plan_shards)
    m["lse_c"] = lse(scorer, sync_faces(frames, [g.face_box for g in clip.geometry()]), load_audio_16k(clip.audio)).lse_c
    t = result.timings
    trace = (result.sampling or {}).get("anchors")
    windows = -(-result.frames // 16)
    m.update(frames=result.frames, wall_s=wall, unet_s=t.get("unet", 0.0), anchors_unet_s=t.get("anchors", 0.0),
             anchor_share=t.get("anchors", 0.0) / max(t.get("unet", 0.0), 1e-9),
             # UNet frame-passes of the anchor pass over the windows' (16 + 1 context frame each, but
             # the last): the share independent of threads and batching
             anchor_frame_share=(trace["sequences"] * trace["sequence"] / (17 * windows - 1)) if trace else 0.0,
             anchors=trace)
    return m


def main(argv: list[str] | None = None) -> int:
    from lsray.preload import torch_first

    torch_first()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="~/.cache/lsray/long-anchors")
    p.add_argument("--bundle", default=str(REPO / "lsray" / "demo" / "bundle"))
    p.add_argument("--syncnet", default=str(REPO / "lsray" / "demo" / "syncnet"))
    p.add_argument("--steps", type=int, default=150, help="stage-2 steps per variant (same budget for each)")
    p.add_argument("--world", type=int, default=48, help="train-split clips to fine-tune on")
    p.add_argument("--seconds", type=float, nargs="+", default=[30.0, 60.0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "long_anchors.json"))
    args = p.parse_args(argv)

    import torch

    from benchmarks.upgrades_bench import finetune
    from lsray.eval import ProjectSyncNetScorer
    from lsray.models.syncnet import SyncNet

    torch.set_num_threads(2)
    work = Path(args.work).expanduser()
    start = Path(args.bundle)
    t0 = time.perf_counter()
    shards = world_shards(work, args.world, start / "whisper")
    print(f"world + shards: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    data = {"shards": str(shards), "image_size": 128, "seq_len": 64, "stride": 32, "batch_size": 1,
            "cache_in_memory": True, "shared_noise": 0.5}
    train = {"lr": 2e-4, "smooth_weight": 0.1}
    variants = {
        "(a) full-window attention": (finetune("full", start, data, work, args.steps, **train,
                                               unet_overrides={"temporal": {"band": None, "anchor_stride": None}}),
                                      {"anchors": "off"}),
        "(b) in-window hierarchical": (finetune("hier", start, data, work, args.steps, **train), {"anchors": "off"}),
        "(c) long-range anchors": (finetune("anchors", start, data, work, args.steps, **train, anchors={}),
                                   {"anchors": "on"}),
    }
    scorer = ProjectSyncNetScorer(SyncNet.from_pretrained(args.syncnet))
    clips = [long_clip(work / "clips", s, seed=i) for i, s in enumerate(args.seconds)]
    rows = []
    for clip in clips:
        for name, (bundle, options) in variants.items():
            t1 = time.perf_counter()
            m = dub(bundle, clip, work / "outputs" / name.split()[0].strip("()"), scorer, **options)
            rows.append({"clip": clip.clip_id, "seconds": clip.frames / FPS, "variant": name, **m})
            print(f"{clip.clip_id} {name}: {json.dumps({k: v for k, v in m.items() if k != 'anchors'})} "
                  f"({time.perf_counter() - t1:.0f} s)", file=sys.stderr)
    result = {"protocol": __doc__, "steps": args.steps, "world_clips": args.world, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.out)
    print(markdown_table(rows))
    return 0


COLUMNS = [("boundary_jump", "boundary jump", 2), ("boundary_jump_vs_oracle", "jump vs oracle", 2),
           ("texture_colour_std", "mouth colour std across windows", 2),
           ("texture_contrast_std", "mouth contrast std across windows", 2),
           ("identity_drift_5s", "identity drift 5 s", 4), ("mouth_colour_drift_5s", "mouth colour drift 5 s", 2),
           ("mouth_psnr", "mouth PSNR dB", 2), ("lse_c", "LSE-C", 3), ("flicker", "flicker", 2),
           ("anchor_share", "anchor pass / windows, UNet s", 3),
           ("anchor_frame_share", "anchor pass / windows, UNet frames", 3)]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    from benchmarks.upgrades_bench import markdown_table as table

    return table([{**r, "clip": f"{r['seconds']:.0f} s"} for r in rows], COLUMNS, lead=("clip", "variant"))


if __name__ == "__main__":
    sys.exit(main())
