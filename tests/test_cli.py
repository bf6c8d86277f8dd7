"""The ``lsray`` console script, run as a subprocess the way users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bundles import make_latentsync_src
from lsray.cli import COMMANDS, build_parser, main

LSRAY = Path(sys.executable).parent / "lsray"


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    assert LSRAY.is_file(), f"{LSRAY} missing: run bash scripts/setup.sh"
    return subprocess.run([str(LSRAY), *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_commands():
    res = run("--help", timeout=60)
    assert res.returncode == 0
    for name in ("doctor", "convert"):
        assert name in res.stdout


def test_help_does_not_import_torch():
    """`lsray --help` and the arguments of the commands that drive clusters stay light."""
    code = ("import sys; from lsray.cli import build_parser\n"
            "for argv in ([], ['dub'], ['submit'], ['serve'], ['k8s', 'render'], ['demo']): build_parser(argv)\n"
            "print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr


SEEN: dict[str, int] = {}


def example_args(p):
    p.add_argument("--replicas", type=int)


def example_run(args) -> int:
    SEEN["replicas"] = args.replicas
    return 0


def test_nested_commands_slot_in(monkeypatch):
    from lsray import cli

    example = cli.Command("k8s example", "a nested command beside the real `k8s render`", __name__, "example_run",
                          "example_args")
    monkeypatch.setattr(cli, "COMMANDS", (*COMMANDS, example))
    assert cli.main(["k8s", "example", "--replicas", "3"]) == 0
    assert SEEN == {"replicas": 3}
    assert cli.main(["--verbose", "k8s", "example", "--replicas", "4"]) == 0  # top-level flags come first
    assert SEEN == {"replicas": 4}


def test_commands_import_lazily():
    """`lsray --help` imports no command module; running one imports that one alone; no runner
    module imports lsray.cli back."""
    code = ("import sys; from lsray.cli import COMMANDS, build_parser; build_parser([]); "
            "print(sorted({c.module for c in COMMANDS} & set(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res.stderr
    code = ("import sys; from lsray.cli import COMMANDS, build_parser; build_parser(['k8s', 'render']); "
            "print(sorted({c.module for c in COMMANDS} & set(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "['lsray.k8s.cli']", res.stderr
    assert {c.name for c in COMMANDS} >= {"doctor", "convert", "dub-one", "serve", "dub", "submit", "prepare-training",
                                          "k8s render", "k8s generate", "fetch-bundle", "demo"}
    for cmd in COMMANDS:
        add_arguments, run = cmd.load()
        assert callable(add_arguments) and callable(run), cmd


def test_lsray_error_exits_2_without_traceback(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: missing LatentSync checkpoint folder") and "Traceback" not in err


def test_doctor_machine(tmp_path):
    res = run("doctor", "--json")
    report = json.loads(res.stdout)
    names = {c["name"]: c for c in report["checks"]}
    assert set(names) == {"python", "torch", "ffmpeg", "mediapipe", "ray"}
    assert names["ffmpeg"]["info"]["libx264"] is True
    assert all(names["mediapipe"]["info"]["models"].values())
    assert res.returncode == (0 if report["ok"] else 1)


def test_convert_and_doctor_bundle(tmp_path, parity_dir):
    src = make_latentsync_src(tmp_path / "src", parity_dir, vae=False)
    out = tmp_path / "bundle"
    res = run("convert", str(src), str(out), "--cross-attention-dim", "512", "--temporal-band", "2")
    assert res.returncode == 0, res.stderr
    assert (out / "unet.safetensors").is_file() and not list(tmp_path.glob("bundle.partial-*"))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["unet"]["cross_attention_dim"] == 512 and cfg["unet"]["temporal"]["band"] == 2

    res = run("doctor", "--bundle", str(out), "--json")
    report = json.loads(res.stdout)
    bundle = next(c for c in report["checks"] if c["name"] == "bundle")
    assert bundle["ok"] and bundle["info"]["files"]["vae/"] is False  # no VAE: reported, not fatal
    assert res.returncode == (0 if report["ok"] else 1)

    # converting onto an existing bundle is a user error: exit 2, one line, no traceback
    res = run("convert", str(src), str(out))
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr

    (out / "unet.safetensors").unlink()
    res = run("doctor", "--bundle", str(out))
    assert res.returncode == 1
    assert "lacks unet.safetensors" in res.stdout


def test_convert_missing_whisper_exit_2(tmp_path, parity_dir):
    src = make_latentsync_src(tmp_path / "src", parity_dir, vae=False, whisper=False)
    res = run("convert", str(src), str(tmp_path / "out"))
    assert res.returncode == 2
    assert "whisper/tiny.pt" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("argv", [["--help"], ["doctor", "--help"], ["convert", "--help"]])
def test_parser_help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 0
