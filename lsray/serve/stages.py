"""One Serve deployment per heavy stage, each holding its pipeline stage built once.

1. ``PrepareDeployment``  ClipSpec -> stream of ClipShards (prepare + voice + shard). Face
   detection/tracking (mediapipe) and frame alignment: CPU-bound, no model weights beyond the
   bundle's config. Voice conversion runs here because it works on the whole plan before any
   shard exists; shards are streamed out (fan-out) so a long clip is never held whole.
2. ``AudioDeployment``    ClipShard -> ClipShard + tokens (Whisper [+ phonemes]): small model,
   light; sized at a fraction of a CPU (a GPU share on clusters).
3. ``SampleDeployment``   ClipShard -> ClipShard + generated crops (VAE + UNet): the heavy one,
   the one that gets GPUs and autoscales; ``@serve.batch`` groups concurrent shards (of any
   request) into one replica call, and ``SampleStage.sample_many`` denoises their windows
   together (one UNet call per group of equal sampler/steps/guidance/size).
4. ``RenderDeployment``   ClipShard -> RenderedSegment (paste back + H.264), and per clip the
   final concat + mux (``assemble``): CPU-bound ffmpeg work, no weights but the mask.

Render and prepare share the clip's work folder (``plan.work_dir`` under ``work_root``): on one
node that is /tmp; on a multi-node cluster ``work_root`` must be a shared volume.
Resource requests (CPUs, GPUs, replicas) are configuration: ``deployments/serve.yaml``.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from typing import Any

from ray import serve

from lsray.errors import LsrayError
from lsray.pipeline.stages import build_stage
from lsray.serve.loopback import keep_replica_grpc_on_loopback
from lsray.serve.settings import ServeSettings



class StageFailed(LsrayError):
    """A stage refused a clip (bad input the probe could not see); one plain message, so it
    crosses process boundaries intact."""


def _setup(settings: dict) -> ServeSettings:
    import torch

    s = ServeSettings(**settings)
    torch.set_num_threads(s.torch_threads)
    return s


def _bundle_config(location: str):
    from lsray.bundle.config import CONFIG_FILE, BundleConfig
    from lsray.bundle.load import resolve_bundle

    path = resolve_bundle(location)
    return path, BundleConfig.read(path / CONFIG_FILE)


@serve.deployment
class PrepareDeployment:
    def __init__(self, settings: dict) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        s = _setup(settings)
        self.prepare = build_stage("prepare", s.bundle, work_root=s.work_root)
        self.voice = build_stage("voice", s.bundle)
        self.shard = build_stage("shard", s.bundle)
        # Serve runs sync methods on a thread pool; mediapipe's graphs are not thread-safe (two
        # clips at once on one tracker crash the process), so one clip is tracked at a time.
        self.lock = threading.Lock()

    def shards(self, spec):  # -> Iterator[ClipShard], streamed to the caller
        plan = None
        try:
            with self.lock:
                plan = self.voice(self.prepare(spec))
            yield from self.shard(plan)  # alignment only (no mediapipe): may overlap another clip's tracking
        except LsrayError as exc:
            if plan is not None:
                shutil.rmtree(plan.work_dir, ignore_errors=True)
            raise StageFailed(str(exc)) from None


@serve.deployment
class AudioDeployment:
    def __init__(self, settings: dict) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        self.stage = build_stage("audio", _setup(settings).bundle)

    def __call__(self, shard):
        try:
            return self.stage(shard)
        except LsrayError as exc:
            raise StageFailed(str(exc)) from None


@serve.deployment
class SampleDeployment:
    """``user_config``: ``{"max_batch_size": N, "batch_wait_timeout_s": T}``; N = 1 turns batching off."""

    def __init__(self, settings: dict) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        self.stage = build_stage("sample", _setup(settings).bundle)
        self.batches: list[int] = []  # sizes of the last batches run (observability, benchmark)

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.sample.set_max_batch_size(int(config.get("max_batch_size", 4)))
        self.sample.set_batch_wait_timeout_s(float(config.get("batch_wait_timeout_s", 0.05)))

    def _run(self, shards: list) -> list:
        try:  # windows of every shard in the batch share UNet calls where their shapes allow
            return self.stage.sample_many(shards)
        except LsrayError:
            pass  # one bad shard: run them one by one so only that request fails
        out = []
        for shard in shards:
            try:
                out.append(self.stage(shard))
            except LsrayError as exc:
                out.append(StageFailed(str(exc)))
        return out

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def sample(self, shards: list) -> list:
        self.batches = (self.batches + [len(shards)])[-1000:]
        results = await asyncio.to_thread(self._run, shards)
        return results

    async def __call__(self, shard):
        result = await self.sample(shard)
        if isinstance(result, Exception):
            raise result
        return result

    def batch_sizes(self) -> list[int]:
        return list(self.batches)


@serve.deployment
class RenderDeployment:
    def __init__(self, settings: dict) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        s = _setup(settings)
        self.stage = build_stage("render", s.bundle, encode_preset=s.encode_preset)

    def render(self, shard):
        try:
            return self.stage(shard)
        except LsrayError as exc:
            raise StageFailed(str(exc)) from None

    def assemble(self, plan, segments):
        from lsray.pipeline.render import assemble

        try:
            return assemble(plan, segments)
        except LsrayError as exc:
            raise StageFailed(str(exc)) from None
