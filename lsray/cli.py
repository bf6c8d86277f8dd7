"""The ``lsray`` command line.

Every subcommand is one :class:`Command`: a name (``"doctor"``, or ``"k8s render"`` for a nested
group), a function that declares its arguments and a function that runs it, added with
:func:`register`. A command may live in its own module: list it in ``COMMAND_MODULES`` and call
``register`` at its import. The parser is built from the registry. Declaring arguments must stay
cheap: heavy imports (torch, diffusers, ray) happen inside the run functions, so ``lsray --help``
is instant.

Errors derived from :class:`lsray.errors.LsrayError` print ``error: <message>`` and exit 2; any
other exception is a bug and propagates with its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from lsray.console import setup as setup_console
from lsray.errors import LsrayError

Runner = Callable[[argparse.Namespace], int]
ArgDeclarer = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    name: str  # space-separated path, e.g. "k8s render"
    help: str
    add_arguments: ArgDeclarer
    run: Runner


COMMANDS: list[Command] = []

#: Modules that register further commands when imported (must not import torch / ray at top level).
COMMAND_MODULES: tuple[str, ...] = ("lsray.pipeline.cli", "lsray.serve.cli", "lsray.batch.cli", "lsray.train.cli",
                                     "lsray.k8s.cli", "lsray.demo.cli")


def register(name: str, help: str, add_arguments: ArgDeclarer, run: Runner) -> None:
    """Add a subcommand to the registry (later modules: ``dub``, ``serve``, ``k8s render``...)."""
    if any(c.name == name for c in COMMANDS):
        raise ValueError(f"command {name!r} registered twice")
    COMMANDS.append(Command(name, help, add_arguments, run))


# ---------------------------------------------------------------------------------------------
# doctor
# ---------------------------------------------------------------------------------------------
def _doctor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", metavar="PATH", help="also check a model bundle's files and config")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _doctor(args: argparse.Namespace) -> int:
    from lsray import doctor

    checks = doctor.run_checks(args.bundle)
    if args.json:
        print(json.dumps(doctor.to_json(checks), indent=2))
    else:
        print(doctor.format_text(checks))
    return 0 if doctor.all_ok(checks) else 1


register("doctor", "report Python, torch/CUDA, ffmpeg, mediapipe, Ray and (--bundle) a model bundle",
         _doctor_args, _doctor)


# ---------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------
def _convert_args(p: argparse.ArgumentParser) -> None:
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


def _convert(args: argparse.Namespace) -> int:
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


register("convert", "turn a LatentSync checkpoint folder into an lsray model bundle", _convert_args, _convert)


# ---------------------------------------------------------------------------------------------
# parser and entry point
# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="lsray",
        description="Lip-sync dubbing of video catalogs: LatentSync plus five upgrades, on Ray.",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="also show the libraries' own logs and warnings (mediapipe, TF-Lite, Ray)")
    root = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {"": root}
    for cmd in COMMANDS:
        *parents, leaf = cmd.name.split()
        prefix = ""
        for part in parents:  # nested groups such as "k8s render"
            key = f"{prefix} {part}".strip()
            if key not in groups:
                group = groups[prefix].add_parser(part, help=f"{part} commands")
                groups[key] = group.add_subparsers(dest=f"{key.replace(' ', '_')}_command", metavar="COMMAND",
                                                   required=True)
            prefix = key
        sub = groups[prefix].add_parser(leaf, help=cmd.help, description=cmd.help)
        cmd.add_arguments(sub)
        sub.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_console(verbose_flag=args.verbose)  # before any command imports torch, mediapipe or Ray
    try:
        return int(args._run(args) or 0)
    except LsrayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
