"""lsray as a user installs it: a wheel in a fresh venv, run from a folder with no repository
beside it. Every file a command reads at run time must be package data (serve.yaml, the KubeRay
manifests, the demo bundle, the job entrypoint module), never a path into the checkout.

The venv gets the project venv's dependencies through a ``.pth`` line (a plain path: the project's
own ``.pth`` files, among them the editable lsray finder, are not run), searched after its own
site-packages, so ``import lsray`` finds the installed wheel or nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} exited {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(the venv's bin/, its environment, an empty working folder)."""
    tmp = tmp_path_factory.mktemp("package")
    # Build from a copy: the in-tree build/ and *.egg-info stay out of the checkout.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "lsray", src / "lsray", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
          str(src)], cwd=tmp, timeout=300)
    (wheel,) = (tmp / "dist").glob("lsray-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp, timeout=120)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=tmp, timeout=60).stdout.strip())
    (site / "lsray-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
         cwd=tmp, timeout=300)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # Ray's workers: this venv's python
    work = tmp / "work"
    work.mkdir()
    where = _run([str(python), "-c", "import lsray; print(lsray.__file__)"], cwd=work, timeout=60, env=env)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout  # the wheel, not the checkout
    return venv / "bin", env, work


def test_serve_check(installed):
    bin_dir, env, work = installed
    res = _run([str(bin_dir / "lsray"), "serve", "--check"], cwd=work, timeout=300, env=env)
    assert "config OK" in res.stdout


def test_k8s_render(installed):
    bin_dir, env, work = installed
    # --validate: the KubeRay CRDs it checks against ship in the wheel too
    res = _run([str(bin_dir / "lsray"), "k8s", "render", "--overlay", "prod", "--validate"], cwd=work, timeout=300, env=env)
    kinds = {d["kind"] for d in yaml.safe_load_all(res.stdout) if d}
    assert {"RayService", "RayCluster", "RayJob"} <= kinds


def test_submit_help_and_entrypoint(installed):
    bin_dir, env, work = installed
    assert "--address" in _run([str(bin_dir / "lsray"), "submit", "--help"], cwd=work, timeout=120, env=env).stdout
    res = _run([str(bin_dir / "python"), "-m", "lsray.batch.entrypoint", "--help"], cwd=work, timeout=120, env=env)
    assert "--model" in res.stdout  # what `lsray submit` and the RayJob run on the cluster


def test_demo_one_clip(installed):
    """The shipped demo bundle and SyncNet, dubbed on a local Ray started by the installed lsray
    (measured: 142 s on 2 busy shared cores; the timeout leaves ten times that)."""
    bin_dir, env, work = installed
    out = work / "demo"
    _run([str(bin_dir / "lsray"), "demo", "--clips", "1", "--out", str(out), "--quiet"], cwd=work, timeout=1500,
         env=env)
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()
