"""Online dubbing benchmark: a real local Serve (127.0.0.1) deployed from deployments/serve.yaml
with the tiny test bundle on CPU.

Measures, for a 2 s talking-head clip (50 frames, 320x240, 25 fps) through ``POST /v1/dub``:
  * latency p50 / p95 of sequential requests,
  * requests/s at concurrency 1, 4 and 16,
  * where the time goes: the server's ``X-Lsray-Seconds`` (busy seconds per step, the rest is
    hand-overs between the deployments), median of the sequential requests;
  * batching on the sampler (max_batch_size 4: shards that queue while a batch runs share the
    next one, ``lsray.serve.batcher``) vs off (max_batch_size 1): throughput ratio at
    concurrency 4, plus the batch sizes seen.
One replica per deployment (a 2-core machine gains nothing from more). Prints a table; ``--out``
writes JSON.

    .venv/bin/python benchmarks/serve_bench.py --out /tmp/serve_bench.json
"""

from __future__ import annotations

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: loopback only

import argparse
import concurrent.futures
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def make_inputs(root: Path, bundle: str | None) -> tuple[str, Path, Path]:
    """``bundle``: a folder, ``None`` for the tiny test bundle (the parity fixtures' UNet at 256 px,
    whose compute alone is ~5 s for this clip on 2 cores) or ``"smallest"`` for
    :func:`lsray.train.tiny.make_tiny_bundle` (a 0.6 M-parameter UNet: what is left is the fixed cost)."""
    sys.path.insert(0, str(REPO / "tests"))
    from talking import write_dub, write_face_clip

    if bundle is None:
        from bundles import make_tiny_bundle
        from conftest import parity_root

        bundle = str(make_tiny_bundle(root / "tiny", parity_root()))
    elif bundle == "smallest":
        from lsray.train.tiny import make_tiny_bundle as make_smallest_bundle

        bundle = str(make_smallest_bundle(root / "smallest"))
    video = write_face_clip(root / "clip.mp4", frames=50)
    audio = write_dub(root / "dub.wav", 2.0)
    return bundle, video, audio


def dub(url: str, video: Path, audio: Path, options: dict, check: bool = False) -> tuple[int, float, dict]:
    """-> (status, seconds at the client, the server's X-Lsray-Seconds breakdown)."""
    files = {"video": (video.name, video.read_bytes(), "video/mp4"), "audio": (audio.name, audio.read_bytes(), "audio/wav"),
             "options": (None, json.dumps(options))}
    t0 = time.perf_counter()
    r = requests.post(f"{url}/v1/dub", files=files, headers={"Authorization": f"Bearer {KEY}"}, timeout=1800)
    if check and r.status_code != 200:
        raise RuntimeError(f"/v1/dub answered {r.status_code}: {r.text[:500]}")
    return r.status_code, time.perf_counter() - t0, json.loads(r.headers.get("X-Lsray-Seconds", "{}"))


def sampler_inputs(bundle: str, video: Path, audio: Path, steps: int, n: int) -> list:
    """``n`` copies of the clip's one shard (50 frames = 4 windows) after prepare + audio, in-process."""
    import copy

    from lsray.bundle import load_bundle
    from lsray.pipeline.options import DubOptions
    from lsray.pipeline.records import ClipSpec
    from lsray.pipeline.flow import ClipFlow

    flow = ClipFlow(load_bundle(bundle))
    spec = ClipSpec("bench", str(video), str(audio), str(video.with_name("unused.mp4")), DubOptions(steps=steps, guidance=1.0))
    shard = [flow.audio(s) for s in flow.shard(flow.prepare(spec))][0]
    return [copy.deepcopy(shard) for _ in range(n)]


def run_level(url: str, video: Path, audio: Path, options: dict, concurrency: int, total: int) -> dict:
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _: dub(url, video, audio, options), range(total)))
    wall = time.perf_counter() - t0
    ok = [lat for code, lat, _ in results if code == 200]
    return {"concurrency": concurrency, "requests": total, "ok": len(ok), "codes": sorted({c for c, _, _ in results}),
            "wall_s": wall, "rps": len(ok) / wall, "p50_s": percentile(ok, 50) if ok else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="model bundle folder, or 'smallest' (lsray.train.tiny's 0.6 M-parameter UNet: the "
                                    "fixed cost); default: build the tiny test bundle from the parity fixtures")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--latency-requests", type=int, default=4)
    p.add_argument("--levels", default="1,4,16", help="concurrency levels")
    p.add_argument("--batch-requests", type=int, default=4, help="requests per arm of the batch on/off comparison")
    p.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local Ray node")
    p.add_argument("--sampler-shards", type=int, default=8, help="concurrent shards sent straight to the sampler")
    p.add_argument("--sections", default="latency,throughput,batch", help="which measurements to run")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)

    import ray
    from ray import serve

    from lsray.serve import deploy

    work = Path(tempfile.mkdtemp(prefix="lsray-serve-bench-"))
    bundle, video, audio = make_inputs(work, args.bundle)
    options = {"steps": args.steps, "guidance": 1.0, "crf": 23}
    one = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 2}}

    def config(batch: int) -> dict:
        return deploy.with_overrides(
            deploy.load_config(), http={"host": "127.0.0.1", "port": port},
            args={"bundle": bundle, "api_keys": [KEY], "storage_roots": [str(work)], "output_root": str(work / "out"),
                  "torch_threads": 2, "encode_preset": "ultrafast",
                  "limits": {"max_inflight_dubs": 32, "max_shards_in_flight": 4}},
            deployments={"Ingress": {"max_ongoing_requests": 64, "max_queued_requests": 64, **one},
                         "PrepareDeployment": {**one, "max_ongoing_requests": 4},
                         "AudioDeployment": one, "RenderDeployment": {**one, "max_ongoing_requests": 4},
                         "SampleDeployment": {**one, "max_ongoing_requests": 16,
                                              "user_config": {"max_batch_size": batch, "batch_wait_timeout_s": 0.2}}})

    port = free_port()
    deploy.init_local_ray(num_cpus=args.num_cpus)
    figures: dict = {"clip": {"seconds": 2.0, "frames": 50, "size": "320x240", "fps": 25}, "steps": args.steps,
                     "guidance": 1.0, "bundle": "tiny test bundle" if args.bundle is None else args.bundle, "device": "cpu",
                     "cpu_count": os.cpu_count()}
    try:
        t0 = time.perf_counter()
        url = deploy.deploy(config(4))
        figures["deploy_s"] = time.perf_counter() - t0
        sampler = serve.get_deployment_handle("SampleDeployment", app_name="lsray")
        dub(url, video, audio, options, check=True)  # warm-up (first calls load lazily)

        sections = set(args.sections.split(","))
        if "latency" in sections:
            runs = [dub(url, video, audio, options, check=True) for _ in range(args.latency_requests)]
            lat = [r[1] for r in runs]
            keys = sorted({k for r in runs for k in r[2]})  # the server's own breakdown, median per key
            breakdown = {k: statistics.median(r[2].get(k, 0.0) for r in runs) for k in keys}
            if breakdown:
                breakdown["client"] = statistics.median(lat)
                steps = sum(v for k, v in breakdown.items() if k not in ("request", "total", "client"))
                breakdown["between_steps"] = breakdown.get("total", 0.0) - breakdown.get("request", 0.0) - steps
            figures["latency"] = {"n": len(lat), "p50_s": percentile(lat, 50), "p95_s": percentile(lat, 95), "all_s": lat,
                                  "seconds_p50": breakdown}
        if "throughput" in sections:
            figures["throughput"] = [run_level(url, video, audio, options, c, max(c, 2))
                                     for c in map(int, args.levels.split(","))]
        shards = sampler_inputs(bundle, video, audio, args.steps, args.sampler_shards) if "batch" in sections else []

        batch = {}
        for arm, size in (("on", 4), ("off", 1)) if "batch" in sections else ():
            deploy.deploy(config(size))  # user_config change: reconfigure in place, no restart
            before = len(sampler.batch_sizes.remote().result())
            batch[arm] = run_level(url, video, audio, options, args.batch_requests, args.batch_requests)
            sizes = sampler.batch_sizes.remote().result()[before:]
            batch[arm]["max_batch_size"] = size
            batch[arm]["batch_sizes"] = sizes
            # the sampler alone: N shards at once straight to its handle (the end-to-end runs above
            # rarely fill a batch on 2 cores: serialised face tracking spaces the shards out)
            before = len(sampler.batch_sizes.remote().result())
            t1 = time.perf_counter()
            for response in [sampler.remote(sh) for sh in shards]:
                response.result()
            wall = time.perf_counter() - t1
            batch[arm]["sampler_only"] = {"shards": len(shards), "windows_per_shard": 4, "wall_s": wall,
                                          "shards_per_s": len(shards) / wall,
                                          "batch_sizes": sampler.batch_sizes.remote().result()[before:]}
        if batch:
            batch["ratio_rps_on_over_off"] = batch["on"]["rps"] / batch["off"]["rps"] if batch["off"]["rps"] else None
            batch["ratio_sampler_on_over_off"] = (batch["on"]["sampler_only"]["shards_per_s"]
                                                  / batch["off"]["sampler_only"]["shards_per_s"])
            figures["serve_batch"] = batch
    finally:
        serve.shutdown()
        ray.shutdown()

    print(f"\nlsray serve benchmark: 2 s clip (50 frames 320x240), bundle {figures['bundle']}, CPU, steps={args.steps}, guidance 1.0")
    if "latency" in figures:
        print(f"  latency (sequential, n={figures['latency']['n']}): p50 {figures['latency']['p50_s']:.2f} s   "
              f"p95 {figures['latency']['p95_s']:.2f} s")
        print("  where the time goes (server, median s): " + ", ".join(
            f"{k} {v:.2f}" for k, v in figures["latency"]["seconds_p50"].items()))
    print(f"  {'concurrency':>11} {'requests':>8} {'ok':>4} {'wall s':>8} {'req/s':>7} {'p50 s':>7}")
    for row in figures.get("throughput", []):
        print(f"  {row['concurrency']:>11} {row['requests']:>8} {row['ok']:>4} {row['wall_s']:>8.1f} {row['rps']:>7.3f} "
              f"{(row['p50_s'] or 0):>7.1f}")
    b = figures.get("serve_batch")
    if b:
        for arm in ("on", "off"):
            so = b[arm]["sampler_only"]
            print(f"  batching {arm} (max {b[arm]['max_batch_size']}): end to end {b[arm]['rps']:.3f} req/s "
                  f"(batches {b[arm]['batch_sizes']}); sampler alone {so['shards_per_s']:.3f} shards/s "
                  f"(batches {so['batch_sizes']})")
        print(f"  ratio on/off: end to end {b['ratio_rps_on_over_off'] or 0:.2f}x, sampler alone {b['ratio_sampler_on_over_off']:.2f}x")
    if args.out:
        from lsray.storage import write_json

        write_json(args.out, figures)  # atomic, folders made
        print(f"  wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
