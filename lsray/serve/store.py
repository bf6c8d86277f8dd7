"""The durable job store: every online job's record, lease and webhook state, in a database.

Why a database and not a replica's memory: a redeploy, a crash or a node loss must not forget
queued, running or finished jobs, and several job-manager replicas must share one queue. An
embedded SQLite file is the default (one node; a volume in k8s); a PostgreSQL URL
(``postgresql+psycopg://...``) serves several nodes. SQLAlchemy Core keeps the SQL one text
for both; no Ray import here (the JobManager deployment wraps this class).

How a job runs once at a time: a runner *claims* it, atomically setting ``lease_owner`` and
``lease_expires`` in one transaction (PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``;
SQLite: the transaction takes the database's write lock first, ``BEGIN IMMEDIATE``). A job is
claimable when queued, or when running with an expired lease (its runner died); a claim counts
an attempt, and a job whose runner was lost ``max_attempts`` times is failed with the reason.
Every later write of a runner (progress, renewal, the end) is conditional on its lease
(``status='running' AND lease_owner=? AND attempt=?``), so a stale runner that lost its lease
changes nothing and learns that it must stop.

Webhook state lives here too: ``pending`` -> ``sending`` (claimed atomically by one replica)
-> ``delivered`` / ``failed``. Claiming before sending makes delivery at most once.

Also here, for the same reason (shared by every ingress replica): a per-tenant fixed-window
request counter behind the rate limit.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lsray.serve.records import TERMINAL, JobRecord, WebhookState

URL_ENV = "LSRAY_JOB_STORE_URL"


def default_url() -> str:
    """``LSRAY_JOB_STORE_URL`` or a SQLite file under the temp dir (local runs: one node)."""
    return os.environ.get(URL_ENV) or f"sqlite:///{Path(tempfile.gettempdir()) / 'lsray-serve' / 'jobs.db'}"


metadata = sa.MetaData()

jobs = sa.Table(
    "lsray_jobs", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(200), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("frames_done", sa.Integer, nullable=False, default=0),
    sa.Column("frames_total", sa.Integer),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("result_uri", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("warnings", sa.JSON, nullable=False),
    sa.Column("voice", sa.String(64)),
    sa.Column("sampling", sa.JSON),
    sa.Column("webhook_url", sa.Text),
    sa.Column("webhook_state", sa.String(16)),  # pending | sending | delivered | failed (NULL: no webhook)
    sa.Column("webhook_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("webhook_error", sa.Text),
    # how to run it: the staged inputs and the clip's units (never shown to clients)
    sa.Column("work", sa.JSON, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("lease_expires", sa.Float),
)

rate_windows = sa.Table(
    "lsray_rate_windows", metadata,
    sa.Column("tenant", sa.String(200), primary_key=True),
    sa.Column("window", sa.Integer, nullable=False),  # unix minute
    sa.Column("count", sa.Integer, nullable=False),
)


class StoreRefused(Exception):
    """A submission the store would not take; ``status`` is the HTTP answer, ``retry_after`` seconds."""

    def __init__(self, reason: str, status: int, retry_after: int) -> None:
        super().__init__(reason, status, retry_after)  # every argument: it is pickled back to the ingress
        self.reason, self.status, self.retry_after = reason, status, retry_after

    def __str__(self) -> str:
        return self.reason


@dataclass
class Claim:
    """A job a runner now holds: run ``work`` as attempt ``attempt`` while renewing the lease."""

    record: JobRecord
    work: dict[str, Any]
    attempt: int


def _record(row: sa.Row) -> JobRecord:
    m = row._mapping
    hook = None
    if m["webhook_url"]:
        hook = WebhookState(url=m["webhook_url"], delivered=m["webhook_state"] == "delivered",
                            attempts=m["webhook_attempts"], error=m["webhook_error"])
    return JobRecord(id=m["id"], status=m["status"], progress=m["progress"], frames_done=m["frames_done"],
                     frames_total=m["frames_total"], created_at=m["created_at"], started_at=m["started_at"],
                     finished_at=m["finished_at"], inputs=m["inputs"], options=m["options"],
                     result_uri=m["result_uri"], error=m["error"], warnings=m["warnings"], voice=m["voice"],
                     sampling=m["sampling"], webhook=hook, attempt=m["attempt"])


class JobStore:
    """Job records in SQLite or PostgreSQL. Blocking calls (the JobManager runs them in threads)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine: Engine = self._engine(self.url)
        self.postgres = self.engine.dialect.name == "postgresql"
        metadata.create_all(self.engine)

    @staticmethod
    def _engine(url: str) -> Engine:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # pysqlite's own transaction handling is off so that BEGIN IMMEDIATE (below) takes the write
        # lock at the start of every transaction: a claim's read and its update are then one step.
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def _tx(self):
        return self.engine.begin()

    # -- submission ------------------------------------------------------------------------------
    def add(self, records: list[JobRecord], works: list[dict[str, Any]], tenant: str, *, max_pending: int,
            max_active_for_tenant: int | None, retry_after: int) -> None:
        """Insert queued jobs, all or none: refused (503) past ``max_pending`` queued + running
        jobs overall, (429) past the tenant's ``max_active_for_tenant``."""
        active = jobs.c.status.in_(("queued", "running"))
        with self._tx() as conn:
            if self.postgres:  # one admission at a time, so two submissions cannot both pass the count
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(2020)"))
            n = conn.execute(sa.select(sa.func.count()).where(active)).scalar_one()
            if n + len(records) > max_pending:
                raise StoreRefused(f"{n} jobs pending; the limit is {max_pending}", 503, retry_after)
            if max_active_for_tenant is not None:
                mine = conn.execute(sa.select(sa.func.count()).where(active, jobs.c.tenant == tenant)).scalar_one()
                if mine + len(records) > max_active_for_tenant:
                    raise StoreRefused(f"tenant {tenant!r} has {mine} active jobs; its quota is {max_active_for_tenant}",
                                       429, retry_after)
            conn.execute(jobs.insert(), [{
                "id": r.id, "tenant": tenant, "status": "queued", "created_at": r.created_at, "progress": 0.0,
                "frames_done": 0, "inputs": r.inputs, "options": r.options, "warnings": [],
                "webhook_url": r.webhook.url if r.webhook else None, "webhook_state": "pending" if r.webhook else None,
                "webhook_attempts": 0, "work": w, "attempt": 0} for r, w in zip(records, works)])

    def admit(self, tenant: str, rate_per_minute: int, now: float | None = None) -> int:
        """Count one submitting request of ``tenant``; 0 if within its per-minute rate, else the
        seconds until the next window (the Retry-After)."""
        now = time.time() if now is None else now
        window = int(now // 60)
        with self._tx() as conn:
            if self.postgres:  # the tenant's first request of all may race another's insert
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": tenant})
            row = conn.execute(sa.select(rate_windows).where(rate_windows.c.tenant == tenant)
                               .with_for_update()).first()
            if row is None:
                conn.execute(rate_windows.insert().values(tenant=tenant, window=window, count=1))
                return 0
            count = row.count + 1 if row.window == window else 1
            if count > rate_per_minute:
                return max(1, math.ceil((window + 1) * 60 - now))
            conn.execute(rate_windows.update().where(rate_windows.c.tenant == tenant).values(window=window, count=count))
            return 0

    def forget_old(self, keep: int) -> int:
        """Drop the oldest finished records past ``keep``; returns how many."""
        with self._tx() as conn:
            ids = conn.execute(sa.select(jobs.c.id).where(jobs.c.status.in_(TERMINAL))
                               .order_by(jobs.c.created_at.desc()).offset(keep)).scalars().all()
            if ids:
                conn.execute(jobs.delete().where(jobs.c.id.in_(ids)))
            return len(ids)

    # -- queries ---------------------------------------------------------------------------------
    @staticmethod
    def _visible(query, tenant: str | None):
        return query if tenant is None else query.where(jobs.c.tenant == tenant)

    def get(self, job_id: str, tenant: str | None = None) -> JobRecord | None:
        """The job, if ``tenant`` owns it (``None``: any tenant, for admins and the runners)."""
        with self.engine.connect() as conn:
            row = conn.execute(self._visible(sa.select(jobs).where(jobs.c.id == job_id), tenant)).first()
        return _record(row) if row else None

    def list(self, tenant: str | None, offset: int, limit: int, status: str | None = None) -> dict[str, Any]:
        where = [] if status is None else [jobs.c.status == status]
        with self.engine.connect() as conn:
            total = conn.execute(self._visible(sa.select(sa.func.count()).select_from(jobs).where(*where), tenant)
                                 ).scalar_one()
            rows = conn.execute(self._visible(sa.select(jobs).where(*where), tenant)
                                .order_by(jobs.c.created_at.desc(), jobs.c.id).offset(offset).limit(limit)).all()
        nxt = offset + limit if offset + limit < total else None
        return {"items": [_record(r).model_dump() for r in rows], "total": total, "offset": offset, "limit": limit,
                "next_offset": nxt}

    def stats(self) -> dict[str, int]:
        counts = {s: 0 for s in ("queued", "running", "done", "failed", "cancelled")}
        with self.engine.connect() as conn:
            for status, n in conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)):
                counts[status] = n
        return counts

    def work(self, job_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(jobs.c.work).where(jobs.c.id == job_id)).scalar_one_or_none()

    # -- leases ------------------------------------------------------------------------------------
    def claim(self, owner: str, lease_s: float, max_attempts: int, now: float | None = None) -> tuple[Claim | None, list[str]]:
        """Take the oldest claimable job for ``owner``; also fails, with the reason, the expired
        jobs that used up their attempts. Returns (the claim or None, the ids failed here)."""
        now = time.time() if now is None else now
        claimable = sa.or_(jobs.c.status == "queued", sa.and_(jobs.c.status == "running", jobs.c.lease_expires < now))
        failed: list[str] = []
        with self._tx() as conn:
            while True:
                query = sa.select(jobs).where(claimable).order_by(jobs.c.created_at, jobs.c.id).limit(1)
                if self.postgres:
                    query = query.with_for_update(skip_locked=True)
                row = conn.execute(query).first()
                if row is None:
                    return None, failed
                if row.status == "running" and row.attempt >= max_attempts:
                    last = f"; the last: {row.error}" if row.error else ""
                    conn.execute(jobs.update().where(jobs.c.id == row.id).values(
                        status="failed", finished_at=now, lease_owner=None, lease_expires=None,
                        error=f"runner lost {row.attempt} times (the last lease expired at "
                              f"{row.lease_expires:.0f}{last}); gave up after {max_attempts} attempts"))
                    failed.append(row.id)
                    continue
                attempt = row.attempt + 1
                done = conn.execute(jobs.update().where(jobs.c.id == row.id, claimable).values(
                    status="running", attempt=attempt, lease_owner=owner, lease_expires=now + lease_s,
                    started_at=now, progress=0.0, frames_done=0, frames_total=None, error=None))
                if done.rowcount != 1:  # taken between our read and write (cannot happen under the lock)
                    continue
                rec = _record(row).model_copy(update={"status": "running", "attempt": attempt, "started_at": now,
                                                      "progress": 0.0, "frames_done": 0, "frames_total": None})
                return Claim(rec, row.work, attempt), failed

    def _held(self, job_id: str, owner: str, attempt: int):
        return sa.and_(jobs.c.id == job_id, jobs.c.status == "running", jobs.c.lease_owner == owner,
                       jobs.c.attempt == attempt)

    def renew(self, job_id: str, owner: str, attempt: int, lease_s: float, **progress: Any) -> bool:
        """Extend the lease (and write progress through); False when the lease is lost
        (expired and taken, or the job cancelled): the runner must stop and publish nothing."""
        with self._tx() as conn:
            res = conn.execute(jobs.update().where(self._held(job_id, owner, attempt))
                               .values(lease_expires=time.time() + lease_s, **progress))
            return res.rowcount == 1

    def release(self, job_id: str, owner: str, attempt: int, error: str) -> bool:
        """Give the attempt up now (its lease expires at once) so the next claim runs the job
        again, or fails it with ``error`` once its attempts are used up: for failures of the
        machinery (a stage replica that died), never of the clip."""
        with self._tx() as conn:
            res = conn.execute(jobs.update().where(self._held(job_id, owner, attempt)).values(lease_expires=0.0, lease_owner=None,
                                                                                              error=error))
            return res.rowcount == 1

    def finish(self, job_id: str, owner: str, attempt: int, status: str, **fields: Any) -> bool:
        """End the attempt as ``status`` (done / failed / cancelled) if the lease is still held."""
        with self._tx() as conn:
            res = conn.execute(jobs.update().where(self._held(job_id, owner, attempt)).values(
                status=status, finished_at=time.time(), lease_owner=None, lease_expires=None, **fields))
            return res.rowcount == 1

    def cancel(self, job_id: str, tenant: str | None) -> JobRecord | None:
        """Cancel a queued or running job (its runner sees a lost lease and stops); a finished
        job is left as it is. None when ``tenant`` may not see the job."""
        with self._tx() as conn:
            conn.execute(self._visible(jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(("queued", "running"))),
                                       tenant).values(status="cancelled", error="cancelled by request",
                                                      finished_at=time.time(), lease_owner=None, lease_expires=None))
            row = conn.execute(self._visible(sa.select(jobs).where(jobs.c.id == job_id), tenant)).first()
        return _record(row) if row else None

    # -- webhooks ------------------------------------------------------------------------------------
    @staticmethod
    def _webhook_claimable(now: float):
        """Not started, or started by a sender that died before saying how it went (a finished
        job's lease column holds the sender's deadline)."""
        return sa.and_(jobs.c.status.in_(("done", "failed")), sa.or_(
            jobs.c.webhook_state == "pending",
            sa.and_(jobs.c.webhook_state == "sending", jobs.c.lease_expires < now)))

    def webhooks_due(self, limit: int = 16, now: float | None = None) -> list[str]:
        """Finished (done / failed) jobs whose webhook nobody is sending."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            return conn.execute(sa.select(jobs.c.id).where(self._webhook_claimable(now)).limit(limit)).scalars().all()

    def claim_webhook(self, job_id: str, send_window_s: float, now: float | None = None) -> JobRecord | None:
        """Mark the webhook ``sending`` for ``send_window_s`` (``Webhooks.send_window_s()``, the one
        place it is decided); the record if this caller won it (it
        then sends it). A sender that dies mid-way leaves it claimable again after the window, so
        a webhook is never lost; it may then be sent twice, and is marked delivered once."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            res = conn.execute(jobs.update().where(jobs.c.id == job_id, self._webhook_claimable(now))
                               .values(webhook_state="sending", lease_expires=now + send_window_s))
            if res.rowcount != 1:
                return None
            return _record(conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one())

    def webhook_sent(self, job_id: str, delivered: bool, attempts: int, error: str | None) -> None:
        with self._tx() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(
                webhook_state="delivered" if delivered else "failed", webhook_attempts=attempts, webhook_error=error,
                lease_expires=None))

    def dispose(self) -> None:
        self.engine.dispose()

