"""Online jobs through replica deaths: does every submitted job end, once, with one output and one webhook?

    python benchmarks/serve_durability.py [--jobs 30] [--out benchmarks/results/serve_durability.json]

Issue 20's Serve figure: N concurrent async jobs, the job-manager replica and one stage replica
killed mid-way; jobs submitted = jobs finished + jobs failed with a reason, 0 lost, 0 duplicated
outputs, webhooks delivered once each.

How: a loopback Ray node (127.0.0.1, dashboard on 127.0.0.1 for the state API) runs the job
service exactly as tests/test_job_store.py's ``live`` fixture does (``serving.job_service_config``:
deployments/serve.yaml, JobManager x2 over a SQLite job store in a temp folder, a short lease, one
replica of every stage, ultrafast encodes) with a random tiny bundle (``lsray.train.tiny``; nothing
downloaded) and a webhook receiver on 127.0.0.1 (``serving.Hooks``, as conftest's ``hook_server``).
N jobs of one short talking-head clip (``--frames`` at 64x48, steps 1) are POSTed to /v1/jobs at
once, each with a webhook_url. Once about a third are done, the JobManager replica holding a
running job's lease and the ``--stage`` replica (SampleDeployment by default) are killed with
``ray.kill(..., no_restart=False)`` (Serve replaces both). Then every job is polled until done or
failed (``--timeout`` overall), and webhooks are awaited until each job's is delivered or failed.

Reported: submitted / done / failed (reasons) / lost (never ended, or 404); outputs in the
output root vs done jobs (stray = any other file: a second output, a partial or temp file; the
frame count of each output), attempt files left in staging; webhook deliveries per job (each
exactly once, HMAC signature verified, body status = the job's final status) and the store's
webhook states; attempts per job (re-runs); wall time and the time from the kills to the last job
ending.
"""

from __future__ import annotations

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: loopback only

import argparse
import collections
import concurrent.futures
import http.server
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the service config, webhook receiver and clip writers shared with the tests


def submit(url: str, body: dict, key: str) -> tuple[str | None, int, int]:
    """POST one job; 503/429 (queue or ingress full) are retried after Retry-After. -> (id, status, retries)."""
    from serving import auth

    retries = 0
    while True:
        r = requests.post(f"{url}/v1/jobs", json=body, headers=auth(key), timeout=600)
        if r.status_code in (429, 503) and retries < 30:
            retries += 1
            time.sleep(float(r.headers.get("Retry-After", 2)))
            continue
        return (r.json()["id"] if r.status_code == 202 else None), r.status_code, retries


def final_record(url: str, job_id: str, key: str) -> tuple[int, dict | None]:
    """GET /v1/jobs/{id} through the ingress (a request that meets a dying replica is asked again)."""
    from serving import auth

    last = None
    for _ in range(10):
        try:
            r = requests.get(f"{url}/v1/jobs/{job_id}", headers=auth(key), timeout=60)
            if r.status_code in (200, 404):
                return r.status_code, (r.json() if r.status_code == 200 else None)
            last = r.status_code
        except requests.RequestException:
            pass
        time.sleep(1)
    return last or 0, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=30)
    p.add_argument("--frames", type=int, default=32, help="frames of each job's clip (64x48, 25 fps)")
    p.add_argument("--stage", default="SampleDeployment", help="the stage deployment whose replica is killed")
    p.add_argument("--kill-after", type=float, default=1 / 3, help="fraction of jobs done before the kills")
    p.add_argument("--lease-s", type=float, default=8.0)
    p.add_argument("--max-running", type=int, default=2, help="max_running_jobs per JobManager replica")
    p.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local Ray node")
    p.add_argument("--timeout", type=float, default=1200, help="overall limit for every job to end (s)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="lsray-serve-durability-"))
    os.environ.setdefault("LSRAY_CACHE_DIR", str(tmp / "cache"))  # never the user's ~/.cache/lsray
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from lsray.media import count_frames
    from lsray.serve import deploy
    from lsray.serve.store import JobStore
    from lsray.serve.webhooks import verify
    from lsray.train.tiny import make_tiny_bundle
    from serving import FAST, KEY, SECRET, Hooks, free_port, job_service_config, lease_owner_pid, replica_actors
    from talking import write_dub, write_face_clip

    inputs, outputs, staging = tmp / "inputs", tmp / "outputs", tmp / "staging"
    for d in (inputs, outputs, staging):
        d.mkdir()
    video = write_face_clip(inputs / "face.mp4", frames=args.frames, size=(64, 48))
    audio = write_dub(inputs / "dub.wav", args.frames / 25)
    bundle = make_tiny_bundle(tmp / "bundle")
    db = tmp / "jobs.db"
    db_url = f"sqlite:///{db}"

    Hooks.received.clear()  # conftest's hook_server, outside pytest
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    hook_port = hooks.server_address[1]

    cluster = Cluster(initialize_head=True, head_node_args={
        "node_ip_address": "127.0.0.1", "num_cpus": args.num_cpus, "include_dashboard": True,
        "dashboard_host": "127.0.0.1", "dashboard_port": free_port(), "object_store_memory": 400 << 20})
    ray.init(address=cluster.address, log_to_driver=False)
    store = None
    result: dict = {"jobs": args.jobs, "clip": {"frames": args.frames, "size": "64x48", "fps": 25}, "options": FAST,
                    "lease_s": args.lease_s, "max_running_jobs_per_manager": args.max_running, "job_managers": 2,
                    "stage_killed": args.stage, "cpu_count": os.cpu_count()}
    try:
        config = job_service_config(
            bundle=bundle, inputs=inputs, outputs=outputs, staging=staging, db=db, hook_port=hook_port,
            lease_s=args.lease_s, limits={"max_running_jobs": args.max_running,
                                          "max_pending_jobs": max(64, args.jobs), "retry_after_s": 2})
        t0 = time.perf_counter()
        url = deploy.deploy(config, timeout_s=900)
        result["deploy_s"] = round(time.perf_counter() - t0, 1)
        store = JobStore(db_url)
        body = {"video": str(video), "audio": str(audio), "options": FAST,
                "webhook_url": f"http://127.0.0.1:{hook_port}/h"}

        t_start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(min(args.jobs, 32)) as pool:
            answers = list(pool.map(lambda _: submit(url, body, KEY), range(args.jobs)))
        ids = [a[0] for a in answers if a[0]]
        result["submit"] = {"accepted": len(ids), "refused": collections.Counter(str(a[1]) for a in answers if not a[0]),
                            "retries_503_429": sum(a[2] for a in answers), "s": round(time.perf_counter() - t_start, 1)}
        print(f"submitted {len(ids)}/{args.jobs} in {result['submit']['s']} s", file=sys.stderr, flush=True)

        def statuses() -> dict[str, str]:
            out = {}
            for job_id in ids:
                rec = store.get(job_id)
                out[job_id] = rec.status if rec else "missing"
            return out

        # -- the kills, once about a third are done ------------------------------------------
        deadline = time.monotonic() + args.timeout
        kill: dict = {}
        while time.monotonic() < deadline:
            now = statuses()
            ended = sum(s in ("done", "failed", "cancelled") for s in now.values())
            running = [j for j, s in now.items() if s == "running"]
            if ended >= args.kill_after * len(ids) and running or ended == len(ids):
                break
            time.sleep(1)
        owners = {j: lease_owner_pid(db_url, j) for j in ids if now[j] == "running"}
        victim_pid = next((pid for pid in owners.values() if pid), None)
        manager = replica_actors("JobManager", pid=victim_pid) if victim_pid else []
        stage = replica_actors(args.stage)
        kill["ended_before"] = ended
        kill["running_before"] = len(running)
        kill["jobs_on_killed_manager"] = sorted(j for j, pid in owners.items() if pid == victim_pid)
        t_kill = time.perf_counter()
        for name in manager[:1] + stage[:1]:
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=False)
        kill["killed"] = manager[:1] + stage[:1]
        kill["at_s"] = round(t_kill - t_start, 1)
        print(f"killed {kill['killed']} at {kill['at_s']} s ({ended} ended, {len(running)} running)",
              file=sys.stderr, flush=True)
        result["kill"] = kill

        # -- every job to its end -----------------------------------------------------------------
        while time.monotonic() < deadline:
            now = statuses()
            if all(s in ("done", "failed", "cancelled") for s in now.values()):
                break
            time.sleep(1)
        t_end = time.perf_counter()
        result["wall_s"] = round(t_end - t_start, 1)
        result["kill_to_all_ended_s"] = round(t_end - t_kill, 1)
        # ... and every webhook (delivered or given up), then a grace period for duplicates
        hook_deadline = time.monotonic() + 120
        while time.monotonic() < hook_deadline:
            states = {j: store.get(j).webhook for j in ids}
            if all(w and (w.delivered or w.error) for w in states.values()):
                break
            time.sleep(0.5)
        result["kill_to_all_webhooks_s"] = round(time.perf_counter() - t_kill, 1)
        time.sleep(3)

        # -- the verdict, through the API -------------------------------------------------------
        recs, lost = {}, {}
        for job_id in ids:
            code, rec = final_record(url, job_id, KEY)
            if rec is None or rec["status"] not in ("done", "failed", "cancelled"):
                lost[job_id] = f"HTTP {code}" if rec is None else rec["status"]
            else:
                recs[job_id] = rec
        done = {j: r for j, r in recs.items() if r["status"] == "done"}
        failed = {j: r for j, r in recs.items() if r["status"] == "failed"}
        files = sorted(p for p in outputs.rglob("*") if p.is_file())
        expected = {f"{j}.mp4" for j in done}
        stray = [p.name for p in files if p.name not in expected]
        frames = {j: count_frames(Path(r["result_uri"])) for j, r in done.items()
                  if r["result_uri"] and Path(r["result_uri"]).is_file()}
        leftovers = sorted(str(p.relative_to(staging)) for p in (staging / "jobs").rglob("*") if p.is_file()) \
            if (staging / "jobs").exists() else []

        per_job = collections.defaultdict(list)
        bad_sig = 0
        for hit in list(Hooks.received):
            if not verify(SECRET, hit["ts"], hit["body"], hit["sig"], max_age_s=24 * 3600):
                bad_sig += 1
            payload = json.loads(hit["body"])
            per_job[payload["id"]].append(payload["status"])
        hook_states = {}
        import sqlalchemy as sa

        from lsray.serve.store import jobs

        with store.engine.connect() as conn:
            for row in conn.execute(sa.select(jobs.c.id, jobs.c.webhook_state, jobs.c.webhook_attempts,
                                              jobs.c.webhook_error).where(jobs.c.id.in_(ids))):
                hook_states[row.id] = (row.webhook_state, row.webhook_attempts, row.webhook_error)
        attempts = {j: r["attempt"] for j, r in recs.items()}

        result.update({
            "submitted": len(ids), "done": len(done), "failed": len(failed), "lost": len(lost),
            "submitted_eq_done_plus_failed_with_reason": len(ids) == len(done) + sum(bool(r["error"]) for r in failed.values()),
            "failed_reasons": dict(collections.Counter(r["error"] for r in failed.values())),
            "lost_jobs": lost,
            "outputs": {"files": len(files), "done_jobs": len(done), "done_with_output": sum(
                1 for j in done if (outputs / f"{j}.mp4").is_file()), "stray_files": stray,
                "duplicates": len(stray), "frames_ok": sum(n == args.frames for n in frames.values()),
                "frames_wrong": {j: n for j, n in frames.items() if n != args.frames},
                "failed_jobs_with_output": sum(1 for j in failed if (outputs / f"{j}.mp4").exists()),
                "staging_attempt_files_left": leftovers},
            "webhooks": {"received": len(Hooks.received), "jobs_delivered_once": sum(len(per_job[j]) == 1 for j in ids),
                         "jobs_delivered_more_than_once": {j: len(per_job[j]) for j in ids if len(per_job[j]) > 1},
                         "jobs_not_delivered": sorted(j for j in ids if not per_job[j]),
                         "bad_signatures": bad_sig,
                         "body_status_mismatch": sum(1 for j in recs if per_job[j] and per_job[j][-1] != recs[j]["status"]),
                         "store_states": dict(collections.Counter(s[0] for s in hook_states.values())),
                         "store_errors": dict(collections.Counter(s[2] for s in hook_states.values() if s[2]))},
            "attempts": {"histogram": {str(k): v for k, v in sorted(collections.Counter(attempts.values()).items())},
                         "rerun_jobs": sum(a > 1 for a in attempts.values()),
                         "jobs_on_killed_manager": {j: {"attempts": attempts.get(j), "status": recs.get(j, {}).get("status")}
                                                    for j in kill["jobs_on_killed_manager"]}},
        })
    finally:
        if store is not None:
            store.dispose()
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
        hooks.shutdown()
        hooks.server_close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(json.dumps(result, indent=2))
    if args.out:
        from lsray.storage import write_json

        write_json(str(args.out), result)  # atomic, folders made
    return 0


if __name__ == "__main__":
    sys.exit(main())
