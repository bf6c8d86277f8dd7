"""The stage workers: each wraps ONE pipeline stage, built once in ``__init__`` from the bundle
(only the models that stage needs), and maps Ray Data batches of :mod:`lsray.batch.records` rows.

Every worker follows the same three rules:
1. rows of a kind it does not handle pass through unchanged (reports of clips that already
   ended, rows for later stages);
2. any exception on one row becomes that clip's ``report`` row with status ``error`` and the
   message — one broken clip never fails the job;
3. each unit of work is registered with the attempt ledger before it runs, so a re-run after a
   killed worker is counted (see :mod:`lsray.batch.ledger`).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np

from lsray.batch.records import ClipTicket, decode, encode, rows_of, to_batch
from lsray.errors import LsrayError
from lsray.storage import S3Config


@dataclass(frozen=True)
class WorkerContext:
    """What every worker needs to know about the job (small, pickled into each actor)."""

    bundle: str
    out_root: str
    staging_root: str
    template: str
    model_id: str
    settings: dict[str, Any] = field(default_factory=dict)
    s3: S3Config | None = None
    ledger: str | None = None
    job_id: str = "lsray"
    encode_preset: str = "veryfast"


def error_message(stage: str, exc: BaseException) -> str:
    if isinstance(exc, LsrayError):
        return f"{stage}: {exc}"
    return f"{stage}: {type(exc).__name__}: {exc}"


def report_row(ticket: ClipTicket, status: str, *, error: str | None = None, output: str | None = None) -> dict[str, Any]:
    from lsray.report import ClipReport

    report = ClipReport(
        clip_id=ticket.clip_id, status=status, error=error, output_uri=output, frames=ticket.frames,
        fingerprint=ticket.fingerprint, line=ticket.line, seconds=dict(ticket.stage_seconds),
        started=datetime.fromtimestamp(ticket.started, timezone.utc) if ticket.started else None,
        finished=datetime.now(timezone.utc),
    )
    return encode("report", ticket.clip_id, (ticket, report))


class StageWorker:
    """Base of the stage actors: decode, pass through, isolate errors, ledger + metrics."""

    stage = ""
    handles = ""  # the row kind this stage consumes

    def __init__(self, ctx: WorkerContext) -> None:
        from lsray.batch.inputs import InputCache
        from lsray.batch.ledger import LedgerClient
        from lsray.batch.metrics import StageMetrics
        from lsray.storage import set_default_s3_config

        if ctx.s3 is not None:
            set_default_s3_config(ctx.s3)
        self.ctx = ctx
        self.inputs = InputCache(ctx.s3)
        self.ledger = LedgerClient(ctx.ledger)
        self.metrics = StageMetrics(self.stage, ctx.job_id)

    def unit(self, payload: Any) -> int:
        return 0

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        raise NotImplementedError

    def rows(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        clip_id, kind, payload = decode(row)
        if kind != self.handles:
            return [row]
        ticket: ClipTicket = payload if kind == "row" else payload[0]
        unit = self.unit(payload)
        self.ledger.start(self.stage, clip_id, unit)
        t0 = time.perf_counter()
        try:
            out = list(self.process(payload))
        except Exception as exc:  # noqa: BLE001 - isolate the clip, keep the job going
            out = [report_row(ticket, "error", error=error_message(self.stage, exc))]
        self.metrics.observe(time.perf_counter() - t0, self.frames(payload))
        self.ledger.finish(self.stage, clip_id, unit)
        return out

    def frames(self, payload: Any) -> int:
        return 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: list[dict[str, Any]] = []
        for row in rows_of(batch):
            out.extend(self.rows(row))
        return to_batch(out)


# ---------------------------------------------------------------------------------------------
# 1. prepare (+ voice): catalog row -> ClipPlan, or an early report (skipped / error)
# ---------------------------------------------------------------------------------------------
class PrepareWorker(StageWorker):
    stage, handles = "prepare", "row"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        from lsray.pipeline.stages import build_stage

        self.prepare = build_stage("prepare", ctx.bundle)
        self.voice = build_stage("voice", ctx.bundle)

    def process(self, ticket: ClipTicket) -> Iterable[dict[str, Any]]:
        from lsray.catalog import CatalogRow, clip_fingerprint, is_done, output_uri
        from lsray.pipeline.records import ClipSpec
        from lsray.storage import join

        ticket.started = time.time()
        row = CatalogRow.model_validate_json(ticket.row_json)
        ticket.fingerprint = clip_fingerprint(row, self.ctx.model_id, self.ctx.settings)  # missing input -> error
        ticket.out_uri = output_uri(self.ctx.out_root, row, self.ctx.template, ticket.fingerprint)
        ticket.staging_uri = join(self.ctx.staging_root, f"{row.clip_id}-{ticket.fingerprint[:12]}")
        if is_done(ticket.out_uri, ticket.fingerprint):
            yield report_row(ticket, "skipped", output=ticket.out_uri)
            return
        spec = ClipSpec(row.clip_id, row.video, row.audio, ticket.out_uri, row.options,
                        voice_reference=row.voice_reference, face_sidecar=row.face_sidecar)
        local = self.inputs.spec(spec)
        plan = self.voice(self.prepare(local))
        # Carry URIs, not this worker's paths: the next stages may run on other nodes. A
        # voice-converted track is published to the clip's staging folder first.
        if plan.track == local.audio:
            track = spec.audio
        else:
            from lsray.storage import atomic_upload

            track = join(ticket.staging_uri, "voice.wav")
            atomic_upload(plan.track, track)
        shutil.rmtree(plan.work_dir, ignore_errors=True)  # later stages make their own
        plan = dataclasses.replace(plan, spec=spec, track=track, work_dir="")
        ticket.frames = plan.timeline.output_frames
        yield encode("plan", row.clip_id, (ticket, plan))


# ---------------------------------------------------------------------------------------------
# 2. shard (fan-out): ClipPlan -> ClipShards of whole 16-frame windows (used with flat_map)
# ---------------------------------------------------------------------------------------------
class ShardWorker(StageWorker):
    stage, handles = "shard", "plan"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        from lsray.pipeline.stages import build_stage

        self.shard = build_stage("shard", ctx.bundle)

    def frames(self, payload: Any) -> int:
        return payload[1].timeline.output_frames

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        ticket, plan = payload
        local = self.inputs.plan(plan)
        for shard in self.shard(local):
            shard.plan = plan
            yield encode("shard", ticket.clip_id, (ticket, shard))

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:  # flat_map: one row in, n out
        return self.rows(row)


# ---------------------------------------------------------------------------------------------
# 3-5. audio, sample, render: one shard in, one shard (or segment) out
# ---------------------------------------------------------------------------------------------
class ShardWorkerBase(StageWorker):
    handles = "shard"

    def unit(self, payload: Any) -> int:
        return payload[1].index

    def frames(self, payload: Any) -> int:
        return payload[1].frames


class AudioWorker(ShardWorkerBase):
    stage = "audio"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        from lsray.pipeline.stages import build_stage

        self.audio = build_stage("audio", ctx.bundle)

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        ticket, shard = payload
        yield encode("shard", ticket.clip_id, (ticket, self.audio(shard)))


class SampleWorker(ShardWorkerBase):
    stage = "sample"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        from lsray.pipeline.stages import build_stage

        self.sample = build_stage("sample", ctx.bundle)

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        ticket, shard = payload
        shard = self.sample(shard)
        shard.tokens = None  # not needed downstream: keep the rows small
        yield encode("shard", ticket.clip_id, (ticket, shard))


class RenderWorker(ShardWorkerBase):
    """Pastes and encodes a shard, then publishes the segment to the clip's staging folder
    (atomically), so assembly can run on any node; the row carries only the segment's URI."""

    stage = "render"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        from lsray.pipeline.stages import build_stage

        self.render = build_stage("render", ctx.bundle, encode_preset=ctx.encode_preset)

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        from lsray.storage import atomic_upload, join

        ticket, shard = payload
        plan = shard.plan
        work = tempfile.mkdtemp(prefix=f"lsray-render-{ticket.clip_id}-")
        try:
            shard.plan = dataclasses.replace(self.inputs.plan(plan), work_dir=work)
            segment = self.render(shard)
            uri = join(ticket.staging_uri, f"segment-{segment.index:05d}.mp4")
            atomic_upload(segment.path, uri)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        segment.path = uri
        yield encode("segment", ticket.clip_id, (ticket, plan, segment))


# ---------------------------------------------------------------------------------------------
# 6. assemble (a Ray task per clip, started by the driver once all its segments are in)
# ---------------------------------------------------------------------------------------------
def assemble_clip(ctx: WorkerContext, ticket: ClipTicket, plan: Any, segments: list[Any]) -> dict[str, Any]:
    """Join the segments, mux the track, publish output + done marker; returns a report row."""
    from lsray.batch.inputs import InputCache
    from lsray.batch.ledger import LedgerClient
    from lsray.batch.metrics import StageMetrics
    from lsray.batch.staging import delete_uris
    from lsray.catalog import publish_output
    from lsray.pipeline.render import assemble
    from lsray.storage import set_default_s3_config

    if ctx.s3 is not None:
        set_default_s3_config(ctx.s3)
    ledger = LedgerClient(ctx.ledger)
    ledger.start("assemble", ticket.clip_id, 0)
    t0 = time.perf_counter()
    inputs = InputCache(ctx.s3, max_files=len(segments) + 4)
    tmp = tempfile.mkdtemp(prefix=f"lsray-assemble-{ticket.clip_id}-")
    try:
        local_segments = [dataclasses.replace(s, path=inputs.path(s.path)) for s in segments]
        out = f"{tmp}/out.mp4"
        local_plan = inputs.plan(plan)
        local_plan = dataclasses.replace(local_plan, spec=dataclasses.replace(local_plan.spec, output=out),
                                         work_dir=f"{tmp}/work")
        result = assemble(local_plan, local_segments)
        ticket.stage_seconds = dict(result.timings)
        ticket.frames = result.frames
        publish_output(out, ticket.out_uri, ticket.fingerprint or "",
                       details={"clip_id": ticket.clip_id, "status": result.status, "frames": result.frames})
        row = report_row(ticket, result.status, output=ticket.out_uri)
        _, _, (_, report) = decode(row)
        report.no_face_frames = result.no_face_frames
        report.speaker_similarity = result.speaker_similarity
        row = encode("report", ticket.clip_id, (ticket, report))
    except Exception as exc:  # noqa: BLE001
        row = report_row(ticket, "error", error=error_message("assemble", exc))
    finally:
        inputs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    delete_uris([s.path for s in segments])
    StageMetrics("assemble", ctx.job_id).observe(time.perf_counter() - t0, ticket.frames)
    ledger.finish("assemble", ticket.clip_id, 0)
    return row
