"""Ray Train jobs: stage-2 fine-tune (upgrades 2 and 3), LCM distillation (upgrade 4), SyncNet,
the autoencoder, the phoneme-CTC model of the fused audio (upgrade 1); the demo recipe.

Layout (the Ray layer stays thin):
- :mod:`lsray.train.data` ``lsray prepare-training``: talking-head videos -> training shards, and
  the sequence loader the trainers read through Ray Data;
- :mod:`lsray.train.config` the job configs (pydantic, read from ``jobs/configs/*.yaml``);
- :mod:`lsray.train.stage2`, :mod:`lsray.train.distill`, :mod:`lsray.train.syncnet`,
  :mod:`lsray.train.vae`, :mod:`lsray.train.phoneme` one training step each (plain torch, readable
  top to bottom) plus the state they checkpoint; :mod:`lsray.train.phoneme_data` the phoneme job's
  synthesised utterances, :mod:`lsray.train.phoneme_vocab` its one vocabulary;
- :mod:`lsray.train.recipe` the demo bundle's recipe from nothing (``jobs/train_demo.py``);
- :mod:`lsray.train.runner` the one TorchTrainer wrapper and per-worker loop (checkpoints every
  N steps, resume from ``ray.train.get_checkpoint()`` after a worker failure, metrics each step).
"""
