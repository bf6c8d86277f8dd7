"""A quiet console: ``lsray`` prints its own progress and results, ``--verbose`` the libraries' too."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before anything imports ray: loopback only

from lsray.console import VERBOSE_ENV, quiet_native_stderr  # noqa: E402
from talking import write_dub, write_face_clip  # noqa: E402

LSRAY = Path(sys.executable).parent / "lsray"

#: What mediapipe, protobuf, absl and Ray print when left alone.
NOISE = ("XNNPACK", "absl", "GetPrototype", "ray_remote_args", "W0000", "I0000", "Token authentication",
         "streaming_executor", "core_worker.cc")


def _env(verbose: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != VERBOSE_ENV}
    return {**env, VERBOSE_ENV: "1"} if verbose else env


def test_quiet_native_stderr_silences_fd2_and_restores_it(capfd, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    os.write(2, b"before ")
    with quiet_native_stderr():
        os.write(2, b"native noise ")
        with quiet_native_stderr():  # nested: still silenced, restored once at the outer exit
            os.write(2, b"more noise ")
        os.write(2, b"still noise ")
    os.write(2, b"after")
    assert capfd.readouterr().err == "before after"


def test_quiet_native_stderr_overlapping_threads_restore_fd2(capfd, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    inside, release = threading.Barrier(3), threading.Event()

    def worker() -> None:
        with quiet_native_stderr():
            inside.wait()
            os.write(2, b"noise ")
            release.wait(10)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()  # both threads are inside their blocks
    release.set()
    for t in threads:
        t.join()
    os.write(2, b"shown")
    assert capfd.readouterr().err == "shown"


def test_verbose_leaves_fd2_alone(capfd, monkeypatch):
    monkeypatch.setenv(VERBOSE_ENV, "1")
    with quiet_native_stderr():
        os.write(2, b"native note")
    assert capfd.readouterr().err == "native note"


def test_setup_filters_known_warnings_and_sets_native_log_levels():
    code = ("import os, warnings; from lsray.console import setup; setup();"
            "warnings.warn('SymbolDatabase.GetPrototype() is deprecated. Please use ...', UserWarning);"
            "warnings.warn('lsray keeps its own warnings', UserWarning);"
            "print(os.environ['GLOG_minloglevel'], os.environ['RAY_DATA_LOG_LEVEL'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["2", "WARNING"]
    assert "GetPrototype" not in res.stderr and "lsray keeps its own warnings" in res.stderr
    verbose = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(True), timeout=60)
    assert "GetPrototype" in verbose.stderr


def test_batch_pools_use_named_remote_parameters_only(monkeypatch):
    """Ray Data drops ``**ray_remote_args`` in Ray 2.64: every keyword the job passes to a map
    API must be one of its named parameters."""
    import ray.data
    from ray.data import Dataset

    from lsray.batch.config import BatchConfig
    from lsray.batch.job import build_dataset

    calls: list[tuple[str, dict]] = []

    class Plan:
        def __getattr__(self, api: str):
            def record(fn, **kwargs):
                calls.append((api, kwargs))
                return self
            return record

    monkeypatch.setattr(ray.data, "from_items", lambda items, **kw: Plan())
    build_dataset([{"row": 1}], ctx=None, config=BatchConfig())
    assert [api for api, _ in calls] == [
        "map_batches", "map_batches", "flat_map", "map_batches", "map_batches", "map_batches"]
    for api, kwargs in calls:
        params = inspect.signature(getattr(Dataset, api)).parameters
        named = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        assert set(kwargs) <= named, (api, set(kwargs) - named)


@pytest.mark.slow
def test_dub_one_prints_lsray_output_only_unless_verbose(tiny_bundle, tmp_path):
    video = write_face_clip(tmp_path / "face.mp4", frames=16, size=(160, 120))
    audio = write_dub(tmp_path / "speech.wav", 16 / 25)

    def dub(*flags: str) -> str:
        res = subprocess.run([str(LSRAY), *flags, "dub-one", str(video), str(audio), "-o", str(tmp_path / "out.mp4"),
                              "--model", str(tiny_bundle), "--steps", "1", "--quiet"],
                             capture_output=True, text=True, env=_env(), timeout=600)
        assert res.returncode == 0, res.stderr
        return res.stdout + res.stderr

    quiet = dub()
    assert quiet.startswith("done: ") and "face" in quiet  # the result and its time summary
    assert [n for n in NOISE if n in quiet] == []
    loud = dub("--verbose")
    assert "XNNPACK" in loud or "absl" in loud  # mediapipe's start-up notes are back
