"""The durable job store (lsray.serve.store) on SQLite and on a real PostgreSQL, and the live
service over it: tenancy, rate limits, quotas, and a job that survives its runner's death."""

from __future__ import annotations

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before anything imports ray: loopback only

import concurrent.futures
import http.server
import json
import threading
import time
from pathlib import Path

import pytest
import requests

from lsray.serve.records import JobRecord, WebhookState
from lsray.serve.settings import Webhooks
from lsray.serve.store import JobStore, StoreRefused

WINDOW = Webhooks().send_window_s()  # how long a claimed webhook is its sender's, as the JobManager claims it

SECRET = "webhook-secret-for-store-tests"


# ----------------------------------------------------------------------------------------------
# the store on both databases
# ----------------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    from postgres import postgres_database

    with postgres_database() as url:
        yield url


@pytest.fixture
def store(store_url):
    s = JobStore(store_url)
    yield s
    s.dispose()


def add(store: JobStore, tenant: str = "a", n: int = 1, webhook: str | None = None, **limits) -> list[str]:
    records = [JobRecord(id=f"{tenant}-{time.monotonic_ns()}-{i}", options={"steps": 1},
                         webhook=WebhookState(url=webhook) if webhook else None) for i in range(n)]
    store.add(records, [{"staged": f"/tmp/none/{r.id}", "video": "v", "audio": "a", "options": {}} for r in records],
              tenant, max_pending=limits.get("max_pending", 100), max_active_for_tenant=limits.get("quota"),
              retry_after=7)
    return [r.id for r in records]


def test_records_survive_a_new_store_and_stay_with_their_tenant(store_url) -> None:
    first = JobStore(store_url)
    a, b = add(first, "a")[0], add(first, "b", 2)[0]
    first.dispose()
    again = JobStore(store_url)  # a restarted replica: same database, nothing in memory
    try:
        assert again.get(a).status == "queued" and again.get(a, "a").id == a
        assert again.get(a, "b") is None and again.get(b, "a") is None  # other tenants: as if absent
        assert [j["id"] for j in again.list("a", 0, 10)["items"]] == [a]
        assert again.list("b", 0, 10)["total"] == 2 and again.list(None, 0, 10)["total"] == 3  # None: admin
        assert again.cancel(a, "b") is None and again.get(a).status == "queued"
        assert again.cancel(a, "a").status == "cancelled"
        assert again.stats()["queued"] == 2 and again.stats()["cancelled"] == 1
    finally:
        again.dispose()


def test_claims_are_exclusive_under_concurrency(store) -> None:
    ids = set(add(store, "a", 12))
    owners = [JobStore(store.url) for _ in range(4)]  # four replicas, each its own connection pool

    def drain(i: int) -> list[str]:
        got = []
        while (claim := owners[i].claim(f"owner-{i}", 60, 3)[0]) is not None:
            got.append(claim.record.id)
        return got

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        claimed = [j for got in pool.map(drain, range(4)) for j in got]
    for o in owners:
        o.dispose()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert store.stats()["running"] == 12


def test_lease_expiry_requeues_and_a_stale_runner_changes_nothing(store) -> None:
    job = add(store, "a")[0]
    now = time.time()
    claim = store.claim("old", 5, 3, now=now)[0]
    assert claim.attempt == 1 and store.claim("other", 5, 3, now=now + 1)[0] is None  # held
    assert store.renew(job, "old", 1, 5, frames_done=8, frames_total=32, progress=0.25)
    assert store.get(job).progress == 0.25
    later = time.time() + 60  # the old runner stopped renewing: its lease expired
    again = store.claim("new", 5, 3, now=later)[0]
    assert again.record.id == job and again.attempt == 2 and again.record.progress == 0.0  # from the start
    assert not store.renew(job, "old", 1, 5)  # the stale runner learns it lost the job ...
    assert not store.finish(job, "old", 1, "done", result_uri="/stale.mp4")  # ... and cannot end it
    assert store.finish(job, "new", 2, "done", result_uri="/fresh.mp4")
    rec = store.get(job)
    assert rec.status == "done" and rec.result_uri == "/fresh.mp4" and rec.attempt == 2


def test_attempt_limit_fails_with_the_reason(store) -> None:
    job = add(store, "a")[0]
    t = time.time()
    for attempt in (1, 2):
        claim, failed = store.claim(f"r{attempt}", 1, 2, now=t + 10 * attempt)
        assert claim.attempt == attempt and not failed
    claim, failed = store.claim("r3", 1, 2, now=t + 100)  # the second runner died too
    assert claim is None and failed == [job]
    rec = store.get(job)
    assert rec.status == "failed" and "gave up after 2 attempts" in rec.error and rec.finished_at


def test_cancel_running_job_takes_the_lease_away(store) -> None:
    job = add(store, "a")[0]
    store.claim("r", 60, 3)
    assert store.cancel(job, "a").status == "cancelled"
    assert not store.renew(job, "r", 1, 60) and not store.finish(job, "r", 1, "done")
    assert store.claim("r2", 60, 3, now=time.time() + 3600)[0] is None  # never re-run


def test_quota_and_queue_limits(store) -> None:
    add(store, "a", 2, quota=2)
    with pytest.raises(StoreRefused) as err:
        add(store, "a", 1, quota=2)
    assert err.value.status == 429 and err.value.retry_after == 7 and "quota" in str(err.value)
    import pickle

    again = pickle.loads(pickle.dumps(err.value))  # it crosses Ray back to the ingress
    assert (again.reason, again.status, again.retry_after) == (err.value.reason, 429, 7)
    add(store, "b", 1, quota=2)  # another tenant's quota is its own
    with pytest.raises(StoreRefused) as err:
        add(store, "c", 2, max_pending=4)
    assert err.value.status == 503
    assert store.stats()["queued"] == 3  # all or none
    store.claim("r", 60, 3)
    store.cancel(store.list("a", 0, 10)["items"][0]["id"], "a")  # finished jobs free the quota
    add(store, "a", 1, quota=2)


def test_rate_limit_window(store) -> None:
    t0 = 60 * 1_000_000 + 10.0  # 10 s into a minute
    assert [store.admit("a", 3, now=t0 + i) for i in range(3)] == [0, 0, 0]
    wait = store.admit("a", 3, now=t0 + 5)
    assert wait == 45  # until the next minute
    assert store.admit("b", 3, now=t0 + 5) == 0  # per tenant
    assert store.admit("a", 3, now=t0 + 50) == 0  # a new window


def test_webhook_claimed_once(store) -> None:
    job = add(store, "a", webhook="http://127.0.0.1:1/h")[0]
    store.claim("r", 60, 3)
    assert store.claim_webhook(job, WINDOW) is None and store.webhooks_due() == []  # not before the job ends
    store.finish(job, "r", 1, "done", result_uri="/x.mp4")
    assert store.webhooks_due() == [job]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        won = [r for r in pool.map(lambda _: JobStore(store.url).claim_webhook(job, WINDOW), range(4)) if r is not None]
    assert len(won) == 1 and won[0].result_uri == "/x.mp4" and store.webhooks_due() == []
    store.webhook_sent(job, True, 1, None)
    hook = store.get(job).webhook
    assert hook.delivered and hook.attempts == 1


def test_a_released_attempt_runs_again_and_its_reason_is_kept(store) -> None:
    """A stage replica died under an attempt: the runner releases it, the job runs again at
    once, and when the attempts are used up the failure says what the last one died of."""
    job = add(store, "a")[0]
    t = time.time()
    claim, _ = store.claim("r1", 60, 2, now=t)
    assert store.release(job, "r1", 1, "RayActorError: the sample replica died")
    assert not store.release(job, "r1", 1, "again")  # no longer held
    again, _ = store.claim("r2", 60, 2, now=t + 1)  # at once, not after the 60 s lease
    assert again.attempt == 2 and store.get(job).error is None
    store.release(job, "r2", 2, "RayActorError: the render replica died")
    claim, failed = store.claim("r3", 60, 2, now=t + 2)
    assert claim is None and failed == [job]
    rec = store.get(job)
    assert rec.status == "failed" and "the last: RayActorError: the render replica died" in rec.error


def test_a_webhook_whose_sender_died_is_sent_again_after_its_window(store) -> None:
    job = add(store, "a", webhook="http://127.0.0.1:1/h")[0]
    store.claim("r", 60, 3)
    store.finish(job, "r", 1, "failed", error="bad input")
    t = time.time()
    assert store.claim_webhook(job, 30, now=t) is not None  # this sender dies before webhook_sent
    assert store.webhooks_due(now=t + 29) == [] and store.claim_webhook(job, 30, now=t + 29) is None
    assert store.webhooks_due(now=t + 31) == [job]
    assert store.claim_webhook(job, 30, now=t + 31).status == "failed"  # another sender takes it over
    store.webhook_sent(job, True, 1, None)
    assert store.webhooks_due(now=t + 1000) == [] and store.get(job).webhook.delivered


def test_forget_old_keeps_the_newest_finished(store) -> None:
    ids = add(store, "a", 4)
    for job in ids[:3]:
        store.cancel(job, None)
    assert store.forget_old(1) == 2
    assert store.stats() == {"queued": 1, "running": 0, "done": 0, "failed": 0, "cancelled": 1}


def test_tenants_from_settings() -> None:
    from lsray.serve.security import tenant_for
    from lsray.serve.settings import ServeSettings

    os.environ["LSRAY_TEST_KEYS_B"] = "kb1, kb2"
    settings = ServeSettings(bundle="/b", api_keys=["plain"], tenants=[
        {"name": "a", "keys": ["ka"], "max_active_jobs": 2}, {"name": "b", "keys_env": "LSRAY_TEST_KEYS_B"},
        {"name": "ops", "keys": ["kops"], "admin": True, "rate_per_minute": 10}])
    tenants = settings.resolved_tenants()
    who = {k: tenant_for(f"Bearer {k}", tenants) for k in ("plain", "ka", "kb2", "kops", "nope")}
    assert who["plain"].name == "default" and who["ka"].name == "a" and who["kb2"].name == "b"
    assert who["kops"].admin and who["nope"] is None and tenant_for(None, tenants) is None
    for bad in ([{"name": "x"}, {"name": "x"}], [{"name": "default"}]):
        with pytest.raises(ValueError):
            ServeSettings(bundle="/b", tenants=bad)


# ----------------------------------------------------------------------------------------------
# the live service: two JobManager replicas over one store, tenants
# ----------------------------------------------------------------------------------------------
KEY, KEY_A, KEY_B, KEY_ADMIN = "default-key-0123456789", "tenant-a-key-0123456", "tenant-b-key-0123456", "admin-key-012345678"
FAST = {"steps": 1, "guidance": 1.0, "crf": 23}


class Hooks(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802
        Hooks.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def live(ray_cluster, tiny_bundle, tmp_path_factory):
    """Serve from deployments/serve.yaml: JobManager x2 on a SQLite store, a short lease, tenants."""
    from ray import serve

    from lsray.serve import deploy
    from serving import job_service_config
    from talking import write_dub, write_face_clip

    root = tmp_path_factory.mktemp("store-inputs")
    media = {"video": write_face_clip(root / "long.mp4", frames=100, size=(64, 48)),
             "audio": write_dub(root / "long.wav", 100 / 25),
             "video16": write_face_clip(root / "face16.mp4", frames=16, size=(64, 48)),
             "audio16": write_dub(root / "dub16.wav", 16 / 25)}
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    outputs, staging = tmp_path_factory.mktemp("store-outputs"), tmp_path_factory.mktemp("store-staging")
    db = tmp_path_factory.mktemp("store-db") / "jobs.db"
    config = job_service_config(
        bundle=tiny_bundle, inputs=root, outputs=outputs, staging=staging, db=db, hook_port=hooks.server_address[1],
        key=KEY, secret=SECRET, tenants=[{"name": "a", "keys": [KEY_A], "max_active_jobs": 1},
                                         {"name": "b", "keys": [KEY_B], "rate_per_minute": 2},
                                         {"name": "ops", "keys": [KEY_ADMIN], "admin": True}])
    assert next(d for d in config["applications"][0]["deployments"] if d["name"] == "JobManager")["num_replicas"] == 2
    url = deploy.deploy(config, timeout_s=900)  # six deployments on a shared 2-core machine can take minutes
    yield {"url": url, "media": media, "outputs": outputs, "staging": staging, "db": f"sqlite:///{db}",
           "hook": f"http://127.0.0.1:{hooks.server_address[1]}/h"}
    serve.shutdown()
    hooks.shutdown()
    hooks.server_close()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _clip(live, short: bool = True, **extra) -> dict:
    m = live["media"]
    v, a = (m["video16"], m["audio16"]) if short else (m["video"], m["audio"])
    return {"video": str(v), "audio": str(a), "options": FAST, **extra}


def _wait(live, job_id: str, key: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    rec = None
    while time.monotonic() < deadline:
        try:  # a request routed to a replica being killed may fail: ask again
            r = requests.get(f"{live['url']}/v1/jobs/{job_id}", headers=auth(key), timeout=30)
            rec = r.json() if r.status_code == 200 else rec
        except requests.RequestException:
            pass
        if rec and rec["status"] in ("done", "failed", "cancelled"):
            return rec
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {rec}")


def test_job_survives_its_runner_being_killed(live) -> None:
    """A job whose JobManager replica is killed mid-run is re-run by a live replica once the
    lease expires: done, one output at result_uri, no attempt files left, one webhook."""
    import ray

    from lsray.media import count_frames
    from serving import lease_owner_pid, replica_actors

    Hooks.received.clear()
    r = requests.post(f"{live['url']}/v1/jobs", json=_clip(live, short=False, webhook_url=live["hook"]),
                      headers=auth(KEY), timeout=120)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    store = JobStore(live["db"])
    deadline = time.monotonic() + 120
    while (rec := store.get(job_id)).status != "running" or store.work(job_id) is None:
        assert time.monotonic() < deadline and rec.status == "queued", rec
        time.sleep(0.1)
    owner = lease_owner_pid(live["db"], job_id)
    victim = replica_actors("JobManager", pid=owner)
    assert len(victim) == 1, (owner, victim)
    t_kill = time.monotonic()
    ray.kill(ray.get_actor(victim[0], namespace="serve"), no_restart=False)
    rec = _wait(live, job_id, KEY)
    print(f"job re-run after its runner was killed: {rec['attempt']} attempts, done "
          f"{time.monotonic() - t_kill:.1f} s after the kill")
    assert rec["status"] == "done", rec
    assert rec["attempt"] >= 2 and rec["progress"]  # re-run (more than 2 only if a loaded machine starved a lease) == 1.0 and rec["frames_done"] == rec["frames_total"] == 100
    assert rec["result_uri"] == str(live["outputs"] / f"{job_id}.mp4")
    assert sorted(p.name for p in live["outputs"].iterdir()) == [f"{job_id}.mp4"]  # one output, no temp files
    assert count_frames(Path(rec["result_uri"])) == 100
    assert not (live["staging"] / "jobs" / job_id).exists()  # attempts' files cleaned
    deadline = time.monotonic() + 30
    while not Hooks.received and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    assert len(Hooks.received) == 1 and json.loads(Hooks.received[0])["id"] == job_id
    assert requests.get(f"{live['url']}/v1/jobs/{job_id}", headers=auth(KEY), timeout=30).json()["webhook"]["delivered"]
    store.dispose()


def test_tenants_see_only_their_jobs(live) -> None:
    url = live["url"]
    r = requests.post(f"{url}/v1/jobs", json=_clip(live), headers=auth(KEY_A), timeout=120)
    assert r.status_code == 202, r.text
    mine = r.json()["id"]
    for key in (KEY, KEY_B):  # other tenants: 404 (as if it did not exist), never listed
        assert requests.get(f"{url}/v1/jobs/{mine}", headers=auth(key), timeout=30).status_code == 404
        assert requests.delete(f"{url}/v1/jobs/{mine}", headers=auth(key), timeout=30).status_code == 404
        listed = requests.get(f"{url}/v1/jobs", params={"limit": 500}, headers=auth(key), timeout=30).json()
        assert mine not in {j["id"] for j in listed["items"]}
    own = requests.get(f"{url}/v1/jobs", params={"limit": 500}, headers=auth(KEY_A), timeout=30).json()
    assert [j["id"] for j in own["items"]] == [mine] and own["total"] == 1
    admin = requests.get(f"{url}/v1/jobs", params={"limit": 500}, headers=auth(KEY_ADMIN), timeout=30).json()
    assert mine in {j["id"] for j in admin["items"]} and admin["total"] > own["total"]
    assert requests.get(f"{url}/v1/jobs/{mine}", headers=auth(KEY_ADMIN), timeout=30).status_code == 200
    # tenant a's quota is one active job: a second one while the first runs (seconds) is 429 + Retry-After
    r = requests.post(f"{url}/v1/jobs/batch", json={"clips": [_clip(live)]}, headers=auth(KEY_A), timeout=120)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2" and "quota" in r.json()["detail"], r.text
    assert requests.get(f"{url}/v1/jobs", headers=auth(KEY_A), timeout=30).json()["total"] == 1
    assert _wait(live, mine, KEY_A)["status"] == "done"


def test_tenant_rate_limit_429(live) -> None:
    """Tenant b may send 2 submitting requests a minute: the next is 429 + Retry-After (counted
    before the body is read, so even bad requests count); other tenants are not affected."""
    codes, retry = [], None
    for _ in range(6):  # a minute boundary may fall between two requests: at most 4 pass
        r = requests.post(f"{live['url']}/v1/jobs/batch", json={"clips": []}, headers=auth(KEY_B), timeout=30)
        codes.append(r.status_code)
        if r.status_code == 429:
            retry = int(r.headers["Retry-After"])
            break
    assert codes[-1] == 429 and set(codes[:-1]) == {400} and len(codes) <= 5, codes
    assert 1 <= retry <= 60
    r = requests.post(f"{live['url']}/v1/jobs/batch", json={"clips": []}, headers=auth(KEY), timeout=30)
    assert r.status_code == 400  # the default tenant has no rate limit
