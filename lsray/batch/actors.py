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

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np

from lsray.batch.ledger import given_up
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
    windows_per_call: int = 4  # sample: windows of a batch's shards denoised per UNet call
    precision: str | None = None  # sample: lsray.precision name (None: the bundle's)
    compile_unet: bool = False  # sample: torch.compile the UNet
    max_attempts: int = 3  # a unit whose worker died under it this often is given up (BatchConfig.max_attempts)
    threads: dict[str, int] = field(default_factory=dict)  # stage -> torch threads (BatchConfig.threads)

    def flow(self):
        """This worker's view of the one clip flow (stages load on first use: only its own)."""
        from lsray.pipeline.flow import ClipFlow

        return ClipFlow(self.bundle, staging_root=self.staging_root, encode_preset=self.encode_preset, s3=self.s3,
                        precision=self.precision, compile_unet=self.compile_unet)


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
    """Base of the stage actors: decode, pass through, isolate errors, ledger + metrics. The
    work itself is one step of :class:`lsray.pipeline.flow.ClipFlow`."""

    stage = ""
    handles = ""  # the row kind this stage consumes

    @property
    def builds(self) -> str:
        """The ClipFlow stage built when the worker starts (ClipFlow.build), so its imports and
        models load while the stages upstream work, not on the job's first clip: its own stage,
        unless a subclass says otherwise ("" builds on first use)."""
        return self.stage

    def __init__(self, ctx: WorkerContext) -> None:
        from lsray.batch.ledger import LedgerClient
        from lsray.batch.metrics import StageMetrics
        from lsray.storage import set_default_s3_config

        if ctx.s3 is not None:
            set_default_s3_config(ctx.s3)
        self.ctx = ctx
        if self.stage in ctx.threads:  # before the stage's models load and size their thread pools
            import torch

            torch.set_num_threads(ctx.threads[self.stage])
        self.flow = ctx.flow()
        self.ledger = LedgerClient(ctx.ledger)
        self.metrics = StageMetrics(self.stage, ctx.job_id)
        if self.builds:
            self.flow.build(self.builds)

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
        deaths = self.ledger.start(self.stage, clip_id, unit)
        t0 = time.perf_counter()
        if deaths >= self.ctx.max_attempts:  # it kills its worker: report it rather than die again
            out = [report_row(ticket, "error", error=given_up(self.stage, unit, deaths))]
        else:
            out = self.attempt(ticket, payload)
        self.metrics.observe(time.perf_counter() - t0, self.frames(payload))
        self.ledger.finish(self.stage, clip_id, unit)
        return out

    def attempt(self, ticket: ClipTicket, payload: Any) -> list[dict[str, Any]]:
        """The unit's rows, or its clip's error row (one clip's failure never stops the job)."""
        try:
            return list(self.process(payload))
        except Exception as exc:  # noqa: BLE001 - isolate the clip, keep the job going
            return [report_row(ticket, "error", error=error_message(self.stage, exc))]

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

    def process(self, ticket: ClipTicket) -> Iterable[dict[str, Any]]:
        from lsray.catalog import CatalogRow, clip_fingerprint, is_done, output_uri
        from lsray.pipeline.records import ClipSpec

        ticket.started = time.time()
        row = CatalogRow.model_validate_json(ticket.row_json)
        ticket.fingerprint = clip_fingerprint(row, self.ctx.model_id, self.ctx.settings)  # missing input -> error
        ticket.out_uri = output_uri(self.ctx.out_root, row, self.ctx.template, ticket.fingerprint)
        if is_done(ticket.out_uri, ticket.fingerprint):
            yield report_row(ticket, "skipped", output=ticket.out_uri)
            return
        spec = ClipSpec(row.clip_id, row.video, row.audio, ticket.out_uri, row.options,
                        voice_reference=row.voice_reference, face_sidecar=row.face_sidecar)
        plan = self.flow.prepare(spec)
        ticket.frames = plan.timeline.output_frames
        yield encode("keyframes", row.clip_id, (ticket, plan, self.flow.keyframes(plan)))


# ---------------------------------------------------------------------------------------------
# 1b. anchors: the anchor pass, once per clip before the fan-out (a clip without anchors passes)
# ---------------------------------------------------------------------------------------------
class AnchorWorker(StageWorker):
    stage, handles = "anchors", "keyframes"
    builds = ""  # the anchor pass needs the sample stage's models: loaded only when a clip has anchors

    def frames(self, payload: Any) -> int:
        return 0 if payload[2] is None else len(payload[2].frames)

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        ticket, plan, keyframes = payload
        anchors = self.flow.anchors(self.flow.audio(keyframes)) if keyframes is not None else None
        yield encode("plan", ticket.clip_id, (ticket, plan, anchors))


# ---------------------------------------------------------------------------------------------
# 2. shard (fan-out): ClipPlan -> ClipShards of whole 16-frame windows (used with flat_map)
# ---------------------------------------------------------------------------------------------
class ShardWorker(StageWorker):
    stage, handles = "shard", "plan"

    def frames(self, payload: Any) -> int:
        return payload[1].timeline.output_frames

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        ticket, plan, anchors = payload
        for shard in self.flow.shard(plan, anchors):
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

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        ticket, shard = payload
        yield encode("shard", ticket.clip_id, (ticket, self.flow.audio(shard)))


class SampleWorker(ShardWorkerBase):
    """Denoises the windows of every shard in a Ray Data batch together (up to the context's
    ``windows_per_call`` per UNet call); if that fails, shard by shard, so only a bad shard's
    clip gets the error."""

    stage = "sample"

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        ticket, shard = payload
        [shard] = self.flow.sample([shard], max_windows=self.ctx.windows_per_call)
        yield encode("shard", ticket.clip_id, (ticket, shard))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = rows_of(batch)
        decoded = [decode(r) for r in rows]
        mine = [i for i, (_, kind, _) in enumerate(decoded) if kind == self.handles]
        if len(mine) < 2:
            return super().__call__(batch)
        out = list(rows)
        todo = []
        for i in mine:
            clip_id, _, (ticket, shard) = decoded[i]
            deaths = self.ledger.start(self.stage, clip_id, shard.index)
            if deaths >= self.ctx.max_attempts:  # it kills its worker: report it rather than die again
                out[i] = report_row(ticket, "error", error=given_up(self.stage, shard.index, deaths))
            else:
                todo.append(i)
        t0 = time.perf_counter()
        try:
            shards = self.flow.sample([decoded[i][2][1] for i in todo], max_windows=self.ctx.windows_per_call) if todo else []
            results = [[encode("shard", decoded[i][0], (decoded[i][2][0], shard))] for i, shard in zip(todo, shards)]
        except Exception:  # noqa: BLE001 - one bad shard: redo them one by one to isolate it
            results = [self.attempt(decoded[i][2][0], decoded[i][2]) for i in todo]
        self.metrics.observe(time.perf_counter() - t0, sum(decoded[i][2][1].frames for i in todo))
        for i, [row] in zip(todo, results):
            out[i] = row
        for i in mine:
            clip_id, _, (_, shard) = decoded[i]
            self.ledger.finish(self.stage, clip_id, shard.index)
        return to_batch(out)


class RenderWorker(ShardWorkerBase):
    """Pastes and encodes a shard; the segment is published to the clip's staging folder, so
    assembly can run on any node; the row carries only the segment's URI."""

    stage = "render"

    def process(self, payload: Any) -> Iterable[dict[str, Any]]:
        ticket, shard = payload
        plan = shard.plan
        yield encode("segment", ticket.clip_id, (ticket, plan, self.flow.render(shard)))


# ---------------------------------------------------------------------------------------------
# 6. assemble (a Ray task per clip, started by the driver once all its segments are in)
# ---------------------------------------------------------------------------------------------
def assemble_clip(ctx: WorkerContext, ticket: ClipTicket, plan: Any, segments: list[Any]) -> dict[str, Any]:
    """Join the segments, mux the track, publish output + done marker; returns a report row."""
    from lsray.batch.ledger import LedgerClient
    from lsray.batch.metrics import StageMetrics
    from lsray.catalog import publish_output
    from lsray.storage import set_default_s3_config

    if ctx.s3 is not None:
        set_default_s3_config(ctx.s3)
    ledger = LedgerClient(ctx.ledger)
    ledger.start("assemble", ticket.clip_id, 0)
    t0 = time.perf_counter()
    flow = ctx.flow()

    def publish(local: str, plan: Any) -> str:
        publish_output(local, ticket.out_uri, ticket.fingerprint or "",
                       details={"clip_id": ticket.clip_id, "status": status, "frames": plan.timeline.output_frames})
        return ticket.out_uri

    status = "done" if plan.faces_found else "no_face"
    try:
        result = flow.assemble(plan, segments, publish)
        ticket.stage_seconds = dict(result.timings)
        ticket.frames = result.frames
        row = report_row(ticket, result.status, output=ticket.out_uri)
        _, _, (_, report) = decode(row)
        report.record_result(result)
        row = encode("report", ticket.clip_id, (ticket, report))
    except Exception as exc:  # noqa: BLE001
        flow.discard(plan, segments)
        row = report_row(ticket, "error", error=error_message("assemble", exc))
    StageMetrics("assemble", ctx.job_id).observe(time.perf_counter() - t0, ticket.frames)
    ledger.finish("assemble", ticket.clip_id, 0)
    return row
