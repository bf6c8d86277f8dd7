"""Latent consistency distillation of a DDIM + guidance teacher into a 1-4 step student (Ray Train job).

    python jobs/distill_lcm.py --config jobs/configs/distill_lcm.yaml [--num-workers N] [--steps N] [--address ray://...]
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main("distill_lcm.yaml", "Latent consistency distillation of a DDIM + guidance teacher into a 1-4 step student"))
