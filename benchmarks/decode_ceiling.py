"""What a perfect UNet would score through a bundle's VAE: the ceiling of the pixel path.

    python benchmarks/decode_ceiling.py [--model lsray/demo/bundle] [--clips 20]
                                        [--out benchmarks/results/decode_ceiling.json]

On ``lsray demo``'s held-out clips the oracle video is the right answer, so its own latents are
what an ideal UNet would produce. Each clip's oracle and source face crops (the world's exact
face boxes, squared, at the bundle's resolution) go through the bundle's VAE and are decoded the
three ways the sample stage can (paste, detail transfer, gated detail transfer), pasted back
under the bundle's mask and scored like ``lsray demo`` scores its outputs: mouth PSNR vs the
oracle, LSE-C with the clip's dub and with another clip's dub (the recipe's SyncNet), and the
viseme scores (lips shut on /p b m/, the f/v bite, open-vowel opening; :mod:`lsray.eval.visemes`). The
oracle pasted through the same crops without the VAE is the control. The gap between a row here
and the demo's output is the UNet's; the gap between a row and the control is the VAE's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def square_boxes(face_boxes, frame_size: int) -> list[tuple[int, int, int, int]]:
    """Square crops around the face boxes (as the LSE scorer's), clipped to the frame."""
    from lsray.eval.clip import square_box

    return [(max(0, x0), max(0, y0), min(frame_size, x1), min(frame_size, y1))
            for x0, y0, x1, y1 in map(square_box, face_boxes)]


ROWS = ("oracle, no VAE (control)", "paste: decode(oracle latents)", "detail transfer", "gated detail transfer")


def measure_ceiling(vae, size: int, keep, clips, scorer, gate: float = 0.2) -> dict[str, list[dict[str, float]]]:
    """Per clip, each of :data:`ROWS`: mouth PSNR vs the oracle, LSE-C with the clip's dub and
    with another clip's, the viseme scores with their frame counts (None where the clip has no
    such frames). ``vae`` is a diffusers AutoencoderKL, ``keep`` the (S, S) mask at ``size``
    (1 = outside the regenerated region), ``clips`` the demo catalog's."""
    from dataclasses import asdict

    import cv2
    import numpy as np
    import torch

    from lsray.demo.catalog import FRAME_SIZE
    from lsray.demo.report import sync_faces, unsynced_dub
    from lsray.eval import video as vm
    from lsray.eval.clip import load_audio_16k, load_frames
    from lsray.eval.lse import lse
    from lsray.eval.visemes import viseme_scores
    from lsray.pipeline.sample import detail_gate

    keep = torch.as_tensor(np.asarray(keep, np.float32))

    def crops(frames, boxes):  # -> f 3 S S in [-1, 1]
        out = [cv2.resize(f[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
               for f, (x0, y0, x1, y1) in zip(frames, boxes)]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1

    @torch.no_grad()
    def roundtrip(x):  # decode(encode(x)), 16 frames at a time
        return torch.cat([vae.decode(vae.encode(x[i:i + 16]).latent_dist.mode()).sample
                          for i in range(0, len(x), 16)]).clamp(-1, 1)

    def paste(frames, boxes, face):
        out = frames.copy()
        face = ((face.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        for f, (x0, y0, x1, y1), c in zip(out, boxes, face):
            f[y0:y1, x0:x1] = cv2.resize(c, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        return out

    scores: dict[str, list[dict[str, float]]] = {r: [] for r in ROWS}
    for i, clip in enumerate(clips):
        geom = clip.geometry()
        face_boxes, mouth_boxes = [g.face_box for g in geom], [g.mouth_box for g in geom]
        boxes = square_boxes(face_boxes, FRAME_SIZE)
        oracle, source = load_frames(clip.oracle), load_frames(clip.video)
        n = min(len(oracle), len(source))
        oracle, source = oracle[:n], source[:n]
        dub = load_audio_16k(clip.audio)
        other = unsynced_dub(clips, i, dub)
        want, src = crops(oracle, boxes), crops(source, boxes)
        decoded, rebuilt = roundtrip(want), roundtrip(src)
        detail = src - rebuilt
        faces = (want, decoded, (decoded + detail).clamp(-1, 1),
                 (decoded + detail * detail_gate(decoded - rebuilt, gate)).clamp(-1, 1))
        for row, face in zip(ROWS, faces):
            frames = paste(source, boxes, face * (1 - keep) + src * keep)
            sync = sync_faces(frames, face_boxes)
            visemes = asdict(viseme_scores(frames, oracle, mouth_boxes, clip.visemes)) if clip.visemes is not None else {}
            scores[row].append({"mouth_psnr": vm.mouth_psnr(frames, oracle, mouth_boxes),
                                "lse_c": lse(scorer, sync, dub).lse_c, "lse_c_unsynced": lse(scorer, sync, other).lse_c,
                                **visemes})
    return scores


def summarise(per_clip: list[dict[str, float]]) -> dict[str, float | None]:
    """One row from :func:`measure_ceiling`'s per-clip scores: the means of mouth PSNR and LSE-C,
    each viseme score pooled over all the clips' frames of its class (as ``lsray demo`` does)."""
    import numpy as np

    from lsray.eval.visemes import VISEME_METRICS, pooled

    row: dict[str, float | None] = {k: float(np.mean([c[k] for c in per_clip])) for k in ("mouth_psnr", "lse_c", "lse_c_unsynced")}
    row.update({key: pooled(per_clip, key) for key in VISEME_METRICS})
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(REPO / "lsray" / "demo" / "bundle"))
    p.add_argument("--syncnet", default=str(REPO / "lsray" / "demo" / "syncnet"))
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--gate", type=float, default=0.2, help="detail_gate of the gated row")
    p.add_argument("--work", default=str(Path.home() / ".cache" / "lsray" / "decode-ceiling"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "decode_ceiling.json"))
    args = p.parse_args(argv)

    from lsray.preload import torch_first

    torch_first()
    from lsray.bundle import load_bundle
    from lsray.demo.catalog import build_demo_catalog
    from lsray.eval import ProjectSyncNetScorer
    from lsray.models.syncnet import SyncNet

    bundle = load_bundle(args.model, device="cpu")
    scorer = ProjectSyncNetScorer(SyncNet.from_pretrained(args.syncnet))
    _, clips = build_demo_catalog(args.work, clips=args.clips)
    scores = measure_ceiling(bundle.require_vae(), bundle.config.resolution, bundle.mask, clips, scorer, args.gate)

    model = Path(args.model).resolve()
    rows = {(f"{r} ({args.gate})" if r.startswith("gated") else r): summarise(per) for r, per in scores.items()}
    result = {"model": str(model.relative_to(REPO)) if model.is_relative_to(REPO) else str(model), "clips": len(clips),
              "rows": rows}
    from lsray.storage import write_json

    write_json(args.out, result)  # atomic, folders made
    print(f"{'':40s} mouth PSNR   LSE-C   another clip's audio   lips shut on /p b m/   f/v bite   open vowel")
    for r, s in result["rows"].items():
        visemes = "   ".join(f"{s[k]:.2f}" if s[k] is not None else "  - " for k in ("bilabial_hit", "labiodental_hit", "open_vowel"))
        print(f"{r:40s} {s['mouth_psnr']:9.2f}   {s['lse_c']:.3f}   {s['lse_c_unsynced']:.3f}                  {visemes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
