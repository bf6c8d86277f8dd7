"""The jobs on Ray Train: real talking-head shards through Ray Data into a 2-worker TorchTrainer,
checkpoints every N steps, and resume after a worker process is killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def talking_shards(tmp_path_factory):
    from talking import write_dub, write_face_clip

    from lsray.train.data import prepare_training
    from lsray.train.tiny import make_tiny_bundle, tiny_whisper

    root = tmp_path_factory.mktemp("ray-train")
    dub = write_dub(root / "speech.wav", 1.6)
    write_face_clip(root / "face.mp4", frames=40, audio=dub)
    (root / "catalog.jsonl").write_text(json.dumps({"clip_id": "face", "video": "face.mp4", "audio": "speech.wav"}) + "\n")
    summary = prepare_training(str(root / "catalog.jsonl"), str(root / "shards"), whisper=tiny_whisper())
    assert summary.clips_written == 1
    return {"root": root, "shards": root / "shards", "bundle": make_tiny_bundle(root / "bundle")}


def _kill_first_worker(pid_dir: Path, killed: list[int], stop: threading.Event) -> None:
    """Kill (SIGKILL) rank 1's process once it has passed its second checkpoint (step 4), once.

    Waiting for the second one leaves the controller time to register the first: Train V2 polls
    workers for reports, so a worker killed the instant it reports may take that report with it.
    """
    while not stop.is_set():
        for f in sorted(pid_dir.glob("rank1-*.pid")):
            try:
                step = int(f.read_text() or 0)
            except ValueError:
                continue
            if step >= 4:
                pid = int(f.stem.split("-")[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(step)
                return
        time.sleep(0.1)


def test_stage2_on_two_workers_resumes_after_a_worker_is_killed(ray_cluster, talking_shards, tmp_path):
    from safetensors.torch import load_file

    from lsray.bundle import load_bundle
    from lsray.train.config import load_job_config
    from lsray.train.runner import fit

    cfg = load_job_config({
        "job": "stage2", "bundle": str(talking_shards["bundle"]), "out": str(tmp_path / "out"), "steps": 10,
        "lr": 1e-3, "unet_overrides": {"temporal": {"band": 2, "anchor_stride": 4, "max_len": 64}},
        "anchor_window": 4, "adv_warmup_steps": 4,
        "discriminator": {"crop_size": 48, "ndf": 8, "n_layers": 2, "norm_groups": 4},
        "data": {"shards": str(talking_shards["shards"]), "image_size": 32, "seq_len": 8, "stride": 4,
                 "batch_size": 1, "cache_in_memory": True},
        "ray": {"num_workers": 2, "storage_path": str(tmp_path / "runs"), "checkpoint_every": 2, "max_failures": 2,
                "name": "kill-resume"},
    })
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_worker, args=(pid_dir, killed, stop), daemon=True)
    killer.start()
    t0 = time.time()
    try:
        result = fit(cfg, pid_dir=str(pid_dir))
    finally:
        stop.set()
    print(f"2-worker stage2 with a killed worker: {time.time() - t0:.1f} s, metrics {result.metrics}")
    assert killed, "no worker was killed"
    assert result.error is None
    assert result.metrics["step"] == 10
    assert result.metrics["resumed_from"] >= 2  # the restarted group started from a checkpoint
    assert result.checkpoint is not None
    bundle = load_bundle(tmp_path / "out", device="cpu")
    assert set(load_file(str(tmp_path / "out" / "unet.safetensors"))) == set(bundle.unet.state_dict())
