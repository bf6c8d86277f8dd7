"""The Ray layer of training: one TorchTrainer wrapper and one per-worker loop for every job.

    driver: load_job_config -> fit(cfg)
      1. data     the shard index read with Ray Data, each clip expanded into sequences (flat_map;
                  the phoneme job: its cached utterance chunks, each expanded into utterances);
                  Ray Train splits the stream across workers (``get_dataset_shard``)
      2. workers  ScalingConfig(num_workers, use_gpu, cpus_per_worker) from ``cfg.ray``; gloo on
                  CPU, nccl on GPU; each worker builds the job (models, optimizers, DDP)
      3. loop     resume from ``ray.train.get_checkpoint()`` if the group was restarted after a
                  failure; report metrics every step; a checkpoint (rank 0's state) every
                  ``checkpoint_every`` steps and at the end
      4. export   rank 0 writes the job's product (a bundle / a SyncNet directory) before the
                  final report
``train_local`` runs the same loop in-process without Ray (debugging, tiny runs).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch

from lsray.train.config import (
    DistillConfig, JobConfig, PhonemeTrainConfig, Stage2Config, SyncNetTrainConfig, VAETrainConfig, load_job_config,
)

if TYPE_CHECKING:
    from lsray.bundle.config import BundleConfig

STATE_FILE = "state.pt"


def build_job(cfg: JobConfig, device: torch.device, world: int = 1):
    if isinstance(cfg, Stage2Config):
        from lsray.train.stage2 import Stage2Job

        return Stage2Job(cfg, device, world)
    if isinstance(cfg, DistillConfig):
        from lsray.train.distill import DistillJob

        return DistillJob(cfg, device, world)
    if isinstance(cfg, VAETrainConfig):
        from lsray.train.vae import VAEJob

        return VAEJob(cfg, device, world)
    if isinstance(cfg, PhonemeTrainConfig):
        from lsray.train.phoneme import PhonemeJob

        return PhonemeJob(cfg, device, world)
    from lsray.train.syncnet import SyncNetJob

    return SyncNetJob(cfg, device, world)


def bundle_sequence_kwargs(bc: BundleConfig) -> dict[str, Any]:
    """The audio tokens the bundle's encoder gives at inference, at its UNet's width (AudioStage's rule)."""
    return {"fused": bc.audio.encoder == "fused", "token_dim": bc.unet.cross_attention_dim}


def sequence_kwargs(cfg: JobConfig) -> dict[str, Any]:
    """How the shards are cut into sequences for this job."""
    d = cfg.data
    kw: dict[str, Any] = {"seq_len": d.seq_len, "stride": d.stride, "image_size": d.image_size}
    if isinstance(cfg, SyncNetTrainConfig):
        kw.update(seq_len=cfg.model.num_frames, sync_frames=cfg.model.num_frames, negative_shift=cfg.negative_shift)
    elif isinstance(cfg, VAETrainConfig):
        pass  # frames only
    else:
        from lsray.bundle.config import CONFIG_FILE, BundleConfig
        from lsray.bundle.load import resolve_bundle
        from lsray.train.data import require_phoneme_features

        bundle = cfg.bundle if isinstance(cfg, Stage2Config) else cfg.teacher
        bc = BundleConfig.read(resolve_bundle(bundle) / CONFIG_FILE)
        if isinstance(cfg, Stage2Config):
            from lsray.train.stage2 import exported_config

            bc = exported_config(bc, cfg)  # the UNet (and audio) being trained, after the upgrades
        kw.update(bundle_sequence_kwargs(bc))
        if kw["fused"]:
            require_phoneme_features(d.shards)
        if isinstance(cfg, Stage2Config) and cfg.syncnet:
            from lsray.models.syncnet import SyncNet

            kw["sync_frames"] = SyncNet.from_pretrained(cfg.syncnet).config.num_frames
    return kw


def collate_fn(cfg: JobConfig) -> Callable[[list[dict]], dict]:
    """How a job's rows become a batch: video sequences stack, utterances (phoneme job) are padded."""
    if isinstance(cfg, PhonemeTrainConfig):
        from lsray.train.phoneme_data import collate_utterances

        return collate_utterances
    from lsray.train.data import collate

    return collate


def local_rows(cfg: JobConfig) -> list[dict]:
    """Every training row of a job in memory (``train_local``)."""
    if isinstance(cfg, PhonemeTrainConfig):
        from lsray.train.phoneme_data import local_utterances

        return local_utterances(cfg.data)
    from lsray.train.data import local_sequences

    return local_sequences(cfg.data.shards, **sequence_kwargs(cfg))


def ray_rows(cfg: JobConfig):
    """The training rows of a job as a Ray Dataset (``fit``)."""
    if isinstance(cfg, PhonemeTrainConfig):
        from lsray.train.phoneme_data import ray_utterances

        return ray_utterances(cfg.data)
    from lsray.train.data import ray_sequences

    return ray_sequences(cfg.data.shards, **sequence_kwargs(cfg))


def batches(rows: Callable[[], Iterator[dict]], batch_size: int, cache: bool, seed: int,
            collate: Callable[[list[dict]], dict] | None = None) -> Iterator[dict]:
    """Endless collated batches: each epoch re-reads ``rows()`` (or a cached, reshuffled copy)."""
    if collate is None:
        from lsray.train.data import collate

    cached: list[dict] | None = None
    epoch = 0
    while True:
        if cache:
            if cached is None:
                cached = list(rows())
            order = np.random.default_rng(seed + epoch).permutation(len(cached))
            epoch_rows: Iterator[dict] = (cached[i] for i in order)
        else:
            epoch_rows = rows()
        buf: list[dict] = []
        for row in epoch_rows:
            buf.append(row)
            if len(buf) == batch_size:
                yield collate(buf)
                buf = []
        epoch += 1
        if cache and cached is not None and len(cached) < batch_size:
            raise ValueError(f"the dataset shard has {len(cached)} sequences, fewer than batch_size {batch_size}")


def _row_dict(row: dict) -> dict:
    return {k: np.asarray(v) for k, v in row.items()}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The loop every Ray Train worker runs (see the module docstring, steps 2-4)."""
    import ray.train
    import ray.train.torch

    cfg = load_job_config(config["job_config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if cfg.ray.use_gpu else torch.device("cpu")
    torch.manual_seed(cfg.data.seed)  # same initial weights on every rank (DDP also broadcasts them)
    job = build_job(cfg, device, world)
    start, resumed_from = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, map_location=device, weights_only=True)
        job.load_state_dict(state["job"])
        start = resumed_from = int(state["step"])
    shard = ray.train.get_dataset_shard("train")
    stream = batches(lambda: (_row_dict(r) for r in shard.iter_rows()), cfg.data.batch_size,
                     cfg.data.cache_in_memory, cfg.data.seed + 1000 * rank + start, collate_fn(cfg))
    torch.manual_seed(cfg.data.seed + 7919 * rank + start)  # noise / timesteps differ per rank and per resume
    pid_dir = config.get("pid_dir")  # tests: where workers announce their process id
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        metrics = job.step(next(stream), step)
        metrics.update(step=step + 1, resumed_from=resumed_from, step_seconds=time.perf_counter() - t0)
        last = step + 1 == cfg.steps
        if (step + 1) % cfg.ray.checkpoint_every == 0 or last:
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = None
                if rank == 0:
                    if last:
                        job.export(cfg.out)
                    torch.save({"job": job.state_dict(), "step": step + 1}, Path(tmp) / STATE_FILE)
                    ckpt = ray.train.Checkpoint.from_directory(tmp)
                ray.train.report(metrics, checkpoint=ckpt)
            if pid_dir:
                Path(pid_dir, f"rank{rank}-{os.getpid()}.pid").write_text(str(step + 1))
        else:
            ray.train.report(metrics)


def fit(cfg: JobConfig | str | Path | dict, *, pid_dir: str | None = None):
    """Run a job on the current Ray cluster; returns the ``ray.train.Result``."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not isinstance(cfg, JobConfig):
        cfg = load_job_config(cfg)
    r = cfg.ray
    dataset = ray_rows(cfg)
    storage = r.storage_path if "://" in r.storage_path else str(Path(r.storage_path).expanduser().resolve())
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job_config": cfg.model_dump(mode="json"), "pid_dir": pid_dir},
        torch_config=TorchConfig(backend="nccl" if r.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=r.num_workers, use_gpu=r.use_gpu,
                                     resources_per_worker={"CPU": r.cpus_per_worker}),
        run_config=RunConfig(
            name=r.name or f"lsray-{cfg.job}-{int(time.time())}", storage_path=storage,
            failure_config=FailureConfig(max_failures=r.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=r.keep_checkpoints),
        ),
        datasets={"train": dataset},
    )
    return trainer.fit()


def train_local(cfg: JobConfig | str | Path | dict, *, export: bool = True,
                on_step: Callable[[int, dict], None] | None = None) -> tuple[Any, list[dict]]:
    """The same loop in-process, no Ray, no checkpoints: returns (job, per-step metrics)."""
    if not isinstance(cfg, JobConfig):
        cfg = load_job_config(cfg)
    torch.manual_seed(cfg.data.seed)
    job = build_job(cfg, torch.device("cpu"))
    rows = local_rows(cfg)
    stream = batches(lambda: iter(rows), cfg.data.batch_size, True, cfg.data.seed, collate_fn(cfg))
    history = []
    for step in range(cfg.steps):
        m = job.step(next(stream), step)
        history.append(m)
        if on_step:
            on_step(step, m)
    if export:
        job.export(cfg.out)
    return job, history
