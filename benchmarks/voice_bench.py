"""Voice-conversion benchmark: similarity gain, content kept, real-time factor per backend.

Setup (all espeak, so it runs offline and the ground truth is known): the "on-screen speaker"
is an English espeak voice; its reference is cut with :func:`lsray.voice.cut_reference` from a
track of it reading sentences between silences. The "dubbed audio" is another voice of the
other sex in another language. For each pair and backend:

- similarity: resemblyzer cosine to a HELD-OUT utterance of the on-screen speaker (not the
  reference itself), for the input and for the converted output; the gain is the difference.
- content kept: mel-cepstral distortion (dB, WORLD mel-cepstrum 1..24, after DTW) between
  input and output; and, against an "oracle" (the same text read by the target's espeak
  variant in the source language), MCD of input vs MCD of output (lower = closer to the
  target speaker saying the same thing).
- RTF: conversion time / audio duration at 16 kHz and 48 kHz (warm, reference stats cached).

Coqui backends (when ``TTS`` imports) are built with RANDOM weights: their rows are timing
only; their similarity/MCD numbers mean nothing and are not reported.

    python -m benchmarks.voice_bench --out voice_bench.json [--backends builtin,openvoice,freevc,knnvc]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from lsray.synth import synthesize  # noqa: E402
from lsray.voice import cut_reference, make_converter, resample, speaker_similarity  # noqa: E402

REFERENCE_SENTENCES = [
    "Peter Piper picked a peck of pickled peppers.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood?",
    "The rain in Spain stays mainly in the plain.",
]
HELD_OUT = "I would like to thank everybody who came here tonight, it means a lot to me."

# (source voice, source text, on-screen speaker voice, oracle voice = target variant in source language)
PAIRS = [
    ("de+f3", "Guten Tag, wie geht es Ihnen heute? Das Wetter ist schön, und wir gehen im Park spazieren.",
     "en+m3", "de+m3"),
    ("fr+f2", "Bonjour, comment allez-vous aujourd'hui? Il fait beau et nous allons nous promener au parc.",
     "en+m1", "fr+m1"),
    ("en+m3", "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore.",
     "en+f3", "en+f3"),
]


def _mcep(x: np.ndarray, sr: int) -> np.ndarray:
    """WORLD mel-cepstrum (coefficients 1..24) of voiced frames, 16 kHz, 5 ms."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld
    x = resample(x, sr, 16000).astype(np.float64)
    f0, t = pyworld.dio(x, 16000, f0_floor=60, f0_ceil=500)
    f0 = pyworld.stonemask(x, f0, t, 16000)
    sp = pyworld.cheaptrick(x, f0, t, 16000)
    mc = pyworld.code_spectral_envelope(sp, 16000, 25)
    energy = np.log(sp.sum(axis=1) + 1e-12)
    keep = energy > np.percentile(energy, 95) - 12.0  # drop silence: it aligns trivially
    return mc[keep, 1:]


def mcd_dtw(a: np.ndarray, sr_a: int, b: np.ndarray, sr_b: int) -> float:
    """Mel-cepstral distortion (dB) after DTW alignment of the two cepstrogram sequences."""
    import librosa

    ma, mb = _mcep(a, sr_a), _mcep(b, sr_b)
    _, path = librosa.sequence.dtw(X=ma.T, Y=mb.T, metric="euclidean")
    d = ma[path[:, 0]] - mb[path[:, 1]]
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(d**2, axis=1))))


def _reference_track(voice: str) -> tuple[np.ndarray, int]:
    parts = []
    for text in REFERENCE_SENTENCES:
        parts += [np.zeros(11025, np.float32), synthesize(text, voice).samples]
    return np.concatenate(parts + [np.zeros(11025, np.float32)]), 22050


def _rtf(conv: Any, x: np.ndarray, sr: int, ref: np.ndarray, ref_sr: int, repeats: int = 3) -> float:
    conv.convert(x, sr, ref, ref_sr)  # warm-up: caches, first-call allocations
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        conv.convert(x, sr, ref, ref_sr)
        best = min(best, time.perf_counter() - t0)
    return best / (len(x) / sr)


def _coqui_converter(kind: str) -> Any:
    """A Coqui backend with random weights (same recipe as tests/test_voice_coqui.py)."""
    import torch

    torch.manual_seed(0)
    if kind == "openvoice":
        return make_converter("openvoice", random_weights=True)
    if kind == "freevc":
        return make_converter("freevc", random_weights=True)  # full-size random WavLM-Large
    from TTS.vc.configs.knnvc_config import KNNVCConfig
    from TTS.vocoder.configs.hifigan_config import HifiganConfig

    voc = HifiganConfig()
    voc.audio["sample_rate"] = 16000
    voc.generator_model_params = {
        "pre_linear": 1024, "in_channels": 512, "inference_padding": 0, "upsample_factors": [10, 8, 2, 2],
        "upsample_kernel_sizes": [20, 16, 4, 4], "upsample_initial_channel": 512, "resblock_type": "1",
        "resblock_dilation_sizes": [[1, 3, 5]] * 3, "resblock_kernel_sizes": [3, 7, 11],
    }
    return make_converter("knnvc", random_weights=True, config=KNNVCConfig(), vocoder_config=voc)


def run(backends: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"pairs": [], "rtf": {}, "notes": []}
    refs: dict[str, Any] = {}
    for src_voice, src_text, tgt_voice, oracle_voice in PAIRS:
        track, tsr = _reference_track(tgt_voice)
        ref = cut_reference(track, tsr)
        refs[tgt_voice] = ref
        held = synthesize(HELD_OUT, tgt_voice)
        src = synthesize(src_text, src_voice)
        oracle = synthesize(src_text, oracle_voice)
        conv = make_converter("builtin")
        out = conv.convert(src.samples, src.sr, ref.samples, ref.sr)
        row = {
            "source": src_voice, "target": tgt_voice, "backend": "builtin",
            "reference_s": round(ref.duration_s, 2), "warp_alpha": round(conv.last_alpha, 3),
            "sim_before": speaker_similarity(src.samples, src.sr, held.samples, held.sr),
            "sim_after": speaker_similarity(out, src.sr, held.samples, held.sr),
            "mcd_in_out_db": mcd_dtw(src.samples, src.sr, out, src.sr),
            "mcd_in_oracle_db": mcd_dtw(src.samples, src.sr, oracle.samples, oracle.sr),
            "mcd_out_oracle_db": mcd_dtw(out, src.sr, oracle.samples, oracle.sr),
            "duration_diff_ms": 1000.0 * abs(len(out) - len(src.samples)) / src.sr,
        }
        row["sim_gain"] = row["sim_after"] - row["sim_before"]
        results["pairs"].append(row)

    src = synthesize(PAIRS[0][1], PAIRS[0][0])
    ref = refs[PAIRS[0][2]]
    for kind in backends:
        try:
            conv = make_converter("builtin") if kind == "builtin" else _coqui_converter(kind)
        except Exception as exc:  # e.g. the voice extra is absent
            results["notes"].append(f"{kind}: skipped ({exc})")
            continue
        results["rtf"][kind] = {
            f"{sr // 1000}k": _rtf(conv, resample(src.samples, src.sr, sr), sr, ref.samples, ref.sr,
                                    repeats=3 if kind == "builtin" else 2)
            for sr in (16000, 48000)
        }
        if kind != "builtin":
            results["notes"].append(f"{kind}: random weights, timing only (full-size architecture, CPU)")
    results["cpu_threads"] = os.cpu_count()
    return results


def _print(results: dict[str, Any]) -> None:
    print(f"{'source':>7} -> {'target':<7} {'sim before':>10} {'sim after':>9} {'gain':>6} "
          f"{'MCD in/out':>10} {'MCD in/oracle':>13} {'MCD out/oracle':>14} {'alpha':>6}")
    for r in results["pairs"]:
        print(f"{r['source']:>7} -> {r['target']:<7} {r['sim_before']:10.3f} {r['sim_after']:9.3f} "
              f"{r['sim_gain']:+6.3f} {r['mcd_in_out_db']:10.2f} {r['mcd_in_oracle_db']:13.2f} "
              f"{r['mcd_out_oracle_db']:14.2f} {r['warp_alpha']:6.3f}")
    print(f"\n{'backend':<10} {'RTF 16k':>8} {'RTF 48k':>8}")
    for kind, r in results["rtf"].items():
        print(f"{kind:<10} {r['16k']:8.3f} {r['48k']:8.3f}")
    for note in results["notes"]:
        print("note:", note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--backends", default="builtin",
                        help="comma list of builtin,openvoice,freevc,knnvc (Coqui ones: random weights, timing only)")
    args = parser.parse_args(argv)
    results = run([b.strip() for b in args.backends.split(",") if b.strip()])
    _print(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
