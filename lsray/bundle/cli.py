"""``lsray convert``: a LatentSync checkpoint folder -> an lsray model bundle."""

from __future__ import annotations

import argparse


def convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="LatentSync checkpoint folder (latentsync_unet.pt, whisper/tiny.pt, ...)")
    p.add_argument("out", metavar="OUT", help="bundle directory to create")
    p.add_argument("--resolution", type=int, choices=(256, 512), default=None,  # LatentSync's sizes
                   help="face crop size the checkpoint was trained at (default: the yaml's, else 256)")
    p.add_argument("--unet-config", metavar="PATH", help="unet config (json or stage2*.yaml) if not in SRC")
    p.add_argument("--vae", metavar="DIR", help="diffusers AutoencoderKL folder if not SRC/vae")
    p.add_argument("--mask", metavar="PNG", help="inpainting mask if not SRC/mask.png")
    up = p.add_argument_group("upgrades (the loaded model still computes exactly what LatentSync computes)")
    up.add_argument("--cross-attention-dim", type=int, metavar="N",
                    help="audio width of the UNet (512 = fused Whisper+phoneme); K/V zero-padded")
    up.add_argument("--temporal-band", type=int, metavar="N", help="local temporal attention band (+-N frames)")
    up.add_argument("--anchor-stride", type=int, metavar="N", help="global temporal anchors every N frames")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")


def convert(args: argparse.Namespace) -> int:
    from lsray.bundle.convert import convert_latentsync, unet_upgrades

    out = convert_latentsync(
        args.src,
        args.out,
        resolution=args.resolution,
        unet_config=args.unet_config,
        vae=args.vae,
        mask=args.mask,
        upgrades=unet_upgrades(args.cross_attention_dim, args.temporal_band, args.anchor_stride),
        overwrite=args.force,
    )
    print(f"wrote bundle {out}")
    return 0
