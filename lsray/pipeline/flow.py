"""The one clip flow: every runner (local, Ray Data batch, Serve) dubs a clip through these steps.

    prepare (+ voice)  ClipSpec -> ClipPlan          settings resolved once, face track, voice
    keyframes          ClipPlan -> Keyframes         every 8th frame aligned (anchors on only)
    audio              Keyframes -> Keyframes        their audio tokens
    anchors            Keyframes -> ClipAnchors      the anchor pass: keyframes sampled first
    shard              ClipPlan -> ClipShards        whole 16-frame windows, aligned crops, anchors
    audio              ClipShard -> ClipShard        audio tokens
    sample             [ClipShard] -> [ClipShard]    UNet (windows of several shards batched)
    render             ClipShard -> RenderedSegment  paste back + H.264, published to staging
    assemble           ClipPlan + segments -> ClipResult   concat + mux, published to the output

Steps hand over through storage URIs (``plan.staging``: a folder or an ``s3://`` prefix), never
through a worker's local path, so consecutive steps may run on different nodes with different
work folders. Each step localises what it reads (:class:`~lsray.pipeline.inputs.InputCache`) into
its own scratch folder and removes that folder before it returns. Runners only move data between
the steps: :func:`lsray.pipeline.local.run_clip` calls them in a loop, the batch actors map rows
with them, the Serve deployments pass shards from handle to handle.

Stages are built on first use, or when a worker starts (:meth:`ClipFlow.build`), and their modules
are imported then, so a worker that runs only one step imports and loads only that step's code and
models: the face workers never hold the UNet, the UNet workers never hold Whisper, and render and
assemble never import torch (``benchmarks/worker_startup.py``: a render worker starts in 0.26 s
with 78 MB, where every worker took 4.2 s and 452 MB when each imported every stage's module).
"""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from lsray.bundle.load import ModelBundle, load_bundle
from lsray.errors import LsrayError
from lsray.pipeline.inputs import InputCache
from lsray.pipeline.records import ClipAnchors, ClipPlan, ClipResult, ClipShard, ClipSpec, Keyframes, RenderedSegment
from lsray.storage import S3Config, atomic_upload, delete_prefix, delete_uris, join

if TYPE_CHECKING:  # each stage's module is imported where the stage is built (see ClipFlow)
    from lsray.pipeline.anchors import AnchorStage
    from lsray.pipeline.audio import AudioStage
    from lsray.pipeline.prepare import PrepareStage, ShardStage
    from lsray.pipeline.render import RenderStage
    from lsray.pipeline.sample import SampleStage
    from lsray.pipeline.voice import VoiceStage

#: Publishes a finished local output file for a clip and returns where it now is.
Publish = Callable[[str, ClipPlan], str]


class ClipFailed(LsrayError):
    """A step refused a clip (bad input, an option the bundle cannot honour). One plain message,
    so it crosses process boundaries intact; runners turn it into the clip's error result."""


class ClipFlow:
    """The steps of dubbing one clip, on one bundle. Cheap to construct: nothing loads until a
    step needs it. ``staging_root``: where clips' intermediate files are handed over (a folder
    every worker can read, or an ``s3://`` prefix); default a local temp folder (one machine)."""

    #: stages whose modules never import torch: a worker that builds only these leaves torch's
    #: thread pool alone (and never loads it)
    TORCH_FREE = frozenset({"render"})

    def __init__(self, bundle: ModelBundle | str | Path, *, device=None, staging_root: str | None = None,
                 encode_preset: str = "medium", s3: S3Config | None = None, precision: str | None = None,
                 compile_unet: bool = False) -> None:
        self._bundle, self._device, self._precision, self._compile = bundle, device, precision, compile_unet
        self.staging_root = staging_root or default_staging_root()
        self.encode_preset = encode_preset
        self.inputs = InputCache(s3)

    # -- the bundle and its stages, each built on first use -------------------------------------
    @cached_property
    def bundle(self) -> ModelBundle:
        if isinstance(self._bundle, ModelBundle):
            return self._bundle
        return load_bundle(self._bundle, self._device, lazy=True, precision=self._precision,
                           compile_unet=self._compile)

    @cached_property
    def prepare_stage(self) -> PrepareStage:
        from lsray.pipeline.prepare import PrepareStage

        return PrepareStage()

    @cached_property
    def voice_stage(self) -> VoiceStage:
        from lsray.pipeline.voice import VoiceStage

        return VoiceStage(bundle_dir=self.bundle.path)

    @cached_property
    def shard_stage(self) -> ShardStage:
        from lsray.pipeline.prepare import ShardStage

        return ShardStage(dubbed_only=True)  # render reads no crop of a shard with nothing to dub

    @cached_property
    def audio_stage(self) -> AudioStage:
        from lsray.pipeline.audio import AudioStage

        return AudioStage(self.bundle.audio_encoder, token_dim=self.bundle.config.unet.cross_attention_dim)

    @cached_property
    def sample_stage(self) -> SampleStage:
        from lsray.pipeline.sample import SamplerSettings, SampleStage

        cfg = self.bundle.config
        settings = SamplerSettings(scheduler_config=cfg.sampler.scheduler.model_dump(),
                                   detail_transfer=cfg.sampler.detail_transfer, detail_gate=cfg.sampler.detail_gate)
        return SampleStage(self.bundle.sampling_unet, self.bundle.codec, self.bundle.mask, settings)

    @cached_property
    def anchor_stage(self) -> AnchorStage:
        from lsray.pipeline.anchors import AnchorStage

        return AnchorStage(self.sample_stage)

    @cached_property
    def render_stage(self) -> RenderStage:
        from lsray.pipeline.render import RenderStage

        return RenderStage(self.bundle.mask, preset=self.encode_preset)

    def build(self, *stages: str) -> None:
        """Build ``stages`` now ("prepare", "shard", "audio", "sample", "render"): their imports and
        models, when a worker starts, so its first clip does not wait for them. A stage that fails
        to build is left to the first clip that needs it, whose error it then is (a clip's report
        or a request's answer, not a worker that never starts)."""
        for stage in stages:
            name = f"{stage}_stage"
            if not isinstance(getattr(type(self), name, None), cached_property):
                raise ValueError(f"ClipFlow has no stage {stage!r}")  # a caller's typo, never a clip's fault
            try:
                getattr(self, name)
            except Exception:  # noqa: BLE001 - not cached: the next access raises it again
                pass

    # -- the steps -------------------------------------------------------------------------------
    def prepare(self, spec: ClipSpec) -> ClipPlan:
        """Resolve the clip's settings, track its speaker, re-voice the dub if asked. The plan
        names URIs only (inputs as given, the converted voice in the clip's staging folder)."""
        settings = spec.options.resolve(self.bundle.config)  # the one place defaults are decided
        staging = join(self.staging_root, f"{spec.clip_id}-{uuid.uuid4().hex[:12]}")
        local = self.inputs.spec(spec)
        with _scratch(spec.clip_id) as scratch:
            plan = self.prepare_stage(local, settings, staging)
            plan = self.voice_stage(plan, scratch)
            track = spec.audio
            if plan.track != local.audio:  # converted: publish it for the later steps
                track = join(staging, "voice.wav")
                atomic_upload(plan.track, track)
        return dataclasses.replace(plan, spec=spec, track=track)

    def keyframes(self, plan: ClipPlan) -> Keyframes | None:
        """The clip's keyframes for the anchor pass, aligned; None when its anchors are off (or
        nothing in it is dubbed). Give them to :meth:`audio`, then :meth:`anchors`."""
        if plan.settings.anchors is None:
            return None
        kf = self.shard_stage.keyframes(self.inputs.plan(plan), plan.settings.anchors.stride)
        if kf is not None:
            kf.plan = plan
        return kf

    def anchors(self, keyframes: Keyframes) -> ClipAnchors:
        """The anchor pass (once per clip, before any window): the keyframes' sampled latents."""
        return self.anchor_stage(keyframes)

    def shard(self, plan: ClipPlan, anchors: ClipAnchors | None = None) -> Iterator[ClipShard]:
        """The clip's shards, cut lazily (one in memory at a time); each carries ``plan`` and the
        keyframes of ``anchors`` its windows pin (the first shard also the anchor pass's timings)."""
        for shard in self.shard_stage(self.inputs.plan(plan)):
            shard.plan = plan
            if anchors is not None:
                shard.anchors = anchors.for_shard(shard.start, shard.stop)
                if shard.index == 0:
                    for key, value in anchors.timings.items():
                        shard.timings[key] = shard.timings.get(key, 0.0) + value
            yield shard

    def audio(self, shard: ClipShard | Keyframes) -> ClipShard | Keyframes:
        """Audio tokens; a shard with no frame to dub (silence that keeps the source mouth, no
        face) keeps ``tokens`` None: no window of it is sampled, so Whisper would run for nothing."""
        if isinstance(shard, ClipShard) and not shard.changes():
            return shard
        return self.audio_stage(shard)

    def sample(self, shards: list[ClipShard], max_windows: int = 1) -> list[ClipShard]:
        """Generate the mouths of ``shards`` (of any clips); up to ``max_windows`` windows share
        a UNet call. A window's result does not depend on what it was batched with."""
        out = self.sample_stage.sample_many(shards, max_windows=max_windows)
        for shard in out:
            shard.tokens = shard.anchors = None  # not needed downstream: keep what travels small
        return out

    def render(self, shard: ClipShard) -> RenderedSegment:
        """Paste back and encode; the segment is published to the clip's staging folder."""
        plan = shard.plan
        with _scratch(plan.clip_id) as scratch:
            shard.plan = self.inputs.plan(plan)
            try:
                segment = self.render_stage(shard, Path(scratch) / "segment.mp4")
            finally:
                shard.plan = plan
            uri = join(plan.staging, f"segment-{segment.index:05d}.mp4")
            atomic_upload(segment.path, uri)
        segment.path = uri
        return segment

    def assemble(self, plan: ClipPlan, segments: list[RenderedSegment], publish: Publish | None = None) -> ClipResult:
        """Join the segments, mux the track, publish the output (default: an atomic copy to
        ``plan.spec.output``, a path or URI), then drop the clip's staged files."""
        from lsray.pipeline.render import assemble

        with _scratch(plan.clip_id) as scratch:
            inputs = InputCache(self.inputs.config, max_files=len(segments) + 2)
            try:
                local = [dataclasses.replace(s, path=inputs.path(s.path)) for s in segments]
                out = str(Path(scratch) / "out.mp4")
                result = assemble(dataclasses.replace(plan, track=inputs.path(plan.track)), local, out)
                result.output = (publish or _copy_to_output)(out, plan)
            finally:
                inputs.close()
        self.discard(plan, segments)
        return result

    def discard(self, plan: ClipPlan, segments: list[RenderedSegment] = ()) -> None:
        """Remove a clip's staged files (after assembly, or when the clip failed half-way)."""
        delete_uris([s.path for s in segments], self.inputs.config)
        delete_prefix(plan.staging, self.inputs.config)


def default_staging_root() -> str:
    """Where clips hand over when no staging root is configured: a local folder (one machine)."""
    return str(Path(tempfile.gettempdir()) / "lsray-staging")


def failed(clip_id: str, exc: BaseException) -> ClipResult:
    """A clip's error result (the message names the problem; a traceback would help no user)."""
    message = str(exc) if isinstance(exc, LsrayError) else f"{type(exc).__name__}: {exc}"
    return ClipResult(clip_id=clip_id, status="error", error=message)


def _copy_to_output(local: str, plan: ClipPlan) -> str:
    atomic_upload(local, plan.spec.output)  # temp name + rename: never half-written under the name
    return plan.spec.output


def _scratch(clip_id: str) -> tempfile.TemporaryDirectory:
    """A step's own local folder, removed when the step ends (nothing is left for another step)."""
    return tempfile.TemporaryDirectory(prefix=f"lsray-{clip_id[:40]}-", ignore_cleanup_errors=True)
