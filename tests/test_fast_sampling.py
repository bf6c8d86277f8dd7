"""Speed features of the sampler: half precision, DPM-Solver++, DeepCache, and the GPU benchmark's
no-GPU mode. The UNet is the parity fixtures' small LatentSync UNet (random weights)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lsray.bundle import load_bundle
from lsray.sampling.window import WindowConditioning, denoise_window, initial_noise, visited_timesteps

REPO = Path(__file__).resolve().parents[1]
FRAMES, H = 16, 8


@pytest.fixture(scope="module")
def unet(tiny_bundle):
    return load_bundle(tiny_bundle, device="cpu", lazy=True).unet


def _cond(seed: int = 0, audio_dim: int = 384) -> tuple[torch.Tensor, WindowConditioning]:
    g = torch.Generator().manual_seed(seed)
    cond = WindowConditioning(
        mask=torch.zeros(1, 1, FRAMES, H, H), masked=torch.randn(1, 4, FRAMES, H, H, generator=g),
        ref=torch.randn(1, 4, FRAMES, H, H, generator=g),
        audio=torch.randn(FRAMES, 20, audio_dim, generator=g) * 0.5,
    )
    return initial_noise(1, FRAMES, H, H, generator=g), cond


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_bf16_unet_agrees_with_fp32_within_tolerance(unet):
    """bf16 weights (latents and scheduler stay fp32): 4 DDIM steps + CFG move the result by a
    few percent of its norm at most (measured: ~1%)."""
    import copy

    noise, cond = _cond()
    fp32 = denoise_window(unet, noise.clone(), cond, sampler="ddim", steps=4, guidance=1.5)
    half = copy.deepcopy(unet).to(torch.bfloat16)
    bf16 = denoise_window(half, noise.clone(), cond, sampler="ddim", steps=4, guidance=1.5)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    err = _rel(bf16, fp32)
    print(f"bf16 vs fp32, 4 DDIM steps + CFG: relative L2 {err:.4f}")
    assert err < 0.05


def test_bundle_precision_setting(tiny_bundle):
    b = load_bundle(tiny_bundle, device="cpu", lazy=True, precision="bf16")
    assert b.unet.dtype == torch.bfloat16
    # The VAE asks to be upcast (force_upcast, diffusers' default): that guards fp16's range only,
    # so bf16 runs the VAE in bf16 too (most of a small bundle's sampling time on a CPU) ...
    assert b.vae.config.force_upcast and b.vae.dtype == torch.bfloat16
    # ... and, with the demo's trained VAE, a face's round trip moves by far less than the VAE's
    # own error (measured: 58 dB PSNR between the two, 17 dB for the VAE against this photo)
    import cv2
    from talking import face_frame

    from lsray.demo import DEMO_BUNDLE

    face = cv2.resize(face_frame(0, size=(240, 240)), (128, 128), interpolation=cv2.INTER_AREA)
    pixels = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1  # 1 3 128 128
    trips = {p: load_bundle(DEMO_BUNDLE, device="cpu", lazy=True, precision=p).codec for p in ("fp32", "bf16")}
    out = {p: c.decode(c.encode(pixels)).clamp(-1, 1) for p, c in trips.items()}

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(10 * torch.log10(4 / ((a - b) ** 2).mean()))

    assert psnr(out["bf16"], out["fp32"]) > psnr(out["fp32"], pixels) + 10
    # ... while fp16 keeps it in fp32, as the VAE asks
    assert load_bundle(tiny_bundle, device="cpu", lazy=True, precision="fp16").vae.dtype == torch.float32
    assert load_bundle(tiny_bundle, device="cpu", lazy=True).unet.dtype == torch.float32  # auto on CPU = fp32
    from lsray.precision import torch_dtype

    assert torch_dtype("auto", "cuda") == torch.float16 and torch_dtype("auto", "cpu") == torch.float32


@pytest.mark.slow
def test_compiled_unet_samples_what_eager_samples(tmp_path):
    """``compile_unet`` (``dub-one --compile``, the batch and Serve ``compile_unet`` settings):
    the bundle's UNet runs under torch.compile, keeps its attributes, and samples the same window
    as eager up to float reordering. (The smallest bundle: compiling is most of this test's time.)"""
    from lsray.train.tiny import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "tiny")
    unet = load_bundle(bundle, device="cpu", lazy=True).unet
    compiled = load_bundle(bundle, device="cpu", lazy=True, compile_unet=True).unet
    assert compiled._compiled_call_impl is not None  # the call goes through torch.compile
    assert compiled.dtype == torch.float32 and compiled.config == unet.config
    noise, cond = _cond(3, audio_dim=unet.config.cross_attention_dim)
    eager = denoise_window(unet, noise.clone(), cond, sampler="ddim", steps=2, guidance=1.5)
    fast = denoise_window(compiled, noise.clone(), cond, sampler="ddim", steps=2, guidance=1.5)
    assert _rel(fast, eager) < 1e-4


def test_dpmsolver_runs_in_10_steps_and_lands_near_ddim_20(unet):
    noise, cond = _cond(1)
    ddim = denoise_window(unet, noise.clone(), cond, sampler="ddim", steps=20, guidance=1.5)
    dpm = denoise_window(unet, noise.clone(), cond, sampler="dpmsolver", steps=10, guidance=1.5)
    assert len(visited_timesteps("dpmsolver", 10)) == 10
    err, scale = _rel(dpm, ddim), _rel(torch.zeros_like(ddim), ddim)
    print(f"DPM-Solver++ 10 vs DDIM 20: relative L2 {err:.4f}")
    assert torch.isfinite(dpm).all() and err < 0.5 * scale  # same neighbourhood, not the same numbers


def test_deep_cache_runs_the_deep_levels_once_every_n_steps(unet):
    noise, cond = _cond(2)
    calls = {"mid": 0}
    hook = unet.mid_block.register_forward_hook(lambda *a: calls.__setitem__("mid", calls["mid"] + 1))
    try:
        full = denoise_window(unet, noise.clone(), cond, sampler="ddim", steps=6, guidance=1.0)
        assert calls["mid"] == 6
        calls["mid"] = 0
        cached = denoise_window(unet, noise.clone(), cond, sampler="ddim", steps=6, guidance=1.0, deep_cache=3)
        assert calls["mid"] == 2  # steps 0 and 3 are full, the other four reuse their deep features
        calls["mid"] = 0
        same = denoise_window(unet, noise.clone(), cond, sampler="ddim", steps=6, guidance=1.0, deep_cache=1)
        assert calls["mid"] == 6 and torch.equal(same, full)  # interval 1 is exactly no cache
    finally:
        hook.remove()
    err = _rel(cached, full)
    print(f"DeepCache 3 vs full, 6 DDIM steps: relative L2 {err:.4f}")
    assert torch.isfinite(cached).all() and 0 < err < 0.5


def test_options_resolve_fast_samplers(tiny_bundle):
    from lsray.bundle import BundleConfig
    from lsray.pipeline.options import DPM_SOLVER_STEPS, DubOptions

    cfg = BundleConfig.read(tiny_bundle / "config.json")
    s = DubOptions(sampler="dpmsolver", deep_cache=2).resolve(cfg)
    assert (s.sampler, s.steps, s.guidance, s.deep_cache) == ("dpmsolver", DPM_SOLVER_STEPS, cfg.sampler.guidance_scale, 2)
    assert DubOptions().resolve(cfg).deep_cache == 1


def test_gpu_bench_runs_without_a_gpu(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_bench.py"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    if not torch.cuda.is_available():
        assert result["gpu"] is None and "no GPU measured" in result["measured"]
    samplers = {r["sampler"] for r in result["rows"]}
    assert {"ddim20+cfg", "lcm4", "lcm1"} <= samplers
    assert all(r["frames_per_s"] > 0 for r in result["rows"])
    assert result["speedups_vs_ddim20_cfg"]


@pytest.mark.slow
def test_cpu_stages_bench_measures_every_cpu_step(tmp_path):
    """``benchmarks/cpu_stages.py`` on a 1080p clip of one window (the README's table comes from its 8 s run)."""
    out = tmp_path / "cpu.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.cpu_stages", "--seconds", "0.64", "--preset", "ultrafast",
                          "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["clip"]["frames"] == 16 and (result["clip"]["width"], result["clip"]["height"]) == (1920, 1080)
    steps = result["steps"]
    assert set(steps) == {"decode", "prepare", "shard", "render", "assemble"}
    assert all(s["ms_per_frame_per_core"] > 0 for s in steps.values())
    # Render encodes every frame, assemble only joins the segments and muxes. (Not "prepare >
    # decode": prepare decodes downscaled I420 for tracking, the decode row full-size RGB, and on a
    # 16-frame clip the two are within noise of each other, either way round.)
    assert steps["render"]["ms_per_frame_per_core"] > 2 * steps["assemble"]["ms_per_frame_per_core"]


def test_worker_startup_bench_builds_each_stage_beside_the_old_all_modules_start(tiny_bundle, tmp_path):
    """``benchmarks/worker_startup.py`` (the README's figures come from its run on the demo bundle):
    every stage builds in its own fresh process, and a render worker imports none of the model
    libraries that the reference row (every stage's module, as workers imported before) loads."""
    out = tmp_path / "startup.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.worker_startup", "--bundle", str(tiny_bundle), "--repeats",
                          "1", "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert list(rows) == ["every module", "prepare", "shard", "audio", "sample", "render"]
    assert {"torch", "diffusers", "transformers"} <= set(rows["every module"]["imports"])
    assert not {"torch", "diffusers", "transformers"} & set(rows["render"]["imports"])
    assert "diffusers" in rows["sample"]["imports"] and "transformers" not in rows["shard"]["imports"]
    assert rows["render"]["peak_rss_mb"] < rows["every module"]["peak_rss_mb"]


@pytest.mark.slow
def test_precision_bench_compares_fp32_and_bf16_on_the_demo_bundle(tmp_path):
    """``benchmarks/precision_bench.py`` on one clip (the README's table comes from its 10-clip run):
    both precisions dub it, bf16 keeps the mouths (far closer to fp32's output than either is to the
    oracle), and the one-step student's bound lies between 1x and the teacher's pass count."""
    out = tmp_path / "precision.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.precision_bench", "--clips", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    fp32, bf16 = result["rows"]
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16") and result["teacher_passes_per_frame"] == 8
    assert all(r["ms_per_frame"]["vae"] > 0 and r["ms_per_frame"]["unet"] > 0 for r in result["rows"])
    assert bf16["mouth_psnr_vs_fp32"] > fp32["mouth_psnr_vs_oracle"] + 10
    assert abs(bf16["mouth_psnr_vs_oracle"] - fp32["mouth_psnr_vs_oracle"]) < 0.2
    assert all(1 < r["one_step_student_bound"]["speedup_vs_teacher"] < 8 for r in result["rows"])
