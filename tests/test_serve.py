"""The online service end to end: a real local Serve on 127.0.0.1 deployed from
deployments/serve.yaml (test overrides: tiny bundle, small limits; the ``service`` fixture in
conftest.py), exercised over HTTP."""

from __future__ import annotations

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before anything imports ray: loopback only

import collections
import concurrent.futures
import json
import time
from pathlib import Path

import pytest
import requests

from lsray.serve.security import PolicyError, check_uri, check_webhook, key_is_valid
from lsray.serve.webhooks import sign, verify
from serving import FAST, KEY, SECRET, Hooks, auth


# ----------------------------------------------------------------------------------------------
# pure checks (no Ray)
# ----------------------------------------------------------------------------------------------
def test_uri_policy(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    roots = [str(root), "s3://bucket/prefix"]
    assert check_uri(str(root / "a" / "v.mp4"), roots)
    assert check_uri(f"file://{root}/v.mp4", roots)
    assert check_uri("s3://bucket/prefix/x/v.mp4", roots)
    (tmp_path / "out.mp4").write_bytes(b"x")
    (root / "link").symlink_to(tmp_path / "out.mp4")
    for bad in ("http://example.com/v.mp4", "https://127.0.0.1/v.mp4", "file:///etc/passwd", "/etc/passwd",
                f"{root}/../out.mp4", f"{root}/link", "s3://bucket/prefixed/v.mp4", "s3://other/prefix/v.mp4",
                "s3://bucket/prefix/../x", "relative/v.mp4", "ftp://h/x"):
        with pytest.raises(PolicyError):
            check_uri(bad, roots)


def test_webhook_policy_and_signature() -> None:
    allow = ["https://hooks.example.com", "http://127.0.0.1:9000"]
    assert check_webhook("https://hooks.example.com/x", allow)
    assert check_webhook("https://hooks.example.com:443/x", allow)
    assert check_webhook("http://127.0.0.1:9000/hook", allow)
    for bad in ("http://hooks.example.com/x", "https://evil.example.com/", "http://127.0.0.1:9001/",
                "https://user:pw@hooks.example.com/", "ftp://hooks.example.com/", "not a url"):
        with pytest.raises(PolicyError):
            check_webhook(bad, allow)
    ts, body = str(int(time.time())), b'{"a": 1}'
    sig = sign("k", ts, body)
    assert verify("k", ts, body, sig) and not verify("k2", ts, body, sig) and not verify("k", ts, body + b" ", sig)
    assert not verify("k", str(int(time.time()) - 3600), body, sign("k", str(int(time.time()) - 3600), body))
    assert key_is_valid(f"Bearer {KEY}", ["other", KEY]) and not key_is_valid(f"Bearer {KEY}x", [KEY])
    assert not key_is_valid(None, [KEY]) and not key_is_valid(f"Basic {KEY}", [KEY]) and not key_is_valid("Bearer x", [])


def test_serve_yaml_is_valid() -> None:
    from lsray.serve import deploy
    from lsray.serve.settings import ServeSettings

    config = deploy.load_config()
    schema = deploy.validate(config)
    app = schema.applications[0]
    assert app.import_path == "lsray.serve.app:build_app" and app.route_prefix == "/"
    ServeSettings(**app.args)
    names = {d.name for d in app.deployments}
    assert names == {"Ingress", "JobManager", "PrepareDeployment", "AudioDeployment", "SampleDeployment", "RenderDeployment"}
    for d in app.deployments:
        assert d.max_queued_requests > 0  # never an unbounded queue
        if d.name != "JobManager":
            assert {"min_replicas", "max_replicas", "target_ongoing_requests"} <= set(d.autoscaling_config)


def test_sample_many_batches_windows_of_different_clips(tiny_bundle, tmp_path) -> None:
    """What @serve.batch relies on: windows of several shards (here of two clips) denoised in
    shared UNet calls give exactly what one-by-one sampling gives."""
    import copy

    import numpy as np

    from lsray.bundle import load_bundle
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec
    from lsray.pipeline.flow import ClipFlow
    from talking import write_dub, write_face_clip

    flow = ClipFlow(load_bundle(tiny_bundle))
    video, audio = write_face_clip(tmp_path / "v.mp4", frames=32), write_dub(tmp_path / "a.wav", 32 / 25)
    shards = []
    for clip_id, sampler in (("a", "ddim"), ("b", "ddim")):
        opts = DubOptions(steps=1, guidance=1.5, segment_seconds=0.64, sampler=sampler)
        plan = flow.prepare(ClipSpec(clip_id, str(video), str(audio), str(tmp_path / f"{clip_id}.mp4"), opts))
        shards += [flow.audio(s) for s in flow.shard(plan)]
    assert len(shards) == 4
    one = [flow.sample([copy.deepcopy(s)], max_windows=1)[0].generated for s in shards]
    many = [s.generated for s in flow.sample([copy.deepcopy(s) for s in shards], max_windows=8)]
    for a, b in zip(one, many):
        assert np.array_equal(a, b)  # LipSyncUNet is batch-invariant: bit for bit
    assert not np.array_equal(one[0], shards[0].crops)  # the mouths were regenerated


# ----------------------------------------------------------------------------------------------
# the live service
# ----------------------------------------------------------------------------------------------
def post_dub(url: str, video: Path, audio: Path, options: dict | None = None, key: str = KEY, timeout: float = 300):
    files = {"video": (video.name, video.read_bytes(), "video/mp4"), "audio": (audio.name, audio.read_bytes(), "audio/wav"),
             "options": (None, json.dumps(options if options is not None else FAST))}
    return requests.post(f"{url}/v1/dub", files=files, headers=auth(key), timeout=timeout)


def wait_job(url: str, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = requests.get(f"{url}/v1/jobs/{job_id}", headers=auth(), timeout=30).json()
        if rec["status"] in ("done", "failed", "cancelled"):
            return rec
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {rec}")


def test_open_routes(service) -> None:
    assert requests.get(f"{service}/healthz", timeout=30).json()["status"] == "ok"
    assert requests.get(f"{service}/docs", timeout=30).status_code == 200
    paths = requests.get(f"{service}/openapi.json", timeout=30).json()["paths"]
    for p in ("/v1/dub", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/batch", "/v1/estimate", "/healthz", "/metrics"):
        assert p in paths, p
    assert "multipart/form-data" in paths["/v1/dub"]["post"]["requestBody"]["content"]


def test_ray_and_serve_listen_on_loopback_only(service) -> None:
    """Every listening socket of the Ray processes (GCS, raylet, workers, Serve replicas and
    proxy, dashboard) is on 127.0.0.1, including Serve's per-replica gRPC servers."""
    import ipaddress

    import psutil

    def loopback(host: str) -> bool:
        ip = ipaddress.ip_address(host)
        return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback

    wide = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or conn.pid is None:
            continue
        try:
            cmd = " ".join(psutil.Process(conn.pid).cmdline())
        except psutil.Error:
            continue
        if "ray" in cmd and not loopback(conn.laddr.ip):
            wide.append((conn.laddr, cmd[:80]))
    assert not wide, wide


def test_dub_multipart_returns_mp4(service, media, tmp_path) -> None:
    from lsray.media import count_frames, probe_video

    r = post_dub(service, media["video"], media["audio"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4" and r.headers["x-lsray-status"] == "done"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    info = probe_video(out)
    assert info.has_audio and (info.width, info.height) == (320, 240)
    assert count_frames(out) == 32


def test_auth_401(service, media) -> None:
    assert post_dub(service, media["video16"], media["audio16"], key="wrong").status_code == 401
    assert requests.post(f"{service}/v1/dub", data=b"x", timeout=30).status_code == 401
    for method, path in (("get", "/v1/jobs"), ("get", "/v1/jobs/x"), ("delete", "/v1/jobs/x"), ("post", "/v1/jobs"),
                         ("post", "/v1/jobs/batch"), ("post", "/v1/estimate"), ("get", "/metrics")):
        for headers in ({"Authorization": "Bearer nope"}, {"Authorization": KEY}, {}):
            r = requests.request(method, f"{service}{path}", headers=headers, json={}, timeout=30)
            assert r.status_code == 401, (path, headers, r.status_code)  # before any body validation
            assert r.headers["www-authenticate"] == "Bearer"


def _json_dub(service, video: str, audio: str, path: str = "/v1/dub", **extra):
    body = {"video": video, "audio": audio, "options": FAST, **extra}
    return requests.post(f"{service}{path}", json=body, headers=auth(), timeout=120)


def test_uris_outside_roots_400(service, media) -> None:
    good_audio = str(media["audio16"])
    for bad in ("http://127.0.0.1/v.mp4", "https://example.com/v.mp4", "file:///etc/hostname", "/etc/hostname",
                f"{media['root']}/../x.mp4", f"file://{media['root']}/../x.mp4", "s3://elsewhere/v.mp4"):
        for path in ("/v1/dub", "/v1/jobs"):
            r = _json_dub(service, bad, good_audio, path=path)
            assert r.status_code == 400, (bad, path, r.status_code, r.text)


def test_limits_413(service, media) -> None:
    big = {"video": ("v.mp4", b"\0" * 3_100_000, "video/mp4"), "audio": ("a.wav", b"\0", "audio/wav")}
    assert requests.post(f"{service}/v1/dub", files=big, headers=auth(), timeout=60).status_code == 413
    r = post_dub(service, media["big_video"], media["audio16"])  # 800x600 > 640x480
    assert r.status_code == 413 and "800x600" in r.json()["detail"]
    r = post_dub(service, media["video16"], media["long_audio"])  # 4 s > 3 s
    assert r.status_code == 413 and "lasts" in r.json()["detail"]
    r = post_dub(service, media["long_video"], media["audio16"])  # 2.5 s: too long for /v1/dub, fine for jobs
    assert r.status_code == 413 and "/v1/jobs" in r.json()["detail"]
    clip = {"video": str(media["video16"]), "audio": str(media["audio16"]), "options": FAST}
    r = requests.post(f"{service}/v1/jobs/batch", json={"clips": [clip] * 4}, headers=auth(), timeout=60)
    assert r.status_code == 413


def test_not_media_415(service, media) -> None:
    assert post_dub(service, media["text"], media["audio16"]).status_code == 415
    assert post_dub(service, media["junk"], media["audio16"]).status_code == 415
    assert post_dub(service, media["video16"], media["text"]).status_code == 415
    assert _json_dub(service, str(media["junk"]), str(media["audio16"])).status_code == 415
    r = requests.post(f"{service}/v1/dub", data=b"hello", headers={**auth(), "Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 415


def test_unknown_job_404(service) -> None:
    assert requests.get(f"{service}/v1/jobs/doesnotexist", headers=auth(), timeout=30).status_code == 404
    assert requests.delete(f"{service}/v1/jobs/doesnotexist", headers=auth(), timeout=30).status_code == 404


def test_webhook_off_allowlist_refused(service, media, hook_server) -> None:
    for hook in (f"http://127.0.0.1:{hook_server + 1}/h", "https://example.com/h", f"http://localhost:{hook_server}/h"):
        r = _json_dub(service, str(media["video16"]), str(media["audio16"]), path="/v1/jobs", webhook_url=hook)
        assert r.status_code == 400 and "allowlist" in r.json()["detail"], r.text


def test_job_with_signed_webhook(service, media, hook_server) -> None:
    from lsray.media import probe_video

    Hooks.received.clear()
    hook = f"http://127.0.0.1:{hook_server}/lsray"
    r = _json_dub(service, str(media["video"]), str(media["audio"]), path="/v1/jobs", webhook_url=hook)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["webhook"]["url"] == hook
    rec = wait_job(service, job["id"])
    assert rec["status"] == "done", rec
    assert rec["progress"] == 1.0 and rec["frames_done"] == rec["frames_total"] == 32
    assert probe_video(rec["result_uri"]).has_audio
    deadline = time.monotonic() + 30
    while not Hooks.received and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(Hooks.received) == 1
    got = Hooks.received[0]
    assert verify(SECRET, got["ts"], got["body"], got["sig"])
    assert not verify("wrong-secret", got["ts"], got["body"], got["sig"])
    sent = json.loads(got["body"])
    assert sent["id"] == job["id"] and sent["status"] == "done" and sent["result_uri"] == rec["result_uri"]
    rec = requests.get(f"{service}/v1/jobs/{job['id']}", headers=auth(), timeout=30).json()
    assert rec["webhook"]["delivered"] and rec["webhook"]["attempts"] == 1


def test_batch_list_cancel(service, media) -> None:
    clip = {"video": str(media["long_video"]), "audio": str(media["audio"]), "options": FAST}
    r = requests.post(f"{service}/v1/jobs/batch", json={"clips": [clip, clip]}, headers=auth(), timeout=60)
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    assert len(ids) == 2
    for job_id in ids:
        rec = requests.delete(f"{service}/v1/jobs/{job_id}", headers=auth(), timeout=60).json()
        assert rec["status"] in ("cancelled", "done"), rec
    assert {wait_job(service, i)["status"] for i in ids} <= {"cancelled", "done"}
    assert "cancelled" in {wait_job(service, i)["status"] for i in ids}
    page = requests.get(f"{service}/v1/jobs", params={"limit": 1}, headers=auth(), timeout=30).json()
    assert page["total"] >= 2 and len(page["items"]) == 1 and page["next_offset"] == 1
    page2 = requests.get(f"{service}/v1/jobs", params={"limit": 1, "offset": 1}, headers=auth(), timeout=30).json()
    assert page2["items"][0]["id"] != page["items"][0]["id"]
    assert requests.get(f"{service}/v1/jobs", params={"limit": 0}, headers=auth(), timeout=30).status_code == 400


def test_jobs_overload_503(service, media) -> None:
    """More clips than max_pending_jobs (2): refused whole, 503 + Retry-After, nothing queued."""
    before = requests.get(f"{service}/v1/jobs", headers=auth(), timeout=30).json()["total"]
    clip = {"video": str(media["video16"]), "audio": str(media["audio16"]), "options": FAST}
    r = requests.post(f"{service}/v1/jobs/batch", json={"clips": [clip] * 3}, headers=auth(), timeout=60)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2", r.text
    assert requests.get(f"{service}/v1/jobs", headers=auth(), timeout=30).json()["total"] == before


def test_estimate_and_metrics(service) -> None:
    body = {"duration_s": 2.0, "width": 320, "height": 240, "options": {"steps": 1}}
    r = requests.post(f"{service}/v1/estimate", json=body, headers=auth(), timeout=30)
    assert r.status_code == 200, r.text
    est = r.json()
    assert est["seconds"] > 0 and est["frames"] == 50 and set(est["per_stage"]) == {"face", "audio", "unet", "vae", "encode"}
    longer = requests.post(f"{service}/v1/estimate", json={**body, "duration_s": 8.0, "options": {"steps": 4}}, headers=auth(), timeout=30)
    assert longer.json()["seconds"] > est["seconds"]
    assert requests.post(f"{service}/v1/estimate", json={**body, "model": "nope"}, headers=auth(), timeout=30).status_code == 404
    # Options the bundle cannot honour are refused with the reason (the tiny bundle has no LCM student).
    lcm = requests.post(f"{service}/v1/estimate", json={**body, "options": {"sampler": "lcm"}}, headers=auth(), timeout=30)
    assert lcm.status_code == 422 and "lcm" in lcm.text
    m = requests.get(f"{service}/metrics", headers=auth(), timeout=30)
    assert m.status_code == 200 and "lsray_http_requests_total" in m.text and "lsray_jobs" in m.text


@pytest.mark.slow
def test_30_concurrent_dubs_answered(service, media) -> None:
    """Tiny real dubs, 30 at once: every request answered 200 (a valid MP4) or 503 with
    Retry-After, none lost or failed, and the service still dubs afterwards."""

    def one(_):
        try:
            return post_dub(service, media["video16"], media["audio16"], timeout=600)
        except requests.RequestException as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(one, range(30)))
    codes = [a.status_code if isinstance(a, requests.Response) else repr(a) for a in answers]
    print(f"30 concurrent /v1/dub: {codes.count(200)} x 200, {codes.count(503)} x 503")
    assert all(c in (200, 503) for c in codes), codes
    assert codes.count(200) >= 1 and codes.count(503) >= 1, codes
    for a in answers:
        if a.status_code == 503:
            assert int(a.headers["Retry-After"]) >= 1
        else:
            assert a.headers["content-type"] == "video/mp4" and a.content[4:8] == b"ftyp"
    assert requests.get(f"{service}/healthz", timeout=30).status_code == 200
    assert post_dub(service, media["video16"], media["audio16"]).status_code == 200


# ----------------------------------------------------------------------------------------------
# the API as documented (tests/test_openapi.py checks the document itself); last: it fuzzes
# ----------------------------------------------------------------------------------------------
# Per operation and generation mode. The media routes are exercised too: generated inputs are
# never media under a storage root, so they are refused (400/404/415/422) before any dubbing.
SCHEMATHESIS_EXAMPLES = 40


@pytest.mark.slow
def test_live_service_conforms_to_its_document(service, media) -> None:
    """Every operation, positive and negative inputs, with the key: no 5xx, and every answer
    (status, content type, body, headers) one the document declares. Then the answers generated
    inputs cannot reach: no key (401 + WWW-Authenticate) and admission control (503 + Retry-After)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_headers_conformance,
                                     response_schema_conformance, status_code_conformance)
    from schemathesis.core.failures import Failure, FailureGroup

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              response_headers_conformance]
    schema = schemathesis.openapi.from_url(f"{service}/openapi.json", timeout=60)  # what the live app serves
    examples: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    unsatisfiable: list[str] = []
    t0 = time.perf_counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    for op in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=SCHEMATHESIS_EXAMPLES, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def exercise(case) -> None:
                examples[op.label] += 1
                try:
                    response = case.call_and_validate(headers=auth(), checks=checks, timeout=60)
                    statuses[response.status_code] += 1
                except (Failure, FailureGroup) as exc:
                    failures.append(f"{op.label} [{mode.value}]: {exc}\n{case.as_curl_command(headers=auth())}")

            try:
                exercise()
            except Unsatisfiable:  # nothing to get wrong: no parameters, or only strings in the path
                assert mode is schemathesis.GenerationMode.NEGATIVE, op.label
                unsatisfiable.append(op.label)
    total = sum(examples.values())
    print(f"schemathesis: {len(operations)} operations, {total} examples, {len(failures)} failures, "
          f"{time.perf_counter() - t0:.0f} s; statuses {dict(sorted(statuses.items()))}; "
          f"no negative inputs for {unsatisfiable}")
    assert len(operations) == 9 and total >= len(operations) * 2
    assert not failures, "\n\n".join(failures[:10])

    by_label = {op.label: op for op in operations}
    for label in ("GET /v1/jobs", "GET /metrics", "POST /v1/estimate"):
        case = by_label[label].Case(**({"body": {}} if label.startswith("POST") else {}))
        assert case.call_and_validate(checks=checks, timeout=60).status_code == 401  # no key
    clip = {"video": str(media["video16"]), "audio": str(media["audio16"]), "options": FAST}
    case = by_label["POST /v1/jobs/batch"].Case(body={"clips": [clip] * 3}, media_type="application/json")
    conformance = [check for check in checks if check is not not_a_server_error]  # this 5xx is the point
    assert case.call_and_validate(headers=auth(), checks=conformance, timeout=60).status_code == 503  # > max_pending_jobs
