"""One clip flow, three runners: a distilled (LCM) bundle whose config selects a Coqui voice
backend and long-range anchors dubs the same clip through ``lsray dub-one``, ``lsray dub`` (Ray
Data, 2 nodes) and Serve (2 nodes, S3 staging, every replica with its own scratch folder), with no
sampler, anchor or voice flags.

Each runner must run the anchor pass, sample with LCM at the bundle's step count on the
distillation's timestep grid (UNet calls counted and their timesteps recorded by the sample
stage), re-voice with the bundle's backend, and make bit-identical mouths (the sha256 of the
generated crops).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from s3 import moto_s3, s3_bucket  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

GRID, STUDENT_STEPS = 25, 2
KEY = "runners-key"


@pytest.fixture(scope="module")
def distilled(tiny_bundle, tmp_path_factory) -> Path:
    """A student bundle made by the distillation job (2 steps of it: the weights do not matter,
    what it writes does), whose config selects OpenVoice (tiny random weights inside the bundle)."""
    import torch

    from lsray.bundle.config import CONFIG_FILE, AnchorSampling, BundleConfig, VoiceDefaults
    from lsray.train.config import load_job_config
    from lsray.train.runner import train_local
    from lsray.train.tiny import synthetic_shards
    from lsray.voice import make_converter

    root = tmp_path_factory.mktemp("distilled")
    shards = synthetic_shards(root / "shards", clips=1, frames=8, size=32)
    cfg = load_job_config({
        "job": "distill", "teacher": str(tiny_bundle), "out": str(root / "student"), "steps": 2,
        "time_cond_proj_dim": 32, "num_ddim_timesteps": GRID, "student_steps": STUDENT_STEPS,
        "data": {"shards": str(shards), "image_size": 32, "seq_len": 4, "stride": 4, "batch_size": 1},
    })
    train_local(cfg)
    bundle = root / "student"
    voice = bundle / "voice" / "openvoice"
    voice.mkdir(parents=True)
    ov = make_converter("openvoice", random_weights=True, device="cpu").model
    (voice / "config.json").write_text(json.dumps(
        {"data": {"sampling_rate": 22050, "filter_length": 1024, "hop_length": 256, "win_length": 1024}}))
    torch.save({"model": ov.state_dict()}, voice / "checkpoint.pth")
    config = BundleConfig.read(bundle / CONFIG_FILE)
    config.voice = VoiceDefaults(backend="openvoice", model_dir="voice/openvoice")
    # long-range anchors on: every runner runs the anchor pass before its windows (the parity UNet
    # has 24 temporal positions: sequences of 3 keyframes 8 frames apart)
    config.sampler.anchors = AnchorSampling(stride=8, sequence=3, overlap=1)
    config.write(bundle / CONFIG_FILE)
    return bundle


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict[str, Path]:
    """A talking head whose own track is the speaker's voice (the conversion's reference)."""
    import soundfile as sf
    from talking import write_face_clip

    from lsray.synth import synthesize

    d = tmp_path_factory.mktemp("runner-media")
    own = synthesize("The weather is fine today, and we walk to the market.", voice="en+m3")
    sf.write(str(d / "own.wav"), own.samples, own.sr)
    dub = synthesize("Hoy hace buen tiempo y vamos al mercado.", voice="es+f3")
    sf.write(str(d / "dub.wav"), dub.samples, dub.sr)
    frames = int(own.duration_s * 25)
    return {"root": d, "video": write_face_clip(d / "face.mp4", frames=frames, size=(160, 120), audio=d / "own.wav"),
            "audio": d / "dub.wav"}


@pytest.fixture(scope="module")
def expected_timesteps(distilled) -> list[int]:
    from lsray.bundle import BundleConfig
    from lsray.sampling.window import visited_timesteps

    cfg = BundleConfig.read(distilled / "config.json")
    grid = visited_timesteps("lcm", STUDENT_STEPS, cfg.sampler.scheduler, lcm_grid=GRID)
    assert grid != visited_timesteps("lcm", STUDENT_STEPS, cfg.sampler.scheduler)  # the grid matters
    return grid


@pytest.fixture(scope="module")
def local_digest(distilled, clip, expected_timesteps, tmp_path_factory) -> str:
    """``lsray dub-one`` with no sampler or voice flags: LCM on the grid, OpenVoice."""
    out = tmp_path_factory.mktemp("local") / "out.mp4"
    run = subprocess.run([sys.executable, "-m", "lsray", "dub-one", str(clip["video"]), str(clip["audio"]),
                          "-o", str(out), "--model", str(distilled), "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    line = re.search(r"sampler (\w+), (\d+) steps, (\d+) UNet calls per window at timesteps (\[[\d, ]+\]); "
                     r"voice (\w+); mouths sha256 (\w+)", run.stdout)
    assert line, run.stdout
    sampler, steps, calls, timesteps, voice, printed = line.groups()
    assert (sampler, int(steps), int(calls), json.loads(timesteps), voice) == (
        "lcm", STUDENT_STEPS, STUDENT_STEPS, expected_timesteps, "openvoice")
    from lsray.media import probe

    assert probe(out).has_audio
    digest = _digest(distilled, clip)  # in-process, under another clip id: the noise does not depend on it
    assert digest.startswith(printed)
    return digest


def _digest(bundle: Path, clip: dict, **options) -> str:
    """The full digest of the generated crops of an in-process run (dub-one prints a prefix)."""
    from lsray.bundle import load_bundle
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec

    out = clip["root"] / f"digest-{len(options)}.mp4"
    result = run_clip(ClipFlow(load_bundle(bundle, device="cpu"), encode_preset="ultrafast"),
                      ClipSpec("face", str(clip["video"]), str(clip["audio"]), str(out), DubOptions(**options)))
    assert result.status == "done", result.error
    assert result.sampling["anchors"]["keyframes"] == len(range(0, result.frames, 8))
    return result.sampling["generated_sha256"]


def test_local_runner_samples_as_distilled_and_voices_with_the_bundle_backend(local_digest, distilled, clip):
    assert _digest(distilled, clip) == local_digest  # deterministic in-process too


def test_voice_off_and_builtin_differ_in_the_muxed_audio(distilled, clip, tmp_path):
    from lsray.bundle import load_bundle
    from lsray.media import read_audio
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec

    flow = ClipFlow(load_bundle(distilled, device="cpu"), encode_preset="ultrafast")
    tracks = {}
    for voice in ("off", "builtin"):
        out = tmp_path / f"{voice}.mp4"
        result = run_clip(flow, ClipSpec(voice, str(clip["video"]), str(clip["audio"]), str(out), DubOptions(voice=voice)))
        assert result.status == "done" and result.voice == voice
        tracks[voice], _ = read_audio(out, mono=True)
    n = min(len(tracks["off"]), len(tracks["builtin"]))
    assert np.abs(tracks["off"][:n] - tracks["builtin"][:n]).mean() > 1e-3


def test_ddim_still_works_on_the_student_bundle_through_its_teacher(distilled, clip, tmp_path):
    from lsray.bundle import load_bundle
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec

    bundle = load_bundle(distilled, device="cpu", lazy=True)
    assert bundle.teacher_unet.config.time_cond_proj_dim is None
    result = run_clip(ClipFlow(bundle, encode_preset="ultrafast"), ClipSpec(
        "ddim", str(clip["video"]), str(clip["audio"]), str(tmp_path / "ddim.mp4"), DubOptions(sampler="ddim", steps=3, voice="off")))
    assert result.status == "done", result.error
    assert (result.sampling["sampler"], result.sampling["unet_calls_per_window"]) == ("ddim", 3)


def test_missing_coqui_model_folder_is_a_clear_error(distilled, clip, tmp_path):
    from lsray.bundle import load_bundle
    from lsray.pipeline.flow import ClipFlow
    from lsray.pipeline.local import run_clip
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec

    flow = ClipFlow(load_bundle(distilled, device="cpu", lazy=True))
    spec = ClipSpec("x", str(clip["video"]), str(clip["audio"]), str(tmp_path / "x.mp4"),
                    DubOptions(voice="freevc", voice_model=str(tmp_path / "no-such-freevc")))
    result = run_clip(flow, spec)
    assert result.status == "error" and "no-such-freevc" in result.error
    assert not (tmp_path / "x.mp4").exists()
    result = run_clip(flow, ClipSpec("y", spec.video, spec.audio, str(tmp_path / "y.mp4"), DubOptions(voice="knnvc")))
    assert result.status == "error" and "model folder" in result.error


def test_batch_runner_gives_the_same_mouths(ray_cluster, distilled, clip, local_digest, expected_timesteps, tmp_path):
    import pyarrow.parquet as pq

    from lsray.batch.config import load_batch_config
    from lsray.batch.job import JobSpec, run_job

    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(json.dumps({"clip_id": "face", "video": str(clip["video"]), "audio": str(clip["audio"])}) + "\n")
    stages = {"prepare": {"num_cpus": 0.5}, "anchors": {"num_cpus": 0.25}, "shard": {"num_cpus": 0.25},
              "audio": {"num_cpus": 0.25},
              "sample": {"num_cpus": 0, "resources": {"accelerator": 1}}, "render": {"num_cpus": 0.5},
              "assemble": {"num_cpus": 0.25}, "windows_per_call": 8}
    outcome = run_job(JobSpec(catalog=str(catalog), out=str(tmp_path / "out"), model=str(distilled),
                              address=ray_cluster.address, config=load_batch_config(overrides=stages), progress=False))
    [row] = pq.read_table(tmp_path / "out" / "report.parquet").to_pylist()
    assert row["status"] == "done", row["error"]
    assert (row["sampler"], row["sampling_steps"], row["unet_calls_per_window"], row["timesteps"], row["voice"]) == (
        "lcm", STUDENT_STEPS, STUDENT_STEPS, expected_timesteps, "openvoice")
    assert row["generated_sha256"] == local_digest
    assert row["anchor_keyframes"] == len(range(0, row["frames"], 8))  # the anchor pass ran, once
    assert ray_cluster.accel_node_id in outcome.placement["sample"]


def test_serve_on_two_nodes_with_s3_staging_gives_the_same_mouths(
        ray_cluster, distilled, clip, local_digest, expected_timesteps, moto_s3, s3_bucket, tmp_path):
    """Sample on the accelerator node, the other stages on the head, the hand-over through S3
    (each step works in its own scratch folder, removed when the step ends, so a local path
    passed between stages could not work)."""
    import requests
    from ray import serve
    from ray.util.state import list_actors

    from lsray.serve import deploy

    import dataclasses

    def on(node_resources: dict, name: str) -> dict:
        one = ({"num_replicas": 1} if name == "jobs" else
               {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 2}})
        return {**one, "ray_actor_options": node_resources}

    head = {"num_cpus": 0.1}
    head_only = {"num_cpus": 1.1}  # more than the accelerator node's single CPU: these land on the head
    config = deploy.with_overrides(
        deploy.load_config(),
        http={"host": "127.0.0.1", "port": _free_port()},
        args={"bundle": str(distilled), "storage_roots": [str(clip["root"])], "api_keys": [KEY],
              "staging_root": f"s3://{s3_bucket}/staging", "output_root": f"s3://{s3_bucket}/outputs",
              "torch_threads": 1, "encode_preset": "ultrafast", "s3": dataclasses.asdict(moto_s3)},
        deployments={
            "Ingress": on(head, "ingress"), "JobManager": on(head, "jobs"), "PrepareDeployment": on(head_only, "prepare"),
            "AudioDeployment": on(head, "audio"), "RenderDeployment": on(head_only, "render"),
            "SampleDeployment": on({"num_cpus": 0, "resources": {"accelerator": 1}}, "sample"),
        },
    )
    url = deploy.deploy(config)
    try:
        r = requests.post(f"{url}/v1/dub", json={"video": str(clip["video"]), "audio": str(clip["audio"])},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=600)
        assert r.status_code == 200, r.text
        trace = json.loads(r.headers["x-lsray-sampling"])
        assert (trace["sampler"], trace["steps"], trace["unet_calls_per_window"], trace["timesteps"]) == (
            "lcm", STUDENT_STEPS, STUDENT_STEPS, expected_timesteps)
        assert r.headers["x-lsray-voice"] == "openvoice"
        assert trace["generated_sha256"] == local_digest
        assert trace["anchors"]["keyframes"] > 0
        nodes = {a.class_name.rsplit(":", 1)[-1]: a.node_id for a in list_actors(filters=[("state", "=", "ALIVE")])
                 if a.class_name.startswith("ServeReplica")}
        assert nodes["SampleDeployment"] == ray_cluster.accel_node_id
        assert nodes["PrepareDeployment"] == nodes["RenderDeployment"] == ray_cluster.head_node_id
        # Nothing staged is left behind once the clip is answered.
        left = moto_s3.client().list_objects_v2(Bucket=s3_bucket, Prefix="staging/").get("KeyCount", 0)
        assert left == 0
    finally:
        serve.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
