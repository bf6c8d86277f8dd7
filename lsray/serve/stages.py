"""One Serve deployment per heavy stage, each holding its pipeline stage built once.

1. ``PrepareDeployment``  ClipSpec -> ClipPlan + keyframes (prepare + voice), then the plan ->
   stream of ClipShards. Face detection/tracking (mediapipe) and frame alignment: CPU-bound, no
   model weights beyond the bundle's config. Voice conversion runs here because it works on the
   whole plan before any shard exists; shards are streamed out (fan-out) so a long clip is never
   held whole.
2. ``AudioDeployment``    ClipShard -> ClipShard + tokens (Whisper [+ phonemes]): small model,
   light; sized at a fraction of a CPU (a GPU share on clusters).
3. ``SampleDeployment``   ClipShard -> ClipShard + generated crops (VAE + UNet): the heavy one,
   the one that gets GPUs and autoscales; shards (of any request) that queue while a batch runs
   form the next batch (``lsray.serve.batcher``), and ``SampleStage.sample_many`` denoises their
   windows together (one UNet call per group of equal sampler/steps/guidance/size). It also runs
   each clip's anchor pass (long-range anchors) before the clip's shards are cut.
4. ``RenderDeployment``   ClipShard -> RenderedSegment (paste back + H.264), and per clip the
   final concat + mux (``assemble``): CPU-bound ffmpeg work, no weights but the mask.

Each deployment runs steps of the one clip flow (:class:`lsray.pipeline.flow.ClipFlow`); steps
hand over through ``staging_root`` URIs (an ``s3://`` prefix, or a folder every node sees), never
a replica's local path, so each replica may sit on another node with its own work folder.
Resource requests (CPUs, GPUs, replicas) are configuration: ``deployments/serve.yaml``.
"""

from __future__ import annotations

import threading
from typing import Any

from ray import serve

from lsray.errors import LsrayError
from lsray.pipeline.flow import ClipFailed, ClipFlow
from lsray.serve.batcher import FreeWorkerBatcher
from lsray.serve.loopback import keep_replica_grpc_on_loopback
from lsray.serve.settings import ServeSettings


def _flow(settings: dict, *stages: str) -> ClipFlow:
    """This replica's view of the clip flow, with its own ``stages`` built (ClipFlow.build): the
    replica is ready with its models loaded, and imports nothing another stage needs (render
    never imports torch)."""
    s = ServeSettings(**settings)
    s.apply_storage()
    if set(stages) - ClipFlow.TORCH_FREE:
        import torch

        torch.set_num_threads(s.torch_threads)
    flow = ClipFlow(s.bundle, staging_root=s.staging_root, encode_preset=s.encode_preset, s3=s.s3,
                    precision=s.precision, compile_unet=s.compile_unet)
    flow.build(*stages)
    return flow


@serve.deployment
class PrepareDeployment:
    def __init__(self, settings: dict) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        self.flow = _flow(settings, "prepare", "shard")
        # Serve runs sync methods on a thread pool; mediapipe's graphs are not thread-safe (two
        # clips at once on one tracker crash the process), so one clip is tracked at a time.
        self.lock = threading.Lock()

    def plan(self, spec):  # -> (ClipPlan, Keyframes | None)
        """The clip's plan and, with anchors on, its keyframes aligned for the anchor pass."""
        plan = None
        try:
            with self.lock:
                plan = self.flow.prepare(spec)
            return plan, self.flow.keyframes(plan)  # alignment only (no mediapipe): may overlap another clip's tracking
        except LsrayError as exc:
            if plan is not None:
                self.flow.discard(plan)
            raise ClipFailed(str(exc)) from None

    def shards(self, plan, anchors=None):  # -> Iterator[ClipShard], streamed to the caller
        try:
            yield from self.flow.shard(plan, anchors)
        except LsrayError as exc:
            raise ClipFailed(str(exc)) from None


@serve.deployment
class AudioDeployment:
    def __init__(self, settings: dict) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        self.flow = _flow(settings, "audio")

    def __call__(self, shard):
        try:
            return self.flow.audio(shard)
        except LsrayError as exc:
            raise ClipFailed(str(exc)) from None


@serve.deployment
class SampleDeployment:
    """``user_config``: ``{"max_batch_size": N, "batch_wait_timeout_s": T, "windows_per_call": W}``;
    N = 1 turns batching off. Shards of any requests that queue while a batch runs go into the
    next one (:class:`~lsray.serve.batcher.FreeWorkerBatcher`); an idle replica waits T for company."""

    def __init__(self, settings: dict) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        self.flow = _flow(settings, "sample")
        self.windows_per_call = 4
        self.batcher = FreeWorkerBatcher(self._run, max_size=4, wait_s=0.05)

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.batcher.configure(int(config.get("max_batch_size", 4)), float(config.get("batch_wait_timeout_s", 0.05)))
        self.windows_per_call = int(config.get("windows_per_call", 4))

    def _run(self, shards: list) -> list:
        try:  # windows of every shard in the batch share UNet calls where their shapes allow
            return self.flow.sample(shards, max_windows=self.windows_per_call)
        except LsrayError:
            pass  # one bad shard: run them one by one so only that request fails
        out = []
        for shard in shards:
            try:
                out.extend(self.flow.sample([shard], max_windows=self.windows_per_call))
            except LsrayError as exc:
                out.append(ClipFailed(str(exc)))
        return out

    async def __call__(self, shard):
        return await self.batcher.submit(shard)

    def anchors(self, keyframes):
        """The clip's anchor pass (once per clip, before its shards are cut)."""
        try:
            return self.flow.anchors(keyframes)
        except LsrayError as exc:
            raise ClipFailed(str(exc)) from None

    def batch_sizes(self) -> list[int]:
        return list(self.batcher.sizes)


@serve.deployment
class RenderDeployment:
    def __init__(self, settings: dict) -> None:
        keep_replica_grpc_on_loopback()  # before Serve starts this replica's gRPC server
        self.flow = _flow(settings, "render")

    def render(self, shard):
        try:
            return self.flow.render(shard)
        except LsrayError as exc:
            raise ClipFailed(str(exc)) from None

    def assemble(self, plan, segments):
        """Join, mux and publish to ``plan.spec.output`` (a path or URI the caller chose)."""
        try:
            return self.flow.assemble(plan, segments)
        except LsrayError as exc:
            self.flow.discard(plan, segments)
            raise ClipFailed(str(exc)) from None

    def discard(self, plan, segments=()) -> None:
        self.flow.discard(plan, segments)
