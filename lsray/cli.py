"""The ``lsray`` command line: one table of commands, each imported only when it runs.

Every subcommand is one :class:`Command` in :data:`COMMANDS`: a name (``"doctor"``, or ``"k8s render"``
for a nested group), its one-line help, and the module holding the two functions behind it (one
declares its arguments, one runs it). The table names modules as strings so that this file imports
none of them: ``lsray --help`` lists every command without importing any, ``lsray dub ...`` imports
``lsray.batch.cli`` alone, and no runner module ever imports this one (no import cycle). Heavy
imports (torch, diffusers, ray) stay inside the run functions.

Errors derived from :class:`lsray.errors.LsrayError` print ``error: <message>`` and exit 2; any
other exception is a bug and propagates with its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from lsray.console import setup as setup_console
from lsray.errors import LsrayError


@dataclass(frozen=True)
class Command:
    name: str  # space-separated path, e.g. "k8s render"
    help: str
    module: str  # imported when (and only when) this command is parsed
    function: str  # in module: (argparse.Namespace) -> exit code
    arguments: str  # in module: (argparse.ArgumentParser) -> None, declares the flags

    def load(self) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
        module = importlib.import_module(self.module)
        return getattr(module, self.arguments), getattr(module, self.function)


#: Every command, in ``lsray --help`` order.
COMMANDS: tuple[Command, ...] = (
    Command("doctor", "report Python, torch/CUDA, ffmpeg, mediapipe, Ray and (--bundle) a model bundle",
            "lsray.doctor", "main", "add_arguments"),
    Command("convert", "turn a LatentSync checkpoint folder into an lsray model bundle",
            "lsray.bundle.cli", "convert", "convert_args"),
    Command("dub-one", "dub one clip in-process (progress bar, per-stage time summary)",
            "lsray.pipeline.cli", "dub_one", "dub_one_args"),
    Command("serve", "run the online dubbing service locally (Ray on 127.0.0.1, lsray/serve/serve.yaml)",
            "lsray.serve.cli", "run_serve", "serve_args"),
    Command("dub", "dub a catalog on Ray Data (local Ray by default), with a report in --out",
            "lsray.batch.cli", "dub", "dub_args"),
    Command("submit", "send the catalog job to a Ray cluster through the Job Submission API",
            "lsray.batch.cli", "submit", "submit_args"),
    Command("prepare-training", "turn talking-head videos into training shards (faces, mask, audio features, mel)",
            "lsray.train.cli", "prepare_training", "prepare_training_args"),
    Command("k8s render", "print the overlay's Kubernetes manifests (multi-document YAML), like kubectl kustomize",
            "lsray.k8s.cli", "render", "render_args"),
    Command("k8s generate", "regenerate the RayService serveConfigV2 patches from lsray/serve/serve.yaml",
            "lsray.k8s.cli", "generate", "generate_args"),
    Command("fetch-bundle", "copy a model bundle from s3:// into a local (cache) directory",
            "lsray.k8s.cli", "fetch_bundle", "fetch_bundle_args"),
    Command("demo", "dub synthetic clips with known answers on local Ray and write an HTML report",
            "lsray.demo.cli", "run_demo", "demo_args"),
)


def _named_by(cmd: Command, argv: Sequence[str]) -> bool:
    """Whether ``argv`` names ``cmd``; the top-level flags (``--verbose``, ``-h``) may come first."""
    words = list(argv)
    while words and words[0].startswith("-"):
        words.pop(0)
    parts = cmd.name.split()
    return words[:len(parts)] == parts


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``lsray`` parser. Given the command line about to be parsed, only the command it names
    gets its module imported and its arguments declared (the others are listed by name and help,
    which is all ``lsray --help`` shows); without ``argv`` every command is complete."""
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
        if argv is None or _named_by(cmd, argv):
            add_arguments, run = cmd.load()
            add_arguments(sub)
            sub.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    setup_console(verbose_flag=args.verbose)  # before any command imports torch, mediapipe or Ray
    try:
        return int(args._run(args) or 0)
    except LsrayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
