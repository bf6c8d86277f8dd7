"""The batch job, top to bottom: catalog -> Ray Data stages -> reassembly -> report.

::

    catalog rows (driver: read + validate; invalid rows go straight to the report)
      1. prepare   actor pool   row -> ClipPlan        face detection + mesh, fingerprint, skip if done;
                                                       the keyframes aligned (anchors on)
      1b. anchors  actor pool   keyframes -> anchors   the anchor pass, once per clip, before the fan-out
      2. shard     actor pool   ClipPlan -> n shards   flat_map: the fan-out; aligned crops per shard,
                                                       each with the keyframes its windows pin
      3. audio     actor pool   shard -> shard         Whisper tokens
      4. sample    actor pool   shard -> shard         VAE + UNet (the GPU / accelerator stage)
      5. render    actor pool   shard -> segment       paste-back + H.264, segment -> staging
      6. assemble  Ray task     segments -> output     per clip once all its segments arrived:
                                                       join, mux, publish output + done marker
    report.parquet + report.json in OUT

Resources, pool sizes and batch sizes come from :class:`lsray.batch.config.BatchConfig`.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from lsray.batch.config import BatchConfig
from lsray.pipeline.options import DubOptions
from lsray.storage import S3Config


@dataclass
class JobSpec:
    catalog: str
    out: str
    model: str
    address: str | None = None
    config: BatchConfig = field(default_factory=BatchConfig)
    template: str = "{clip_id}.mp4"
    defaults: DubOptions = field(default_factory=DubOptions)
    s3: S3Config | None = None
    progress: bool = True
    metrics_port: int | None = None
    job_id: str | None = None


@dataclass
class JobOutcome:
    summary: Any  # lsray.report.ReportSummary
    reports: list  # list[ClipReport]
    placement: dict[str, list[str]]  # stage -> node ids it ran on
    stage_pids: dict[str, list[int]]
    wall_seconds: float
    metrics_text: str = ""

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.reports if r.status in ("done", "no_face"))


def _progress(spec: JobSpec, total: int):
    from tqdm import tqdm

    clips = tqdm(total=total, unit="clip", desc="clips ", disable=not spec.progress, file=sys.stderr, position=0)
    frames = tqdm(total=0, unit="frame", desc="frames", disable=not spec.progress, file=sys.stderr, position=1)
    return clips, frames


def build_dataset(items: list[dict[str, Any]], ctx: Any, config: BatchConfig):
    """The Ray Data plan of stages 1-5 (lazy; runs when iterated)."""
    import ray
    from ray.data import ActorPoolStrategy

    from lsray.batch.actors import AnchorWorker, AudioWorker, PrepareWorker, RenderWorker, SampleWorker, ShardWorker

    def pool(name: str) -> dict[str, Any]:
        # Named parameters only: Ray Data drops ``**ray_remote_args`` (and ``ray_remote_args_fn``)
        # in Ray 2.64. Dead actors are restarted and the calls they died under re-run by Ray Data
        # itself, forever; the workers give a unit up after ``max_attempts`` deaths (the ledger
        # counts them), so one clip that kills its worker every time cannot hang the job.
        c = config.stage(name)
        return dict(
            compute=ActorPoolStrategy(min_size=c.min_size, max_size=c.max_size),
            fn_constructor_kwargs={"ctx": ctx},
            **c.remote_args(),
        )

    def batch(name: str) -> dict[str, Any]:
        return dict(batch_size=config.stage(name).batch_size, batch_format="numpy", zero_copy_batch=True)

    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 2000)))
    ds = ds.map_batches(PrepareWorker, **batch("prepare"), **pool("prepare"))  # 1
    ds = ds.map_batches(AnchorWorker, **batch("anchors"), **pool("anchors"))  # 1b
    ds = ds.flat_map(ShardWorker, **pool("shard"))  # 2: fan-out
    ds = ds.map_batches(AudioWorker, **batch("audio"), **pool("audio"))  # 3
    ds = ds.map_batches(SampleWorker, **batch("sample"), **pool("sample"))  # 4
    ds = ds.map_batches(RenderWorker, **batch("render"), **pool("render"))  # 5
    return ds


class Stalled(RuntimeError):
    """The pipeline gave no row for longer than ``BatchConfig.stall_timeout_s``."""


def watched(rows: Iterable[Any], timeout_s: float) -> Iterator[Any]:
    """``rows``, pulled on a daemon thread; raises :class:`Stalled` when none arrives within
    ``timeout_s``. Ray Data waits forever for an actor no node can host any more; the job must
    not: it stops, and reports what did not finish (the abandoned thread ends with the driver)."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=1)
    done = object()

    def pull() -> None:
        try:
            for row in rows:
                box.put(("row", row))
            box.put(("end", done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            box.put(("error", exc))

    threading.Thread(target=pull, name="lsray-rows", daemon=True).start()
    while True:
        try:
            kind, item = box.get(timeout=timeout_s)
        except queue.Empty:
            raise Stalled(f"no progress for {timeout_s:g} s (a stage whose resources no node offers any more?)") from None
        if kind == "end":
            return
        if kind == "error":
            raise item
        yield item


def run_job(spec: JobSpec) -> JobOutcome:
    """Dub a catalog; returns the outcome after the report is written (never raises for a clip)."""
    from lsray.batch.actors import WorkerContext, assemble_clip, report_row
    from lsray.batch.cluster import connect
    from lsray.batch.ledger import create_ledger, lost_reason
    from lsray.batch.metrics import DriverMetrics
    from lsray.batch.records import ClipTicket, decode, encode
    from lsray.bundle.identity import model_id
    from lsray.storage import delete_prefix, remove_empty_folder
    from lsray.catalog import read_catalog, validate_template
    from lsray.errors import first_line
    from lsray.report import ClipReport, write_report
    from lsray.storage import default_s3_config, join, set_default_s3_config

    t_start = time.perf_counter()
    validate_template(spec.template)
    if spec.s3 is not None:
        set_default_s3_config(spec.s3)
    s3 = spec.s3 or default_s3_config()
    catalog = read_catalog(spec.catalog, spec.defaults)
    bundle_id = model_id(spec.model)  # hashes new weight files (once each): before Ray starts, fails fast
    started_here = connect(spec.address, spec.config)
    import ray

    job_id = spec.job_id or f"lsray-{uuid.uuid4().hex[:8]}"
    metrics = DriverMetrics(job_id)
    if spec.metrics_port is not None:
        metrics.serve(spec.metrics_port)
    ledger_name = f"{job_id}-ledger"
    ledger = create_ledger(ledger_name)
    # Each job stages in its own folder: the end-of-job sweep (which also takes what a worker
    # killed mid-write left) must not touch another job's clips under a shared staging root.
    staging_root = spec.config.staging or join(spec.out, "_lsray_staging")
    staging = join(staging_root, job_id)
    ctx = WorkerContext(
        bundle=spec.model, out_root=spec.out, staging_root=staging, template=spec.template,
        model_id=bundle_id, settings={"template": spec.template, "encode_preset": spec.config.encode_preset},
        s3=s3, ledger=ledger_name, job_id=job_id, encode_preset=spec.config.encode_preset,
        windows_per_call=spec.config.windows_per_call, precision=spec.config.precision,
        compile_unet=spec.config.compile_unet,
        max_attempts=spec.config.max_attempts, threads=spec.config.threads(),
    )
    reports: dict[str, ClipReport] = {}
    invalid = [ClipReport.for_invalid_row(r.line, r.clip_id, r.reason) for r in catalog.invalid]
    for r in invalid:
        metrics.clip("invalid", 0, {})
    total = len(catalog.rows) + len(invalid)
    clips_bar, frames_bar = _progress(spec, total)
    clips_bar.update(len(invalid))
    items = [
        encode("row", r.clip_id, ClipTicket(clip_id=r.clip_id, row_json=r.model_dump_json(), line=r.line,
                                            out_uri=""))
        for r in catalog.rows
    ]
    assemble = ray.remote(assemble_clip).options(
        max_retries=spec.config.max_attempts - 1, **spec.config.assemble.remote_args())
    waiting: dict[str, dict[str, Any]] = {}  # clip -> segments arrived so far
    inflight: dict[Any, tuple[str, Any]] = {}  # assemble task -> (clip id, ticket)

    def finish(row: dict[str, Any]) -> None:
        _, _, (ticket, report) = decode(row)
        if report.clip_id in reports:
            return  # first word wins (e.g. an error from one shard, then another shard's)
        reports[report.clip_id] = report
        metrics.clip(report.status, report.frames, report.seconds)
        clips_bar.update(1)
        if report.status == "error" and report.clip_id in waiting:
            waiting.pop(report.clip_id)

    def collect(block: bool) -> None:
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=None if block else 0)
            if not ready:
                return
            clip_id, ticket = inflight.pop(ready[0])
            try:
                finish(ray.get(ready[0]))
            except ray.exceptions.RayError as exc:  # its worker died max_attempts times, or its node is gone
                finish(report_row(ticket, "error", error=f"assemble did not finish after {spec.config.max_attempts} "
                                                         f"attempt(s): {first_line(exc)}"))
            if not block:
                continue
            return

    def _stream(ds: Any) -> None:
        """Take the pipeline's rows as they come: reports, and segments until a clip's are all in."""
        for row in watched(ds.iter_rows(), spec.config.stall_timeout_s):
            clip_id, kind, payload = decode(row)
            if kind == "report":
                finish(row)
            elif kind == "segment" and clip_id not in reports:
                ticket, plan, segment = payload
                entry = waiting.setdefault(clip_id, {"ticket": ticket, "plan": plan, "segments": {}})
                entry["segments"][segment.index] = segment
                if len(entry["segments"]) == 1:
                    frames_bar.total += plan.timeline.output_frames
                frames_bar.update(segment.stop - segment.start)
                if len(entry["segments"]) == segment.count:
                    waiting.pop(clip_id)
                    while len(inflight) >= spec.config.max_inflight_assembles:
                        collect(block=True)
                    ref = assemble.remote(ctx, ticket, plan, [entry["segments"][i] for i in sorted(entry["segments"])])
                    inflight[ref] = (clip_id, ticket)
            metrics.depth("clips", total - len(reports) - len(invalid))
            metrics.depth("assembly", len(waiting) + len(inflight))
            collect(block=False)

    job_error: str | None = None  # the pipeline itself stopped (never one clip's error)
    if items:
        from ray.data import DataContext

        data_context = DataContext.get_current()
        data_context.enable_progress_bars = False
        # A block that fails (its output lost with a node, a task Ray gives up on) is dropped, not
        # fatal: its clips are reported lost below (where the ledger saw them last) and every
        # other clip goes on.
        data_context.max_errored_blocks = -1
        try:
            _stream(build_dataset(items, ctx, spec.config))
        except Exception as exc:  # noqa: BLE001 - whatever stopped the stream, the report is written
            job_error = first_line(exc)
        try:
            while inflight:
                collect(block=True)
        except Exception as exc:  # noqa: BLE001
            job_error = job_error or first_line(exc)
    # Every row gets a report: a clip with no result was lost where the ledger saw it last.
    last_seen = ray.get(ledger.last_seen.remote())
    dead = frozenset(n["NodeID"] for n in ray.nodes() if not n["Alive"])
    for r in catalog.rows:
        if r.clip_id in reports:
            continue
        reason = lost_reason(last_seen.get(r.clip_id), job_error, dead)
        entry = waiting.get(r.clip_id)
        if entry is not None:
            count = next(iter(entry["segments"].values())).count
            reason = f"{len(entry['segments'])} of {count} segments arrived; {reason}"
        reports[r.clip_id] = ClipReport(clip_id=r.clip_id, status="error", line=r.line, error=reason)
    retries = ray.get(ledger.retries.remote())
    placement = ray.get(ledger.placement.remote())
    pids = ray.get(ledger.stage_pids.remote())
    ordered = [reports[r.clip_id] for r in catalog.rows] + invalid
    for report in ordered:
        per_stage = retries.get(report.clip_id or "", {})
        report.retries = sum(per_stage.values())
        for stage, n in per_stage.items():
            metrics.retry(stage, n)
    clips_bar.close()
    frames_bar.close()
    delete_prefix(staging)
    remove_empty_folder(staging_root)
    wall = time.perf_counter() - t_start
    summary = write_report(spec.out, ordered, wall_seconds=wall)
    text = metrics.text()
    metrics.close()
    ray.kill(ledger)
    if started_here:
        ray.shutdown()
    return JobOutcome(summary=summary, reports=ordered, placement=placement, stage_pids=pids, wall_seconds=wall,
                      metrics_text=text)


def summary_line(outcome: JobOutcome) -> str:
    s = outcome.summary
    counts = ", ".join(f"{k} {v}" for k, v in s.counts.items() if v)
    return (f"{s.clips} clips ({counts}); {s.frames} frames in {outcome.wall_seconds:.1f} s; "
            f"{s.retries} retries")


__all__ = ["JobOutcome", "JobSpec", "build_dataset", "run_job", "summary_line"]
