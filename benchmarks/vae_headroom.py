"""Where the pixel path's ceiling can be raised, per CPU-hour: candidate autoencoders side by side.

    python benchmarks/vae_headroom.py [--clips 192] [--steps 1200] [--eval-clips 20]
                                      [--variants d8 d4 c8] [--out benchmarks/results/vae_headroom.json]

The demo bundle's 128-px, /8 VAE caps mouth PSNR near 21 dB even for a perfect UNet
(``decode_ceiling.py``), which leaves little room above keeping the source mouth (~18 dB). Each
candidate here is trained by the project's VAE job with the demo recipe's settings (same data, same
steps, same seed) on a train-split world built by the recipe's own steps, then scored by
:func:`decode_ceiling.measure_ceiling` on ``lsray demo``'s held-out clips (the last one is the
real photo, reported on its own: it has regressed before when a VAE fitted synthetic texture).
The price of a candidate is what its latents cost the UNet: one 16-frame window of the demo UNet
(random weights) at that latent size and channel count, timed on this CPU, relative to /8 x 4.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

#: Candidates: the AutoencoderKL layout (``VAEModelSettings``) each one trains.
VARIANTS: dict[str, dict] = {
    "d8": {"block_out_channels": [16, 32, 64, 64], "latent_channels": 4},  # the shipped layout: /8, 16x16x4 at 128 px
    "d4": {"block_out_channels": [16, 32, 64], "latent_channels": 4},  # /4: 32x32x4, LatentSync's latent size at 256
    "c8": {"block_out_channels": [16, 32, 64, 64], "latent_channels": 8},  # /8 with twice the channels
}


def unet_window_seconds(bundle_config, latent_size: int, channels: int, repeats: int = 3) -> float:
    """Seconds of one 16-frame UNet forward of the bundle's architecture at this latent shape."""
    import torch

    from lsray.models.unet import LipSyncUNet

    cfg = bundle_config.unet.model_copy(update={"in_channels": 3 * channels + 1, "out_channels": channels})
    torch.manual_seed(0)
    unet = LipSyncUNet(type(cfg).model_validate(cfg.model_dump())).eval()
    x = torch.randn(1, 3 * channels + 1, 16, latent_size, latent_size)
    audio = torch.randn(16, 10 * bundle_config.audio.whisper.encoder_layers, bundle_config.unet.cross_attention_dim)
    t = torch.tensor([500])
    with torch.no_grad():
        unet(x, t, audio)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            unet(x, t, audio)
    return (time.perf_counter() - t0) / repeats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "jobs" / "configs" / "demo.yaml"), help="the recipe whose VAE job is used")
    p.add_argument("--clips", type=int, default=192, help="train-split world clips")
    p.add_argument("--steps", type=int, default=None, help="VAE steps per candidate (default: the recipe's)")
    p.add_argument("--eval-clips", type=int, default=20, help="held-out demo clips (the last is the photo)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--work", default=str(Path.home() / ".cache" / "lsray" / "vae-headroom"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vae_headroom.json"))
    args = p.parse_args(argv)

    from lsray.preload import torch_first

    torch_first()
    import numpy as np
    import torch
    from diffusers import AutoencoderKL

    from benchmarks.decode_ceiling import measure_ceiling, summarise
    from lsray.bundle import load_bundle
    from lsray.demo.catalog import build_demo_catalog
    from lsray.eval import ProjectSyncNetScorer
    from lsray.eval import video as vm
    from lsray.eval.clip import load_frames
    from lsray.models.syncnet import SyncNet
    from lsray.train.recipe import RecipeConfig, build_assets, build_shards, build_world
    from lsray.train.runner import train_local

    work = Path(args.work).expanduser()
    recipe = RecipeConfig.read(args.config, work=str(work / "recipe"))
    if recipe.vae is None:
        raise SystemExit(f"{args.config} trains no VAE (vae_from): pass a recipe with a vae section")
    recipe.world.clips = args.clips
    catalog = build_world(recipe, work / "world")
    shards = build_shards(recipe, catalog, build_assets(recipe, work / "assets"), work / "shards")
    shipped = load_bundle(REPO / "lsray" / "demo" / "bundle", device="cpu")
    scorer = ProjectSyncNetScorer(SyncNet.from_pretrained(REPO / "lsray" / "demo" / "syncnet"))
    _, clips = build_demo_catalog(work / "eval", clips=args.eval_clips)
    keep_source = [vm.mouth_psnr(load_frames(c.video)[: c.frames], load_frames(c.oracle)[: c.frames],
                                 [g.mouth_box for g in c.geometry()]) for c in clips]
    size = recipe.resolution
    base_seconds = None
    result: dict = {"clips": args.clips, "eval_clips": len(clips), "resolution": size, "threads": torch.get_num_threads(),
                    "keep_source": {"synthetic": float(np.mean(keep_source[:-1])), "photo": keep_source[-1]},
                    "variants": {}}
    for name in args.variants:
        model = {**recipe.vae.get("model", {}), **VARIANTS[name]}
        steps = args.steps or int(recipe.vae.get("steps", 1000))
        out = work / f"vae-{name}-{steps}"
        if not (out / "latent_stats.json").is_file():
            job = {**recipe.vae, "job": "vae", "out": str(out), "steps": steps, "model": model,
                   "data": {**recipe.vae.get("data", {}), "shards": str(shards), "image_size": size}}
            t0 = time.perf_counter()
            train_local(job)
            train_s = time.perf_counter() - t0
            (out / "train_seconds.json").write_text(json.dumps({"seconds": train_s}))
        else:
            train_s = json.loads((out / "train_seconds.json").read_text())["seconds"]
        vae = AutoencoderKL.from_pretrained(out).eval()
        levels = len(model["block_out_channels"]) - 1
        latent, channels = size // 2 ** levels, int(model["latent_channels"])
        unet_s = unet_window_seconds(shipped.config, latent, channels)
        base_seconds = base_seconds or (unet_s if name == "d8" else None)
        scores = measure_ceiling(vae, size, shipped.mask, clips, scorer)
        rows = {}
        for row, per in scores.items():
            rows[row] = {"synthetic": summarise(per[:-1]), "photo": per[-1]}
        result["variants"][name] = {"model": model, "latent": [channels, latent, latent], "steps": steps,
                                    "vae_train_seconds": train_s, "unet_window_seconds": unet_s, "rows": rows}
        print(f"{name}: latent {channels}x{latent}x{latent}, VAE {train_s:.0f} s, UNet window {unet_s:.3f} s; "
              + "; ".join(f"{r.split(':')[0]} {v['synthetic']['mouth_psnr']:.2f} dB (photo {v['photo']['mouth_psnr']:.2f})"
                          for r, v in rows.items()), flush=True)
    if base_seconds:
        for v in result["variants"].values():
            v["unet_cost_vs_d8"] = v["unet_window_seconds"] / base_seconds
    from lsray.storage import write_json

    write_json(args.out, result)  # atomic, folders made
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
