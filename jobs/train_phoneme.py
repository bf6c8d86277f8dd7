"""Train the phoneme-CTC Wav2Vec2 of the fused audio branch (upgrade 1) on the synthetic world's speech.

    python jobs/train_phoneme.py --config jobs/configs/phoneme.yaml [--num-workers N] [--steps N] [--out DIR]
                                 [--address ray://...]
    python jobs/train_phoneme.py --local [--threads N] [--config ...] [--steps N] [--out DIR]

The first form is a Ray Train job like the others; ``--local`` runs the same loop in-process
(``train_local``: no Ray, no checkpoints), which is how the CPU model in phoneme.yaml is trained:
the model is small, and on one CPU core Ray's own processes would take a share of it.
The output folder holds the PhonemeEncoder (``phoneme: DIR`` of a stage-2 job), vocab.json and eval.json.
"""

import argparse
import sys
import time
from pathlib import Path

from _common import main

DESCRIPTION = "Train the phoneme-CTC Wav2Vec2 of the fused audio branch on the synthetic world's speech"


def local_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=DESCRIPTION + " (in-process, no Ray)")
    p.add_argument("--config", default=str(Path(__file__).parent / "configs" / "phoneme.yaml"))
    p.add_argument("--steps", type=int, help="override steps")
    p.add_argument("--out", help="override the output folder")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    p.add_argument("--log-every", type=int, default=50, help="print the loss every N steps")
    args = p.parse_args(argv)

    import torch

    from lsray.train.config import load_job_config
    from lsray.train.runner import train_local

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_job_config(args.config, steps=args.steps, out=args.out)
    start = last = time.perf_counter()

    def log(step: int, metrics: dict) -> None:
        nonlocal last
        if (step + 1) % args.log_every == 0 or step == 0:
            now = time.perf_counter()
            per_step = (now - last) / (args.log_every if step else 1)
            print(f"step {step + 1}/{cfg.steps} ctc {metrics['ctc']:.3f} lr {metrics['lr']:.2e} "
                  f"{per_step:.3f} s/step elapsed {now - start:.0f} s", flush=True)
            last = now

    train_local(cfg, on_step=log)
    print(f"done in {time.perf_counter() - start:.0f} s; {cfg.out}", flush=True)
    return 0


if __name__ == "__main__":
    if "--local" in sys.argv[1:]:
        raise SystemExit(local_main([a for a in sys.argv[1:] if a != "--local"]))
    raise SystemExit(main("phoneme.yaml", DESCRIPTION))
