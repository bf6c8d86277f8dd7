"""The Ray Data catalog job on a real 2-node Ray cluster on loopback (one per test session).

The head runs every CPU stage; a second node offers the custom resource ``accelerator`` that
the sampler stage requests in place of a GPU. Clips are tiny (16 frames, 160x120) and sample
with ``steps=1``; most good rows of the big catalog have a silent dub, so their windows keep
the original mouth and skip the UNet (the rows are still fully dubbed: output, mux, marker).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lsray.batch.config import load_batch_config
from lsray.batch.job import JobSpec, run_job
from lsray.bundle.identity import model_id
from lsray.media import probe_video
from bundles import nudge_weight
from faults import remove_node_while_rendering
from s3 import moto_s3, s3_bucket  # noqa: F401  (fixtures)
from talking import write_blank_clip, write_dub, write_face_clip

FRAMES, SIZE = 16, (160, 120)
TEST_STAGES = {
    "prepare": {"num_cpus": 0.5, "max_size": 2},
    "anchors": {"num_cpus": 0.25},
    "shard": {"num_cpus": 0.25},
    "audio": {"num_cpus": 0.25},
    # The accelerator token is the sample stage's whole claim: with a CPU claim as well, CPU
    # stages that Ray places on the accelerator node can leave it too few CPUs and starve it.
    "sample": {"num_cpus": 0, "resources": {"accelerator": 1}},
    "render": {"num_cpus": 0.5, "max_size": 2},
    "assemble": {"num_cpus": 0.25},
}


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("batch-media")
    write_face_clip(d / "face.mp4", frames=FRAMES, size=SIZE)
    write_blank_clip(d / "blank.mp4", frames=FRAMES, size=SIZE)
    write_dub(d / "speech.wav", FRAMES / 25)
    write_dub(d / "silent.wav", FRAMES / 25, pause=(0.0, FRAMES / 25))
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    return d


@pytest.fixture(scope="session")
def stages_yaml(tmp_path_factory) -> Path:
    import yaml

    path = tmp_path_factory.mktemp("batch-config") / "stages.yaml"
    path.write_text(yaml.safe_dump(TEST_STAGES))
    return path


def write_catalog(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def small_catalog(d: Path, media: Path) -> Path:
    return write_catalog(d / "catalog.jsonl", [
        {"clip_id": "talk", "video": str(media / "face.mp4"), "audio": str(media / "speech.wav")},
        {"clip_id": "quiet", "video": str(media / "face.mp4"), "audio": str(media / "silent.wav")},
        {"clip_id": "noface", "video": str(media / "blank.mp4"), "audio": str(media / "speech.wav")},
        {"clip_id": "missing", "video": str(media / "nope.mp4"), "audio": str(media / "speech.wav")},
        {"clip_id": "corrupt", "video": str(media / "corrupt.mp4"), "audio": str(media / "speech.wav")},
        {"clip_id": "web", "video": "https://example.com/a.mp4", "audio": str(media / "speech.wav")},
        '{"clip_id": "broken", "video": ',
    ])


def assert_valid_mp4(path: Path, frames: int = FRAMES) -> None:
    info = probe_video(str(path))
    assert info.width == SIZE[0] and info.height == SIZE[1]
    assert info.has_audio and abs((info.n_frames or frames) - frames) <= 1


def read_report(out: Path) -> dict[str, dict]:
    rows = pq.read_table(out / "report.parquet").to_pylist()
    return {r["clip_id"] if r["clip_id"] else f"line{r['line']}": r for r in rows}


@pytest.mark.slow
def test_dub_cli_on_two_nodes_with_broken_rows_resume_and_metrics(ray_cluster, media, stages_yaml, tmp_path, capsys):
    from lsray.cli import main

    catalog = small_catalog(tmp_path, media)
    out = tmp_path / "out"
    argv = ["dub", str(catalog), "--out", str(out), "--model", str(_bundle()), "--config", str(stages_yaml),
            "--address", ray_cluster.address, "--steps", "1", "--quiet"]
    assert main(argv) == 1  # some rows failed: exit 1, with the report saying which
    report = read_report(out)
    status = {k: v["status"] for k, v in report.items()}
    assert status == {"talk": "done", "quiet": "done", "noface": "no_face", "missing": "error", "corrupt": "error",
                      "web": "invalid", "line7": "invalid"}
    assert "no such file" in report["missing"]["error"]
    assert report["corrupt"]["error"].startswith("prepare:")
    assert "http" in report["web"]["error"] and report["web"]["line"] == 6
    for clip in ("talk", "quiet", "noface"):
        assert_valid_mp4(out / f"{clip}.mp4")
        assert json.loads((out / f"{clip}.mp4.json").read_text())["fingerprint"] == report[clip]["fingerprint"]
    assert report["talk"]["seconds_unet"] > 0 and report["quiet"]["seconds_unet"] == 0  # silent dub: UNet skipped
    assert report["noface"]["no_face_frames"] == FRAMES
    summary = json.loads((out / "report.json").read_text())
    assert summary["counts"]["done"] == 2 and summary["counts"]["invalid"] == 2
    assert not (out / "_lsray_staging").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["talk.mp4", "talk.mp4.json", "quiet.mp4", "quiet.mp4.json", "noface.mp4", "noface.mp4.json",
         "report.html", "report.json", "report.parquet"])

    # Rerun: every finished clip is skipped, nothing is rewritten.
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    (out / "quiet.mp4").unlink()  # a crashed run: the output never appeared (marker alone is not "done")
    write_dub(media / "speech2.wav", FRAMES / 25)
    lines = catalog.read_text().splitlines()
    lines[0] = lines[0].replace("speech.wav", "speech2.wav")  # talk's input changed: new fingerprint
    catalog.write_text("\n".join(lines) + "\n")
    assert main(argv) == 1
    again = read_report(out)
    assert again["noface"]["status"] == "skipped" and again["quiet"]["status"] == "done"
    assert again["talk"]["status"] == "done" and again["talk"]["fingerprint"] != report["talk"]["fingerprint"]
    assert (out / "noface.mp4").stat().st_mtime_ns == mtimes["noface.mp4"]
    assert_valid_mp4(out / "quiet.mp4")

    # Retrained weights of the same shape and size: the model is another one, finished clips are
    # dubbed again. (A copy of the bundle: same bytes, so the same model until a weight changes.)
    retrained = Path(shutil.copytree(_bundle(), tmp_path / "retrained" / _bundle().name))
    assert model_id(retrained) == model_id(_bundle())
    nudge_weight(retrained / "unet.safetensors")
    cheap = write_catalog(tmp_path / "cheap.jsonl", catalog.read_text().splitlines()[1:3])  # quiet, noface
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    assert main(["dub", str(cheap), "--out", str(out), "--model", str(retrained), *argv[6:]]) == 0
    third = read_report(out)
    assert third["quiet"]["status"] == "done" and third["noface"]["status"] == "no_face"
    for clip in ("quiet", "noface"):
        assert third[clip]["fingerprint"] != again[clip]["fingerprint"]
        assert (out / f"{clip}.mp4").stat().st_mtime_ns != mtimes[f"{clip}.mp4"]


def _bundle() -> Path:
    return _BUNDLE["path"]


_BUNDLE: dict = {}


@pytest.fixture(autouse=True)
def _remember_bundle(tiny_bundle):
    _BUNDLE["path"] = tiny_bundle


def _spec(catalog: Path, out: str, ray_cluster, **kw) -> JobSpec:
    from lsray.pipeline.options import DubOptions

    return JobSpec(catalog=str(catalog), out=out, model=str(_bundle()), address=ray_cluster.address,
                   config=load_batch_config(overrides=TEST_STAGES), defaults=DubOptions(steps=1), progress=False, **kw)


@pytest.mark.slow
def test_stages_run_where_their_resources_ask_and_metrics_are_exported(ray_cluster, media, tmp_path):
    catalog = write_catalog(tmp_path / "c.jsonl", [
        {"clip_id": "a", "video": str(media / "face.mp4"), "audio": str(media / "speech.wav")}])
    theirs = tmp_path / "out" / "_lsray_staging" / "another-job" / "b-0123456789ab" / "segment-00000.mp4"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"another job's segment, still to be assembled")
    outcome = run_job(_spec(catalog, str(tmp_path / "out"), ray_cluster, metrics_port=0))
    assert [r.status for r in outcome.reports] == ["done"]
    # The job swept its own staging folder only: a job sharing the staging root keeps its files.
    assert [p.relative_to(tmp_path / "out") for p in (tmp_path / "out" / "_lsray_staging").rglob("*") if p.is_file()] \
        == [theirs.relative_to(tmp_path / "out")]
    assert outcome.placement["sample"] == [ray_cluster.accel_node_id]  # the accelerator node, only
    for stage in ("prepare", "shard", "audio", "render", "assemble"):
        assert outcome.placement[stage], stage
    text = outcome.metrics_text
    assert 'lsray_batch_clips_total{job="' in text and 'status="done"' in text
    assert "lsray_batch_queue_depth" in text and "lsray_batch_stage_seconds_bucket" in text
    # The actors' metrics reach Ray's metrics agent (exported per node, prefixed ray_).
    import ray
    import requests

    ports = [n["MetricsExportPort"] for n in ray.nodes() if n["Alive"]]
    deadline, seen = time.monotonic() + 40, ""
    while time.monotonic() < deadline:
        seen = "".join(requests.get(f"http://127.0.0.1:{p}/metrics", timeout=5).text for p in ports)
        if "lsray_batch_frames_total" in seen and "lsray_batch_stage_seconds" in seen:
            break
        time.sleep(2)
    assert "lsray_batch_frames_total" in seen and 'stage="sample"' in seen


@pytest.mark.slow
def test_submit_through_the_job_api(ray_cluster, media, stages_yaml, tmp_path):
    from lsray.cli import main

    catalog = write_catalog(tmp_path / "c.jsonl", [
        {"clip_id": "sub", "video": str(media / "face.mp4"), "audio": str(media / "silent.wav")},
        {"clip_id": "bad", "video": str(media / "nope.mp4"), "audio": str(media / "silent.wav")}])
    out = tmp_path / "out"
    code = main(["submit", str(catalog), "--out", str(out), "--model", str(_bundle()), "--config", str(stages_yaml),
                 "--address", ray_cluster.dashboard_url, "--steps", "1"])
    assert code == 0  # the job SUCCEEDED (a failed clip is a report row, not a failed job)
    report = read_report(out)
    assert report["sub"]["status"] == "done" and report["bad"]["status"] == "error"
    assert_valid_mp4(out / "sub.mp4")


@pytest.mark.slow
def test_killed_sample_actor_is_retried_and_outputs_exist_once(ray_cluster, media, tmp_path):
    import signal

    import ray
    from ray.util.state import list_actors

    rows = [{"clip_id": f"k{i}", "video": str(media / "face.mp4"), "audio": str(media / "speech.wav")} for i in range(3)]
    catalog = write_catalog(tmp_path / "c.jsonl", rows)
    out = tmp_path / "out"
    result: dict = {}
    job = threading.Thread(target=lambda: result.setdefault("o", run_job(_spec(catalog, str(out), ray_cluster,
                                                                               job_id="killtest"))))
    job.start()
    ledger = None
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and job.is_alive():
        time.sleep(0.3)
        try:
            ledger = ledger or ray.get_actor("killtest-ledger")
        except ValueError:
            continue
        running = ray.get(ledger.running_units.remote("sample"))
        if not running:
            continue
        actors = [a for a in list_actors(filters=[("state", "=", "ALIVE")], detail=True)
                  if "SampleWorker" in (a.get("repr_name") or "") + (a.get("class_name") or "")]
        pids = {a["pid"] for a in actors}
        if running[0]["pid"] in pids:
            killed = running[0]["pid"]
            os.kill(killed, signal.SIGKILL)  # mid-window: the batch dies with its process
    job.join(timeout=400)
    assert killed is not None, "never caught the sample actor at work"
    outcome = result["o"]
    assert [r.status for r in outcome.reports] == ["done"] * 3
    assert sum(r.retries for r in outcome.reports) >= 1 and outcome.summary.retries >= 1
    assert sorted(p.name for p in out.glob("*.mp4")) == ["k0.mp4", "k1.mp4", "k2.mp4"]
    assert not list(out.rglob("*.partial*"))
    for i in range(3):
        assert_valid_mp4(out / f"k{i}.mp4")
    assert killed not in outcome.stage_pids["sample"] or len(outcome.stage_pids["sample"]) >= 2


@pytest.mark.slow
def test_s3_catalog_media_and_outputs(ray_cluster, media, moto_s3, s3_bucket, tmp_path):
    from pyarrow import fs

    client = moto_s3.client()
    for name in ("face.mp4", "speech.wav", "blank.mp4"):
        client.upload_file(str(media / name), s3_bucket, f"in/{name}")
    lines = [{"clip_id": "s3talk", "video": "face.mp4", "audio": "speech.wav"},  # relative to the catalog
             {"clip_id": "s3none", "video": f"s3://{s3_bucket}/in/blank.mp4", "audio": "speech.wav"},
             {"clip_id": "s3gone", "video": "gone.mp4", "audio": "speech.wav"}]
    client.put_object(Bucket=s3_bucket, Key="in/catalog.jsonl", Body="".join(json.dumps(r) + "\n" for r in lines).encode())
    out = f"s3://{s3_bucket}/out"
    outcome = run_job(_spec(f"s3://{s3_bucket}/in/catalog.jsonl", out, ray_cluster, s3=moto_s3))
    assert {r.clip_id: r.status for r in outcome.reports} == {"s3talk": "done", "s3none": "no_face", "s3gone": "error"}
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]}
    assert keys == {"out/s3talk.mp4", "out/s3talk.mp4.json", "out/s3none.mp4", "out/s3none.mp4.json",
                    "out/report.parquet", "out/report.html", "out/report.json"}
    head = client.head_object(Bucket=s3_bucket, Key="out/s3talk.mp4")
    assert head["Metadata"]["lsray-fingerprint"] == outcome.reports[0].fingerprint
    local = tmp_path / "s3talk.mp4"
    client.download_file(s3_bucket, "out/s3talk.mp4", str(local))
    assert_valid_mp4(local)
    s3fs = moto_s3.arrow_filesystem()
    table = pq.read_table(f"{s3_bucket}/out/report.parquet", filesystem=s3fs)
    assert sorted(table.column("clip_id").to_pylist()) == ["s3gone", "s3none", "s3talk"]
    assert s3fs.get_file_info(f"{s3_bucket}/out/s3none.mp4").type == fs.FileType.File
    # Rerun on S3: skipped through the done markers.
    again = run_job(_spec(f"s3://{s3_bucket}/in/catalog.jsonl", out, ray_cluster, s3=moto_s3))
    assert {r.clip_id: r.status for r in again.reports} == {"s3talk": "skipped", "s3none": "skipped", "s3gone": "error"}


@pytest.mark.slow
def test_200_row_catalog_with_5_percent_broken_rows(ray_cluster, media, tmp_path):
    rows: list = []
    broken: dict[str, str] = {}
    for i in range(200):
        cid = f"c{i:03d}"
        kind = i % 100  # kinds 3, 7, 11, 15, 19 of every hundred rows: 10 broken rows = 5%
        if kind == 3:
            rows.append({"clip_id": cid, "video": f"s3x://nope/{cid}.mp4", "audio": str(media / "silent.wav")})
            broken[cid] = "invalid"  # bad URI
        elif kind == 7:
            rows.append({"clip_id": cid, "video": str(media / f"missing-{cid}.mp4"), "audio": str(media / "silent.wav")})
            broken[cid] = "error"  # missing file
        elif kind == 11:
            rows.append({"clip_id": cid, "video": str(media / "corrupt.mp4"), "audio": str(media / "silent.wav")})
            broken[cid] = "error"  # corrupt video
        elif kind == 15:
            rows.append({"clip_id": cid, "video": str(media / "blank.mp4"), "audio": str(media / "silent.wav")})
            broken[cid] = "no_face"
        elif kind == 19:
            rows.append(f'{{"clip_id": "{cid}", "video": 3, ')  # malformed row
            broken[f"line{i + 1}"] = "invalid"
        else:
            audio = "speech.wav" if i < 4 else "silent.wav"  # a few go through the UNet
            rows.append({"clip_id": cid, "video": str(media / "face.mp4"), "audio": str(media / audio)})
    catalog = write_catalog(tmp_path / "big.jsonl", rows)
    out = tmp_path / "out"
    outcome = run_job(_spec(catalog, str(out), ray_cluster))
    report = read_report(out)
    assert len(report) == 200
    marked = {k: v["status"] for k, v in report.items() if v["status"] != "done"}
    assert marked == broken and len(broken) == 10
    good = [k for k, v in report.items() if v["status"] == "done"]
    assert len(good) == 190
    for cid in good:
        path = out / f"{cid}.mp4"
        assert path.stat().st_size > 1000 and path.read_bytes()[4:8] == b"ftyp"
        assert report[cid]["frames"] == FRAMES
    for cid in good[:: 19]:  # decode a sample of them fully
        assert_valid_mp4(out / f"{cid}.mp4")
    assert outcome.summary.counts["done"] == 190


def _kill_while_working(job_id: str, stage: str, clip_id: str | None, stop: threading.Event, kills: list[int],
                        max_attempts: int | None = None) -> None:
    """Kill (SIGKILL) the process of every ``stage`` unit of ``clip_id`` (any clip: None) the
    job's ledger sees running, until ``stop``: a worker that dies under that clip every time.
    An attempt past ``max_attempts`` is left alone: it only reports the unit given up (it is on
    the ledger for a moment, and killing it would kill a healthy worker)."""
    import signal

    import ray

    ledger = None
    while not stop.is_set():
        time.sleep(0.05)  # often enough to catch a short render at work on each attempt
        try:
            ledger = ledger or ray.get_actor(f"{job_id}-ledger")
            running = ray.get(ledger.running_units.remote(stage), timeout=10)
        except Exception:  # noqa: BLE001 - not created yet, or the job is over
            continue
        for unit in running:
            working = max_attempts is None or unit["attempt"] <= max_attempts
            if (clip_id is None or unit["clip_id"] == clip_id) and unit["pid"] not in kills and working:
                try:
                    os.kill(unit["pid"], signal.SIGKILL)
                    kills.append(unit["pid"])
                except ProcessLookupError:
                    pass


@pytest.mark.slow
def test_a_clip_that_kills_its_worker_every_time_is_reported_and_the_job_goes_on(ray_cluster, media, tmp_path):
    """Retries run out for one clip (its render worker dies under it on every attempt): that clip
    is reported failed with the stage and the attempts, every other clip is dubbed, the report is
    complete, nothing half-written appears, and a rerun finishes the failed clip only."""
    # The poison clip is long enough (10 s) that its render is caught at work every time. Its dub
    # is silent: its windows keep the source mouth and skip the UNet (what is killed is render),
    # which would otherwise be most of this test's time on a CPU.
    long_video = write_face_clip(tmp_path / "long.mp4", frames=250, size=SIZE)
    long_dub = write_dub(tmp_path / "long.wav", 10.0, pause=(0.0, 10.0))
    rows = [{"clip_id": "a", "video": str(media / "face.mp4"), "audio": str(media / "speech.wav")},
            {"clip_id": "poison", "video": str(long_video), "audio": str(long_dub)},
            {"clip_id": "b", "video": str(media / "face.mp4"), "audio": str(media / "speech.wav")}]
    catalog = write_catalog(tmp_path / "c.jsonl", rows)
    out = tmp_path / "out"
    spec = _spec(catalog, str(out), ray_cluster, job_id="poison")
    spec.config = load_batch_config(overrides={**TEST_STAGES, "max_attempts": 2})
    stop, kills = threading.Event(), []
    killer = threading.Thread(target=_kill_while_working, args=("poison", "render", "poison", stop, kills, 2), daemon=True)
    killer.start()
    try:
        outcome = run_job(spec)
    finally:
        stop.set()
        killer.join(timeout=30)
    report = read_report(out)
    assert {k: v["status"] for k, v in report.items()} == {"a": "done", "poison": "error", "b": "done"}
    assert len(kills) == 2  # max_attempts, then the clip is given up on
    error = report["poison"]["error"]
    assert error.startswith("render of shard 0 did not finish: its worker died under it 2 time(s)") and "rerun" in error, error
    assert outcome.summary.failed and [r.clip_id for r in outcome.summary.failed] == ["poison"]
    assert sorted(p.name for p in out.glob("*.mp4")) == ["a.mp4", "b.mp4"]
    assert not list(out.rglob("*.partial*")) and not (out / "_lsray_staging").exists()
    assert (out / "report.html").is_file()

    again = run_job(_spec(catalog, str(out), ray_cluster))
    assert {r.clip_id: r.status for r in again.reports} == {"a": "skipped", "poison": "done", "b": "skipped"}
    assert_valid_mp4(out / "poison.mp4", frames=250)


@pytest.mark.slow
def test_losing_a_worker_node_mid_catalog_reports_every_clip(ray_cluster, tmp_path):
    """A third node (with the ``spot`` resource render asks for) is removed while it renders, and
    a replacement joins as an autoscaler would bring one: the dead actors restart there and the
    units they died under run again. Every row ends in the report, done or failed with the reason
    (work whose results were on the lost node may go with it), no output is half-written, and a
    rerun finishes exactly the failed ones."""
    spot = ray_cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1, resources={"spot": 1},
                                object_store_memory=100 * 1024 * 1024, runtime_env_dir_name="runtime_resources_spot")
    ray_cluster.wait_for_nodes()
    # 4 s clips: each render lasts long enough to be caught at work on the spot node. Silent dubs
    # (the UNet is skipped): the node lost is a render node, and the sampler's CPU time is not
    # what this test is about.
    video = write_face_clip(tmp_path / "four.mp4", frames=100, size=SIZE)
    audio = write_dub(tmp_path / "four.wav", 4.0, pause=(0.0, 4.0))
    rows = [{"clip_id": f"n{i}", "video": str(video), "audio": str(audio)} for i in range(6)]
    catalog = write_catalog(tmp_path / "c.jsonl", rows)
    out = tmp_path / "out"
    spec = _spec(catalog, str(out), ray_cluster, job_id="nodeloss")
    spec.config = load_batch_config(overrides={**TEST_STAGES, "render": {"num_cpus": 0.5, "resources": {"spot": 0.5}}})
    job = threading.Thread(target=run_job, args=(spec,))
    job.start()
    lost = remove_node_while_rendering(ray_cluster, spot, "nodeloss", job) is not None
    assert lost, "never caught the spot node rendering"
    # A replacement joins (and stays: actors restarting onto it finish, as with an autoscaler).
    ray_cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1, resources={"spot": 1},
                         object_store_memory=100 * 1024 * 1024, runtime_env_dir_name="runtime_resources_spot2")
    job.join(timeout=500)
    assert not job.is_alive()
    report = read_report(out)
    assert sorted(report) == [f"n{i}" for i in range(6)]  # every row is in the report
    status = {k: v["status"] for k, v in report.items()}
    print("after the node loss:", status, {k: v["error"] for k, v in report.items() if v["error"]})
    failed = [k for k, v in status.items() if v != "done"]
    assert set(status.values()) <= {"done", "error"}
    assert all("rerun" in report[k]["error"] for k in failed)  # lost with the node: says so, with the way out
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(f"{k}.mp4" for k, v in status.items() if v == "done")
    assert not list(out.rglob("*.partial*"))

    again = run_job(_spec(catalog, str(out), ray_cluster))  # the rerun finishes the lost ones only
    assert {r.clip_id: r.status for r in again.reports} == {k: "done" if k in failed else "skipped" for k in status}
    assert sorted(p.name for p in out.glob("*.mp4")) == [f"n{i}.mp4" for i in range(6)]
    for i in range(6):
        assert_valid_mp4(out / f"n{i}.mp4", frames=100)
