"""``lsray doctor``: what this machine (and optionally a model bundle) has, and what it lacks.

Each check is a :class:`Check`; ``required`` ones decide the exit code. Nothing here downloads
anything or starts Ray: versions come from package metadata, ffmpeg is asked with an argument list.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Model files mediapipe 0.10.x ships for its legacy face_detection / face_mesh solutions.
MEDIAPIPE_MODELS = (
    "modules/face_detection/face_detection_short_range.tflite",
    "modules/face_detection/face_detection_full_range_sparse.tflite",
    "modules/face_landmark/face_landmark.tflite",
    "modules/face_landmark/face_landmark_with_attention.tflite",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True
    info: dict[str, Any] = field(default_factory=dict)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    version = platform.python_version()
    return Check("python", ok, f"{version} ({sys.executable})" + ("" if ok else ": lsray needs >= 3.10"),
                 info={"version": version, "executable": sys.executable})


def check_torch() -> Check:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - report any import failure
        return Check("torch", False, f"not importable: {exc}")
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    where = f"CUDA {torch.version.cuda}: {', '.join(devices)}" if cuda else "CUDA not available (CPU)"
    return Check("torch", True, f"{torch.__version__}, {where}",
                 info={"version": torch.__version__, "cuda": cuda, "devices": devices})


def check_ffmpeg() -> Check:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # noqa: BLE001
        return Check("ffmpeg", False, f"imageio-ffmpeg has no ffmpeg binary: {exc}")
    try:
        banner = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30).stdout
        encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("ffmpeg", False, f"{exe} does not run: {exc}", info={"path": exe})
    first = banner.splitlines()[0] if banner else ""
    version = first.split()[2] if first.startswith("ffmpeg version") and len(first.split()) > 2 else "unknown"
    x264 = any(line.split()[1:2] == ["libx264"] for line in encoders.splitlines())
    detail = f"{version} at {exe}, libx264 {'available' if x264 else 'MISSING'}"
    return Check("ffmpeg", x264, detail, info={"path": exe, "version": version, "libx264": x264})


def check_mediapipe() -> Check:
    version = _version("mediapipe")
    spec = importlib.util.find_spec("mediapipe")
    if version is None or spec is None or not spec.submodule_search_locations:
        return Check("mediapipe", False, "not installed (pip install mediapipe==0.10.14)")
    root = Path(list(spec.submodule_search_locations)[0])
    present = {m: (root / m).is_file() for m in MEDIAPIPE_MODELS}
    missing = [m for m, ok in present.items() if not ok]
    detail = f"{version}, face_detection + face_mesh models " + (
        "present" if not missing else f"MISSING: {', '.join(missing)} (mediapipe >= 1.0 no longer ships them)"
    )
    return Check("mediapipe", not missing, detail, info={"version": version, "dir": str(root), "models": present})


def check_ray() -> Check:
    version = _version("ray")
    return Check("ray", version is not None, version or "not installed", info={"version": version})


def check_bundle(location: str) -> Check:
    """Which files the bundle has / lacks, and whether its config.json validates."""
    from lsray.errors import LsrayError
    from lsray.bundle.config import CONFIG_FILE, VAE_DIR, BundleConfig
    from lsray.bundle.load import bundle_files, resolve_bundle

    try:
        path = resolve_bundle(location)
    except LsrayError as exc:
        return Check("bundle", False, str(exc))
    if not path.is_dir():
        return Check("bundle", False, f"{path}: not a directory", info={"path": str(path)})
    files = bundle_files(path)
    problems = [f"lacks {name}" for name, ok in files.items() if not ok and name != f"{VAE_DIR}/"]
    config_info: dict[str, Any] = {}
    if files[CONFIG_FILE]:
        try:
            cfg = BundleConfig.read(path / CONFIG_FILE)
            config_info = {"resolution": cfg.resolution, "cross_attention_dim": cfg.unet.cross_attention_dim,
                           "audio_encoder": cfg.audio.encoder, "mask_source": cfg.mask.source,
                           "lcm": cfg.lcm is not None}
        except LsrayError as exc:
            problems.append(str(exc))
    has = [name for name, ok in files.items() if ok]
    notes = [] if files[f"{VAE_DIR}/"] else [f"no {VAE_DIR}/ (needed to encode/decode frames)"]
    detail = f"{path}: has {', '.join(has) or 'nothing'}"
    if problems or notes:
        detail += "; " + "; ".join(problems + notes)
    return Check("bundle", not problems, detail, info={"path": str(path), "files": files, "config": config_info})


def run_checks(bundle: str | None = None) -> list[Check]:
    checks = [check_python(), check_torch(), check_ffmpeg(), check_mediapipe(), check_ray()]
    if bundle is not None:
        checks.append(check_bundle(bundle))
    return checks


def all_ok(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def format_text(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'ok' if c.ok else ('MISSING' if c.required else 'warn'):8}{c.name:{width}}  {c.detail}" for c in checks]
    lines.append("all required components present" if all_ok(checks) else "some required components are missing")
    return "\n".join(lines)


def to_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all_ok(checks), "checks": [asdict(c) for c in checks]}


# ``lsray doctor`` (see lsray.cli)
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", metavar="PATH", help="also check a model bundle's files and config")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    checks = run_checks(args.bundle)
    print(json.dumps(to_json(checks), indent=2) if args.json else format_text(checks))
    return 0 if all_ok(checks) else 1
