"""Train the SyncNet used as stage 2's sync loss and by the evaluation suite (Ray Train job).

    python jobs/train_syncnet.py --config jobs/configs/syncnet.yaml [--num-workers N] [--steps N] [--address ray://...]
"""

from _common import main

if __name__ == "__main__":
    raise SystemExit(main("syncnet.yaml", "Train the SyncNet used as stage 2's sync loss and by the evaluation suite"))
