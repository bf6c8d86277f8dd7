"""Ray Train jobs: stage-2 fine-tune (upgrades 2 and 3), LCM distillation (upgrade 4), SyncNet.

Layout (the Ray layer stays thin):
- :mod:`lsray.train.data` ``lsray prepare-training``: talking-head videos -> training shards, and
  the sequence loader the trainers read through Ray Data;
- :mod:`lsray.train.config` the job configs (pydantic, read from ``jobs/configs/*.yaml``);
- :mod:`lsray.train.stage2`, :mod:`lsray.train.distill`, :mod:`lsray.train.syncnet` one training
  step each (plain torch, readable top to bottom) plus the state they checkpoint;
- :mod:`lsray.train.runner` the one TorchTrainer wrapper and per-worker loop (checkpoints every
  N steps, resume from ``ray.train.get_checkpoint()`` after a worker failure, metrics each step).
"""
