"""Train the demo bundle from scratch: ``python jobs/train_demo.py [--config jobs/configs/demo.yaml]``.

Runs :func:`lsray.train.recipe.run_recipe`: synthetic world -> [phoneme-CTC job] -> shards -> VAE
job -> init bundle (or ``start_from``, a trained bundle to fine-tune) -> stage-2 job -> VAE decoder
fine-tune -> [LCM distillation] -> ``out``, then the SyncNet job -> ``syncnet_out`` (bracketed
steps where the recipe has them: demo_v2.yaml). Every step is skipped when its output exists, so a
rerun resumes (in a work folder of the same recipe).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    from lsray.preload import torch_first

    torch_first()
    from lsray.train.recipe import RecipeConfig, run_recipe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(HERE / "configs" / "demo.yaml"))
    p.add_argument("--work", help="intermediate data (default: the config's)")
    p.add_argument("--out", help="where the bundle goes (default: the config's, relative to the repo)")
    p.add_argument("--without", action="append", default=[], metavar="KEY",
                   help="leave this setting of the config out (dotted: sampler.anchors; repeatable): an "
                        "ablation, e.g. --without phoneme for demo_v2.yaml with Whisper-only audio")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="changed",
                   help="give a setting of the config another (YAML) value (dotted; repeatable), e.g. "
                        "--set stage2.adv_weight=0 --set stage2.discriminator=null: demo_v2.yaml without the lip discriminator")
    args = p.parse_args(argv)
    cfg = RecipeConfig.read(args.config, without=args.without, changed=args.changed, work=args.work, out=args.out)
    for field in ("out", "vae_from", "start_from", "syncnet_out"):  # relative paths are in the repo
        value = getattr(cfg, field)
        if value:
            path = Path(value).expanduser()
            setattr(cfg, field, str(path if path.is_absolute() else HERE.parent / path))
    run_recipe(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
