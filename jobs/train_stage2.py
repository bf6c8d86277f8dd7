"""Stage-2 fine-tune: LatentSync objective + lip discriminator + temporal losses (Ray Train job).

    python jobs/train_stage2.py --config jobs/configs/stage2.yaml [--num-workers N] [--steps N] [--address ray://...]
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main("stage2.yaml", "Stage-2 fine-tune: LatentSync objective + lip discriminator + temporal losses"))
