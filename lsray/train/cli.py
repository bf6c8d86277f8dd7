"""``lsray prepare-training CATALOG --out URI``: talking-head videos -> training shards."""

from __future__ import annotations

import argparse
import json


def prepare_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", metavar="CATALOG", help="JSONL/CSV/Parquet catalog: clip_id, video, audio (the clip's own track)")
    p.add_argument("--out", required=True, metavar="URI", help="output folder (local or s3://)")
    p.add_argument("--bundle", required=True, metavar="BUNDLE", help="bundle whose Whisper encoder (and mask) to use")
    p.add_argument("--phoneme-model", metavar="DIR",
                   help="local Wav2Vec2 phoneme-CTC folder: also store phoneme features "
                        "(default: the bundle's phoneme/ when its audio is fused)")
    p.add_argument("--phoneme-projection", metavar="FILE",
                   help="the phoneme branch's projection weights (safetensors; default: DIR/projection.safetensors if present)")
    p.add_argument("--resolutions", default="256", help="comma-separated crop sizes to store: 256, 512 or 256,512")
    p.add_argument("--min-frames", type=int, default=16, help="a clip needs this many consecutive face frames")
    p.add_argument("--keyframe-interval", type=int, default=5, help="face detection every N frames")


def prepare_training(args: argparse.Namespace) -> int:
    import torch

    from lsray.audio.whisper import WhisperEncoder
    from lsray.errors import LsrayError
    from lsray.face.mask import load_inpaint_mask
    from lsray.bundle.config import PHONEME_DIR, BundleConfig
    from lsray.bundle.load import resolve_bundle
    from lsray.train.data import prepare_training

    try:
        resolutions = tuple(sorted({int(r) for r in args.resolutions.split(",")}))
    except ValueError as exc:
        raise LsrayError(f"--resolutions: {exc}") from exc
    if not set(resolutions) <= {256, 512}:
        raise LsrayError("--resolutions takes 256 and/or 512")
    root = resolve_bundle(args.bundle)
    config = BundleConfig.read(root / "config.json")
    whisper = WhisperEncoder.from_pretrained(root / "whisper", device=torch.device("cpu"))
    phoneme = None
    # a fused bundle is fine-tuned on its own phoneme branch's features
    phoneme_model = args.phoneme_model or (root / PHONEME_DIR if config.audio.encoder == "fused" else None)
    if phoneme_model:
        from lsray.audio.phoneme import PhonemeEncoder

        phoneme = PhonemeEncoder.from_pretrained(phoneme_model, args.phoneme_projection, device=torch.device("cpu"))
    mask = load_inpaint_mask(root / config.mask.file, 256)
    summary = prepare_training(args.catalog, args.out, whisper=whisper, phoneme=phoneme, mask=mask,
                               resolutions=resolutions, min_frames=args.min_frames,
                               keyframe_interval=args.keyframe_interval)
    print(json.dumps(summary.as_dict(), indent=2))
    return 0 if summary.clips_written else 1
